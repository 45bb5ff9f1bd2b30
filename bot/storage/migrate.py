"""Numbered SQL migrations (`migrations/NNNN_name.sql`), applied in order in one transaction.

The schema version lives in `PRAGMA user_version`. Every pending migration and the version bump are applied in a
single `BEGIN IMMEDIATE` transaction, so a crash or an error leaves the file at its previous version, never halfway.
Before the first migration runs, inside that transaction, `apply_migrations` calls its `before` hook (the database
takes a backup there, `bot.storage.backup`); if the hook raises, nothing is migrated.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from bot.storage.postgres import FUNCTIONS, PgConnection

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database cannot be brought to the schema this code expects."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL script."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read the migration scripts shipped in the package, sorted by version, checking the numbers have no gaps."""
    folder = resources.files("bot.storage").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migrations must be numbered 0001, 0002, ... without gaps; found {migration.version}")
    return found


def latest_version() -> int:
    """Return the schema version this code expects."""
    return len(load_migrations())


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (trigger bodies stay whole), dropping empty ones and comments-only."""
    statements: list[str] = []
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if _has_code(buffer):
                statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer.rstrip(";")):
        raise MigrationError(f"incomplete SQL statement at the end of a migration: {buffer.strip()[:60]!r}")
    return statements


def _has_code(sql: str) -> bool:
    lines = (line.split("--", 1)[0].strip() for line in sql.splitlines())
    return any(line and line != ";" for line in lines)


def user_version(conn: sqlite3.Connection) -> int:
    """Return the schema version recorded in the file."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


BeforeMigrating = Callable[[int, int], object]
"""`before(current, goal)`: called once the write lock is held and before any migration, when there is one to run."""


def apply_migrations(
    conn: sqlite3.Connection, target: int | None = None, *, before: BeforeMigrating | None = None
) -> int:
    """Bring the file to `target` (default: the latest version) in one transaction; return the resulting version.

    `conn` must be in autocommit mode (`isolation_level=None`) and not inside a transaction. `before` runs while
    this transaction holds the write lock and has written nothing, so no other connection can change the file
    between it and the migrations; if it raises, the transaction is rolled back and the error propagates.
    """
    migrations = load_migrations()
    goal = _goal(target, len(migrations))
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = user_version(conn)
        _check_current(current, goal, len(migrations))
        if goal > current and before is not None:
            before(current, goal)
        for migration in migrations[current:goal]:
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            log.info("applied migration %04d_%s", migration.version, migration.name)
        if goal != current:
            # PRAGMA takes no parameters; `goal` is an int checked above.
            conn.execute(f"PRAGMA user_version = {int(goal)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return goal


def _goal(target: int | None, latest: int) -> int:
    """Return the version to migrate to (default: the latest), or raise `MigrationError` for an unknown one."""
    goal = latest if target is None else target
    if not 0 <= goal <= latest:
        raise MigrationError(f"unknown schema version {goal}; this code knows versions 0 to {latest}")
    return goal


def _check_current(current: int, goal: int, latest: int) -> None:
    """Raise `MigrationError` when the database is newer than this code, or past the goal (no going back)."""
    if current > latest:
        raise MigrationError(
            f"the database is at schema version {current}, newer than this code's {latest}; upgrade Atelier"
        )
    if current > goal:
        raise MigrationError(f"the database is at schema version {current}; migrations cannot go back to {goal}")


PG_VERSION_TABLE = "atelier_schema_version"
"""PostgreSQL has no `PRAGMA user_version`: the schema version is the one row of this table."""

_PG_MIGRATION_LOCK = 0x61746C72
"""The advisory lock key two processes that open the same database at once migrate under, one after the other."""


def apply_pg_migrations(conn: PgConnection, target: int | None = None) -> int:
    """Bring a PostgreSQL database to `target` (default: the latest) in one transaction; return the version.

    The same numbered scripts as SQLite's, translated statement by statement (`bot.storage.postgres.translate_ddl`);
    the SQLite functions the schema uses are created first. All or nothing, as on SQLite.
    """
    migrations = load_migrations()
    goal = _goal(target, len(migrations))
    conn.execute("BEGIN")
    try:
        conn.execute(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {PG_VERSION_TABLE} (version BIGINT NOT NULL)")
        row = conn.execute(f"SELECT version FROM {PG_VERSION_TABLE}").fetchone()
        current = 0 if row is None else int(row[0])
        _check_current(current, goal, len(migrations))
        if goal > current:
            for function in FUNCTIONS:
                conn.execute_ddl(function)
        for migration in migrations[current:goal]:
            for statement in split_statements(migration.sql):
                conn.execute_ddl(statement)
            log.info("applied migration %04d_%s", migration.version, migration.name)
        if goal != current:
            conn.execute(f"DELETE FROM {PG_VERSION_TABLE}")
            conn.execute(f"INSERT INTO {PG_VERSION_TABLE} (version) VALUES (?)", (goal,))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return goal


def pg_schema_version(conn: PgConnection) -> int:
    """Return a PostgreSQL database's schema version without changing anything (0: never migrated)."""
    exists = conn.execute("SELECT to_regclass(?) IS NOT NULL", (PG_VERSION_TABLE,)).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute(f"SELECT version FROM {PG_VERSION_TABLE}").fetchone()
    return 0 if row is None else int(row[0])
