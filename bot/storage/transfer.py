"""Copy an SQLite database into an empty PostgreSQL one, in one transaction, and prove the totals match.

`atelier migrate-to-postgres SQLITE URL` (`bot.cli.migrate_to_postgres`) runs `transfer`. Both databases must be at
the schema version this code expects (the target is migrated first if it was never migrated); the target must hold no
row. Then, in one PostgreSQL transaction:

1. every table of the source is copied with `COPY`, parents before children (foreign keys), rows in insertion order
   (SQLite's `rowid`, kept in the target's `rowid` column where it has one, so `ORDER BY rowid` reads the same);
   the tables' own triggers are off meanwhile (`DISABLE TRIGGER USER`: the daily totals are copied as they are, not
   summed a second time from the ledger rows, and the append-only ledger accepts its history);
2. every identity sequence is set past the largest id copied, so the next row gets a new number;
3. the figures are read on both sides with the same queries (`figures`): rows per table, the ledger's count and sums
   per kind, the ledger's sums per day and kind, the member, server and pool daily totals per day, and how many
   daily-total rows disagree with a fresh sum of the ledger (0 on a sound file). Any difference rolls everything back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.storage.ledger import LedgerQueries
from bot.storage.migrate import PG_VERSION_TABLE, apply_pg_migrations, latest_version, pg_schema_version, user_version
from bot.storage.postgres import PgConnection

CHUNK = 5_000
"""Rows read from SQLite and written to `COPY` at a time."""

FIGURE_QUERIES: dict[str, str] = {
    "ledger by kind": "SELECT kind, COUNT(*), SUM(amount), SUM(released), SUM(overrun) FROM ledger"
    " GROUP BY kind ORDER BY kind",
    "ledger by day": "SELECT effective_at / 86400000 AS day, kind, COUNT(*), SUM(amount), SUM(released)"
    " FROM ledger GROUP BY effective_at / 86400000, kind ORDER BY day, kind",
    "member day totals": "SELECT day, COUNT(*), SUM(spent), SUM(reserved), SUM(granted) FROM member_day_totals"
    " GROUP BY day ORDER BY day",
    "server day totals": "SELECT day, COUNT(*), SUM(spent), SUM(reserved), SUM(granted) FROM guild_day_totals"
    " GROUP BY day ORDER BY day",
    "pool day totals": "SELECT day, COUNT(*), SUM(spent), SUM(reserved) FROM pool_day_totals GROUP BY day ORDER BY day",
}
"""The sums compared on both sides (SQLite's dialect; `PgConnection` translates)."""


class TransferRefusedError(Exception):
    """The copy cannot start: a database at another schema version, or a target that is not empty (exit 2)."""


class TransferMismatchError(Exception):
    """The copy's figures differ between the two databases; nothing was kept (exit 1)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """What must be equal before and after: rows per table, and the ledger's and the totals' sums."""

    rows: dict[str, int]
    sums: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def differences(self, other: Figures) -> list[str]:
        """Name every figure that differs from `other`'s (empty when all are equal)."""
        found = [
            f"table {table}: {self.rows.get(table)} rows in SQLite, {other.rows.get(table)} in PostgreSQL"
            for table in sorted(set(self.rows) | set(other.rows))
            if self.rows.get(table) != other.rows.get(table)
        ]
        found += [f"{name} differ" for name in self.sums if self.sums[name] != other.sums.get(name)]
        return found


@dataclass(frozen=True, slots=True)
class TransferReport:
    """A finished copy: the source's schema version and the figures (equal on both sides)."""

    version: int
    figures: Figures


def figures(conn: sqlite3.Connection, tables: list[str]) -> Figures:
    """Read the compared figures on one side (an SQLite connection or a `PgConnection`)."""
    rows = {table: int(conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]) for table in tables}
    sums = {name: [_plain(row) for row in conn.execute(query).fetchall()] for name, query in FIGURE_QUERIES.items()}
    sums["daily totals that disagree with the ledger"] = [(LedgerQueries(conn).count_totals_mismatches(),)]
    return Figures(rows, sums)


def _plain(row: Any) -> tuple[Any, ...]:
    return tuple(0 if value is None else value for value in row)


def open_source(path: Path) -> sqlite3.Connection:
    """Open the SQLite file read-only, in one read transaction (one snapshot of the file).

    Raises `TransferRefusedError` if it is not there or not at the latest schema.
    """
    if not path.is_file():
        raise TransferRefusedError(f"the SQLite database {path} does not exist")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        # One read transaction for every read that follows (the version, the counts, the copies, the figures): one
        # snapshot of the file, even if a bot still writes to it meanwhile (WAL lets it, and we would copy rows the
        # counts never saw). It ends when the connection is closed.
        conn.execute("BEGIN")
        version = user_version(conn)
    except sqlite3.Error as exc:
        raise TransferRefusedError(f"cannot read the SQLite database {path}: {exc}") from exc
    expected = latest_version()
    if version != expected:
        conn.close()
        raise TransferRefusedError(
            f"the SQLite database {path} is at schema version {version}, this Atelier expects {expected}:"
            " open it once with this version (atelier check), then migrate it"
        )
    return conn


