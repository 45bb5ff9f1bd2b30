"""Migrations: an empty file and a file at every earlier version reach the latest schema, atomically."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import MS_PER_DAY, to_ms
from bot.storage import migrate
from bot.storage.database import Database, DatabaseError
from bot.storage.jobs import JobRepository
from bot.storage.ledger import LedgerQueries
from bot.storage.meta import MetaRepository
from bot.storage.migrate import Migration, MigrationError, apply_migrations, latest_version, load_migrations
from bot.storage.servers import ServerOptionsQueries, ServerOptionsRepository

LATEST = latest_version()
AT = to_ms(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index', 'trigger')").fetchall()
    return {row[0] for row in rows}


def user_version(path: Path) -> int:
    """The file's `PRAGMA user_version`, read on a connection of its own that is closed again."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def seed_version_1(path: Path) -> None:
    """Write jobs, holds, settlements, releases and grants the way schema version 1 stores them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("INSERT INTO meta (key, value) VALUES ('command_hash', 'abc')")
        conn.execute(
            "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format,"
            " count, prompt, estimate, cost, created_at, updated_at) VALUES"
            " ('job1', 'succeeded', 1, 2, 10, 'gpt-image-1-mini', '1024x1024', 'medium', 'auto', 'png', 1, 'a cat',"
            " 11000, 11000, ?, ?)",
            (AT, AT),
        )
        rows = [
            (1, 10, "job1", "hold", 11000, 0, 0, AT),
            (1, 10, "job1", "settle", 11000, 11000, 0, AT),
            (1, 10, "job2", "hold", 20000, 0, 0, AT),
            (1, 10, "job2", "release", 20000, 20000, 0, AT),
            (1, 10, "job3", "hold", 30000, 0, 0, AT),
            (1, 11, "job4", "hold", 5000, 0, 0, AT - MS_PER_DAY),
            (1, 11, "job4", "settle", 7000, 5000, 2000, AT - MS_PER_DAY),
        ]
        for guild, member, job, kind, amount, released, overrun, at in rows:
            conn.execute(
                "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, released, overrun, effective_at,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (guild, member, job, kind, amount, released, overrun, at, at),
            )
        conn.execute(
            "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, reason, effective_at, created_at)"
            " VALUES (1, 10, NULL, 'grant', 50000, 'welcome', ?, ?)",
            (AT, AT),
        )
    finally:
        conn.close()


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    """The shipped scripts are 0001, 0002, ... and there are at least two of them."""
    versions = [migration.version for migration in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) >= 2


async def test_empty_file_migrates_to_the_latest_version(tmp_path: Path) -> None:
    """A new file gets every table and the latest version in PRAGMA user_version."""
    path = tmp_path / "new.sqlite3"
    async with await Database.open(path) as db:
        assert db.version == LATEST
    assert user_version(path) == LATEST
    assert {"meta", "guild_settings", "role_allowances", "member_overrides", "jobs", "ledger"} <= tables(path)
    assert {"member_day_totals", "guild_day_totals", "ledger_day_totals"} <= tables(path)
    assert {"job_results", "generation_settings"} <= tables(path)


@pytest.mark.parametrize("start", range(LATEST))
async def test_file_at_every_earlier_version_upgrades_to_the_latest(tmp_path: Path, start: int) -> None:
    """A file left at any earlier version (with data, from version 1 on) opens at the latest, data intact."""
    path = tmp_path / f"at-{start}.sqlite3"
    async with await Database.open(path, migrate_to=start) as old:
        assert old.version == start
    assert user_version(path) == start
    if start >= 1:
        seed_version_1(path)
    async with await Database.open(path) as db:
        assert db.version == LATEST
        if start >= 1:
            assert await MetaRepository(db).get("command_hash") == "abc"
            day = AT // MS_PER_DAY
            totals = await db.run(lambda conn: LedgerQueries(conn).totals(1, 10, day, day + 1))
            assert (totals.member.spent, totals.member.reserved, totals.member.granted) == (11000, 30000, 50000)
            assert (totals.server.spent, totals.server.reserved) == (11000, 30000)
            older = await db.run(lambda conn: LedgerQueries(conn).totals(1, 11, day - 1, day))
            assert (older.member.spent, older.member.reserved) == (7000, 0)
            assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches()) == 0
        # Version 4: every server starts without settings of its own, and can then store them.
        settings = ServerOptionsRepository(db)
        assert await settings.get(1) is None
        at = datetime.fromtimestamp(AT / 1000, UTC)
        await db.run(lambda conn: ServerOptionsQueries(conn).save_limits(1, 2, 10_000, at, 10))
        stored = await settings.get(1)
        assert stored is not None and (stored.max_count, stored.confirm_above) == (2, 10_000)
        # Version 5: no job has a recorded POST of its task; one can then be recorded for a job with a task UUID.
        if start >= 1:
            queue = JobRepository(db, clock=lambda: at)
            assert await queue.last_post_at("job1") is None
            await db.run(lambda conn: conn.execute("UPDATE jobs SET task_uuid = 'task-1' WHERE id = 'job1'"))
            assert await queue.record_post("job1", "task-1")
            assert not await queue.record_post("job1", "another-task")
            assert await queue.last_post_at("job1") == at
    assert user_version(path) == LATEST


async def test_reopening_a_current_file_applies_nothing(tmp_path: Path) -> None:
    """Opening a file that is already at the latest version leaves its schema as it was."""
    path = tmp_path / "again.sqlite3"
    async with await Database.open(path):
        pass
    before = tables(path)
    async with await Database.open(path) as db:
        assert db.version == LATEST
    assert tables(path) == before


async def test_failed_migration_leaves_the_file_at_its_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails halfway is rolled back whole: no new table, version unchanged."""
    path = tmp_path / "broken.sqlite3"
    async with await Database.open(path):
        pass
    shipped = load_migrations()
    broken = Migration(LATEST + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nSELECT * FROM no_such_table;\n")
    monkeypatch.setattr(migrate, "load_migrations", lambda: [*shipped, broken])
    with pytest.raises(DatabaseError, match="no_such_table"):
        await Database.open(path)
    assert user_version(path) == LATEST
    assert "half_done" not in tables(path)


async def test_all_pending_migrations_share_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When a later migration fails, the earlier ones of the same start-up are rolled back too."""
    path = tmp_path / "partial.sqlite3"
    shipped = load_migrations()
    broken = Migration(LATEST + 1, "broken", "SELECT * FROM no_such_table;")
    monkeypatch.setattr(migrate, "load_migrations", lambda: [*shipped, broken])
    with pytest.raises(DatabaseError):
        await Database.open(path)
    assert user_version(path) == 0
    assert "ledger" not in tables(path)


async def test_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A file written by a newer Atelier is not touched, and the error says to upgrade."""
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 5}")
    with pytest.raises(DatabaseError, match="newer than this code"):
        await Database.open(path)
    assert user_version(path) == LATEST + 5


def test_migration_target_outside_the_known_range_is_refused(tmp_path: Path) -> None:
    """Asking for a version that does not exist fails before anything is written."""
    conn = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    try:
        with pytest.raises(MigrationError, match="unknown schema version"):
            apply_migrations(conn, LATEST + 1)
        assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == 0
    finally:
        conn.close()


async def test_a_file_that_is_not_a_database_gives_a_clear_error(tmp_path: Path) -> None:
    """Pointing at some other file fails with DatabaseError naming the file."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not an sqlite file, just some text that is long enough" * 20)
    with pytest.raises(DatabaseError, match=r"notes\.txt"):
        await Database.open(path)


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    """A trigger's inner statements stay inside its CREATE TRIGGER; comment-only pieces are dropped."""
    script = (
        "-- header comment\nCREATE TABLE t (a INTEGER);\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;\n-- trailing comment\n"
    )
    statements = migrate.split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")


def test_split_statements_rejects_an_unfinished_statement() -> None:
    """A script that ends in the middle of a statement is an error, not silently ignored."""
    with pytest.raises(MigrationError, match="incomplete"):
        migrate.split_statements("CREATE TABLE t (a INTEGER);\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;")
