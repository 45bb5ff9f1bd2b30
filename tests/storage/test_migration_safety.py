"""Migrations end in the same schema however a file got there, and a process killed in the middle of migrating
leaves the file at its old version, ready to migrate cleanly."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.storage.database import Database
from bot.storage.meta import MetaRepository
from bot.storage.migrate import latest_version
from tests.storage.test_migrations import seed_version_1, user_version

ROOT = Path(__file__).resolve().parents[2]
LATEST = latest_version()

Schema = list[tuple[str, str, str, str | None]]


def schema(path: Path) -> Schema:
    """Every table, index, trigger and view of the file as (type, name, table, SQL), in a stable order."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return [(str(kind), str(name), str(table), sql) for kind, name, table, sql in rows]


async def fresh_schema(folder: Path, version: int | None = None) -> Schema:
    """The schema of a new file migrated to `version` (default: the latest)."""
    path = folder / f"fresh-{version}.sqlite3"
    async with await Database.open(path, migrate_to=version):
        pass
    return schema(path)


@pytest.mark.parametrize("start", range(LATEST))
async def test_an_upgraded_file_has_exactly_the_schema_of_a_new_one(tmp_path: Path, start: int) -> None:
    """A file holding data at any earlier version, once upgraded, has the same sqlite_master as a new file: every
    table, column, index and trigger, with the same SQL."""
    path = tmp_path / f"at-{start}.sqlite3"
    async with await Database.open(path, migrate_to=start):
        pass
    if start >= 1:
        seed_version_1(path)
    async with await Database.open(path) as db:
        assert db.version == LATEST
    expected = await fresh_schema(tmp_path)
    assert {kind for kind, *_ in expected} >= {"table", "index", "trigger"}
    assert schema(path) == expected


def migrate_until_killed(path: Path) -> None:
    """Run the migration worker, SIGKILL it as soon as its slow migration's never-ending statement has begun, and
    check it did not end by itself."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.migration_crash_worker", str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        watchdog = threading.Timer(30.0, process.kill)  # a worker that never says it got there fails, not hangs
        watchdog.start()
        try:
            line = process.stdout.readline()
        finally:
            watchdog.cancel()
        assert line == "migrating\n", f"worker said {line!r}: {process.stderr.read() if process.stderr else ''}"
        # SQLite has begun the never-ending statement: the kill lands inside the open migration transaction.
        assert process.poll() is None, "the worker stopped by itself"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize("start", sorted({0, 1, LATEST - 1}))
async def test_a_process_killed_while_migrating_leaves_the_old_version_then_migrates_cleanly(
    tmp_path: Path, start: int
) -> None:
    """SIGKILL during a (test-only, never-ending) migration, after the shipped ones were applied in the same
    transaction: the file reopens at its old version with its old schema and data, then migrates to the latest."""
    path = tmp_path / f"killed-at-{start}.sqlite3"
    async with await Database.open(path, migrate_to=start):
        pass
    if start >= 1:
        seed_version_1(path)
    before = schema(path)

    migrate_until_killed(path)

    assert user_version(path) == start
    assert schema(path) == before == await fresh_schema(tmp_path, start)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    async with await Database.open(path) as db:
        assert db.version == LATEST
        assert await db.integrity_problems() == []
        if start >= 1:
            assert await MetaRepository(db).get("command_hash") == "abc"
    assert schema(path) == await fresh_schema(tmp_path)
    assert "half_done" not in {name for _, name, _, _ in schema(path)}