def source_tables(conn: sqlite3.Connection) -> list[str]:
    """Return the source's tables, parents before the tables whose foreign keys point at them."""
    names = [
        str(row[0])
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    parents = {name: {str(row[2]) for row in conn.execute(f'PRAGMA foreign_key_list("{name}")')} for name in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] - {n} <= set(ordered)]
        if not ready:  # pragma: no cover - the schema has no foreign-key cycle between tables
            raise TransferRefusedError("the SQLite schema has a cycle of foreign keys between tables")
        ordered += ready
    return ordered


def check_target(conn: PgConnection, tables: list[str]) -> None:
    """Migrate a never-migrated target; refuse one at another version, one without a table, or one with any row."""
    version = pg_schema_version(conn)
    expected = latest_version()
    if version == 0:
        apply_pg_migrations(conn)
    elif version != expected:
        raise TransferRefusedError(
            f"the PostgreSQL database is at schema version {version}, this Atelier expects {expected}"
        )
    present = {
        str(row[0])
        for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    }
    missing = [table for table in tables if table not in present]
    if missing:
        raise TransferRefusedError(f"the PostgreSQL database has no table {', '.join(missing)}")
    for table in sorted(present - {PG_VERSION_TABLE}):
        if conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None:
            raise TransferRefusedError(
                f"the PostgreSQL database is not empty (table {table} has rows): migrate-to-postgres copies into an"
                " empty database only"
            )


def _columns(target: PgConnection, table: str) -> list[str]:
    rows = target.raw.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        (table,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def copy_table(source: sqlite3.Connection, target: PgConnection, table: str) -> None:
    """Copy one table's rows, in insertion order, through `COPY` (its `rowid` too where the target keeps one)."""
    wanted = _columns(target, table)
    has_rowid = "rowid" in wanted
    own = [str(row[1]) for row in source.execute(f'PRAGMA table_info("{table}")')]
    if sorted(own + (["rowid"] if has_rowid else [])) != sorted(wanted):
        raise TransferRefusedError(f"table {table} has other columns in SQLite than in PostgreSQL")
    columns = (["rowid"] if has_rowid else []) + own
    quoted = ", ".join(f'"{column}"' for column in columns)
    order = "rowid" if has_rowid or _has_rowid(source, table) else "1"
    cursor = source.execute(f'SELECT {quoted} FROM "{table}" ORDER BY {order}')
    with target.raw.cursor().copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        while rows := cursor.fetchmany(CHUNK):
            for row in rows:
                copy.write_row(row)


def _has_rowid(source: sqlite3.Connection, table: str) -> bool:
    try:
        source.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.OperationalError:
        return False
    return True


def reset_sequences(target: PgConnection) -> None:
    """Set every identity sequence of the schema past the largest value its column holds."""
    rows = target.raw.execute(
        "SELECT c.relname, a.attname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND a.attidentity <> '' AND c.relkind = 'r'"
    ).fetchall()
    for table, column in rows:
        target.raw.execute(
            f'SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX("{column}"), 0) + 1, false) FROM "{table}"',
            (table, column),
        )


def transfer(
    source_path: Path, target: PgConnection, *, progress: Callable[[str], None] = lambda _: None
) -> TransferReport:
    """Copy every table of the SQLite file into the empty PostgreSQL database and verify; all or nothing.

    Raises `TransferRefusedError` before anything is written (another schema version, a non-empty target) and
    `TransferMismatchError` (everything rolled back) if a figure differs after the copy.
    """
    source = open_source(source_path)
    try:
        tables = source_tables(source)
        check_target(target, tables)
        before = figures(source, tables)
        target.execute("BEGIN")
        try:
            for table in tables:
                target.raw.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
                copy_table(source, target, table)
                target.raw.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER USER')
                progress(f"copied {table}: {before.rows[table]:,} rows")
            reset_sequences(target)
            after = figures(target, tables)  # type: ignore[arg-type]
            differences = before.differences(after)
            if differences:
                raise TransferMismatchError("; ".join(differences))
            target.execute("COMMIT")
        except BaseException:
            if target.in_transaction:
                target.execute("ROLLBACK")
            raise
        return TransferReport(latest_version(), before)
    finally:
        source.close()
