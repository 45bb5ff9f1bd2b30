"""`atelier migrate-to-postgres SQLITE URL`: a month of activity moves into PostgreSQL with every total equal.

The source is built through the real ledger, budgets and repositories (`tests/cli/month_of_activity.py`); the check
after the copy does not trust the command's own figures: it compares every row of every table, each member's budget
status and each server's spend report, read through the real code on both engines, and makes new rows on the target
(the sequences were moved past the copied ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.reports import Reports
from bot.cli import main
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.settings import AppConfig, load_app_config
from bot.storage.database import Database
from bot.storage.postgres import PgConnection
from bot.storage.transfer import transfer
from tests.billing.conftest import CONFIG_PATH
from tests.cli.month_of_activity import GUILDS, MovingClock, build_month, members
from tests.postgres_server import PostgresServer


@pytest.fixture
def config() -> AppConfig:
    return load_app_config(CONFIG_PATH)


@pytest.fixture
def empty_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database that was never migrated (no table at all)."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = f"empty_{id(object())}"
    with postgres_server.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def month_file(tmp_path: Path, config: AppConfig) -> Path:
    path = tmp_path / "month.sqlite3"

    async def build() -> None:
        async with await Database.open(path) as db:
            await build_month(db, config)

    asyncio.run(build())
    return path


def table_rows(conn: Any, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, the SQLite columns only, in a fixed order."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        columns = [str(row[1]) for row in SOURCE_COLUMNS[table]]
        quoted = ", ".join(f'"{column}"' for column in columns)
        order = ", ".join(str(index) for index in range(1, len(columns) + 1))
        rows[table] = [tuple(row) for row in conn.execute(f'SELECT {quoted} FROM "{table}" ORDER BY {order}')]
    return rows


SOURCE_COLUMNS: dict[str, list[Any]] = {}


async def budget_views(db: Database, config: AppConfig) -> list[Any]:
    """Each member's budget status (every place), and each server's spend report this and last period."""
    clock = MovingClock()
    clock.now = clock.now.replace(day=30)
    budgets = Budgets(db, config, clock=clock)
    ledger = Ledger(db, budgets, clock=clock)
    reports = Reports(db, budgets, clock=clock)
    views: list[Any] = []
    for guild in GUILDS:
        for member in members(guild):
            views.append(await ledger.status(guild, member, [guild + 7], places=[guild + 10, guild + 99]))
        for period in ("current", "previous"):
            views.append(await reports.period_report(guild, period))
    return views


async def test_a_month_of_activity_moves_with_every_total_equal(
    month_file: Path, empty_url: str, config: AppConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every table, every row, every member's budget and every server's report are equal after the copy."""
    source = sqlite3.connect(month_file)
    tables = [
        str(row[0])
        for row in source.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    for table in tables:
        SOURCE_COLUMNS[table] = list(source.execute(f'PRAGMA table_info("{table}")'))
    before = table_rows(source, tables)
    kinds = {row[0] for row in source.execute("SELECT DISTINCT kind FROM ledger")}
    states = {row[0] for row in source.execute("SELECT DISTINCT state FROM jobs")}
    source.close()
    assert kinds == {"hold", "settle", "release", "grant", "adjust"}
    assert states >= {"queued", "submitted", "succeeded", "failed", "cancelled", "rejected", "awaiting_approval"}
    assert all(
        before[table] for table in ("ledger", "jobs", "job_results", "job_runs", "audit_log", "allowance_warnings")
    )
    async with await Database.open(month_file) as db:
        views_before = await budget_views(db, config)

    status = await asyncio.to_thread(main, ["migrate-to-postgres", str(month_file), empty_url])
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    assert "every figure matched" in out and f"ledger: {len(before['ledger']):,} rows" in out

    async with await Database.open(empty_url) as db:
        after = await db.run(lambda conn: table_rows(conn, tables), write=False)
        assert after == before
        assert await budget_views(db, config) == views_before
        jobs_order = await db.run(lambda conn: [r[0] for r in conn.execute("SELECT id FROM jobs ORDER BY rowid")])
        assert jobs_order == sorted(jobs_order)  # insertion order kept (ids were made in order)
        entry = await Ledger(db, Budgets(db, config)).grant(GUILDS[0], members(GUILDS[0])[3], 1_000, "after the move")
        assert entry.id == max(row[0] for row in before["ledger"]) + 1


async def test_a_target_with_rows_is_refused(
    month_file: Path, empty_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second copy into the same database is refused with one line, exit 2, and nothing changes."""
    assert await asyncio.to_thread(main, ["migrate-to-postgres", str(month_file), empty_url]) == EXIT_OK
    capsys.readouterr()
    status = await asyncio.to_thread(main, ["migrate-to-postgres", str(month_file), empty_url])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert err.count("\n") == 1 and "is not empty" in err


async def test_a_source_at_another_schema_version_is_refused(
    tmp_path: Path, empty_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SQLite file at an older schema is refused (one line, exit 2) before anything is written."""
    old = tmp_path / "old.sqlite3"
    async with await Database.open(old, migrate_to=10):
        pass
    status = await asyncio.to_thread(main, ["migrate-to-postgres", str(old), empty_url])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert err.count("\n") == 1 and "schema version 10" in err


async def test_bad_and_unreachable_targets(
    tmp_path: Path, month_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL that is not PostgreSQL's is bad input (exit 2); a server that does not answer is a failure (exit 1)."""
    assert await asyncio.to_thread(main, ["migrate-to-postgres", str(month_file), "mysql://x@h/db"]) == EXIT_USAGE
    assert "not a PostgreSQL URL" in capsys.readouterr().err
    closed = "postgresql://nobody:secret@127.0.0.1:1/atelier"
    assert await asyncio.to_thread(main, ["migrate-to-postgres", str(month_file), closed]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect" in err and "secret" not in err
    missing = tmp_path / "missing.sqlite3"
    assert await asyncio.to_thread(main, ["migrate-to-postgres", str(missing), closed]) in (EXIT_USAGE, EXIT_FAILED)


async def test_the_copy_is_one_snapshot_of_a_source_written_to_meanwhile(tmp_path: Path, empty_url: str) -> None:
    """A bot still writing to the SQLite file during the copy (here: after the first table is copied, into `meta`,
    which is copied later) changes nothing: every read is of one snapshot, so the copy succeeds and holds the file as
    it was when the copy began."""
    path = tmp_path / "busy.sqlite3"
    async with await Database.open(path) as db:
        await db.run(lambda conn: conn.execute("INSERT INTO meta (key, value) VALUES ('before', '1')"))
    writes: list[str] = []

    def write_meanwhile(line: str) -> None:
        if not writes:
            with contextlib.closing(sqlite3.connect(path)) as writer, writer:
                writer.execute("INSERT INTO meta (key, value) VALUES ('during', '1')")
            writes.append(line)

    target = PgConnection.connect(empty_url)
    try:
        await asyncio.to_thread(transfer, path, target, progress=write_meanwhile)
        copied = [tuple(row) for row in target.execute("SELECT key FROM meta ORDER BY key").fetchall()]
    finally:
        target.close()
    assert writes and not writes[0].startswith("copied meta")
    assert copied == [("before",)]
    with contextlib.closing(sqlite3.connect(path)) as check:
        assert check.execute("SELECT key FROM meta ORDER BY key").fetchall() == [("before",), ("during",)]
