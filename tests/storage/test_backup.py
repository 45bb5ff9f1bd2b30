"""Backups: a copy taken while the ledger is writing is one committed state of the live file (real SQLite, the real
Ledger, `python -m bot backup` as a real process), and a migration of an existing file leaves the old file behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.settings import load_app_config
from bot.storage import migrate
from bot.storage.backup import copy_database
from bot.storage.database import Database, DatabaseError
from bot.storage.ledger import LedgerQueries
from bot.storage.migrate import Migration, latest_version, load_migrations
from tests.billing.conftest import CONFIG_PATH, GUILD, MEMBER, OTHER, Clock
from tests.billing.invariants import check_ledger_consistent
from tests.storage.test_migrations import seed_version_1, user_version

ROOT = Path(__file__).resolve().parents[2]
LATEST = latest_version()

Sums = dict[tuple[int, int], tuple[int, int, int]]


def integrity(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [str(row[0]) for row in conn.execute("PRAGMA integrity_check")]


def ledger_sums(conn: sqlite3.Connection, up_to: int | None = None) -> Sums:
    """(spent, reserved, granted) per (guild, member), summed from the raw ledger rows (those with id <= up_to)."""
    rows = conn.execute(
        "SELECT guild_id, member_id,"
        " SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END),"
        " SUM(CASE WHEN kind = 'hold' THEN amount ELSE -released END),"
        " SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END)"
        " FROM ledger WHERE id <= ? GROUP BY guild_id, member_id",
        (up_to if up_to is not None else 2**62,),
    ).fetchall()
    return {(row[0], row[1]): (row[2], row[3], row[4]) for row in rows}


def stored_totals(conn: sqlite3.Connection) -> Sums:
    """(spent, reserved, granted) per (guild, member) from the daily totals the ledger's trigger keeps."""
    rows = conn.execute(
        "SELECT guild_id, member_id, SUM(spent), SUM(reserved), SUM(granted) FROM member_day_totals"
        " GROUP BY guild_id, member_id"
    ).fetchall()
    return {(row[0], row[1]): (row[2], row[3], row[4]) for row in rows}


def ledger_rows(conn: sqlite3.Connection, up_to: int | None = None) -> list[tuple[object, ...]]:
    limit = up_to if up_to is not None else 2**62
    return [tuple(row) for row in conn.execute("SELECT * FROM ledger WHERE id <= ? ORDER BY id", (limit,))]


class Burst:
    """Writers reserving, settling and releasing through the real Ledger until stopped (several at once, so the
    database groups their units into shared commits)."""

    def __init__(self, ledger: Ledger, writers: int = 4) -> None:
        self._ledger = ledger
        self._writers = writers
        self._stop = asyncio.Event()
        self._started = asyncio.Event()
        self.operations = 0

    async def _write(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            member = MEMBER if n % 2 else OTHER
            job = f"w{index}-{n}"
            await self._ledger.reserve(job, GUILD, member, [], 1_000 + n % 7)
            if n % 3:
                await self._ledger.settle(job, 900 + n % 5)
            else:
                await self._ledger.release(job)
            n += 1
            self.operations += 2
            if self.operations >= 40:
                self._started.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Burst]:
        tasks = [asyncio.create_task(self._write(index)) for index in range(self._writers)]
        try:
            await self._started.wait()  # the burst is under way before the caller copies
            yield self
            await asyncio.sleep(0.05)  # and goes on after the copy
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def live_ledger(path: Path) -> AsyncIterator[tuple[Database, Ledger]]:
    config = load_app_config(CONFIG_PATH)
    clock = Clock(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))
    async with await Database.open(path) as db:
        budgets = Budgets(db, config, clock=clock)
        await budgets.set_default(GUILD, 10**12)
        yield db, Ledger(db, budgets, clock=clock)


def snapshot_and_copy(live: Path, target: Path) -> tuple[Sums, int]:
    """On a connection of its own to the live file: begin a read transaction, read the ledger's totals, then copy
    inside the same transaction; return the totals and the ledger's last id as that snapshot saw them."""
    with contextlib.closing(sqlite3.connect(live, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        sums = ledger_sums(conn)
        last = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger").fetchone()[0])
        copy_database(conn, target)
        conn.execute("ROLLBACK")
    return sums, last


def check_copy_matches(copy: Path, live: Path, expected: Sums | None = None) -> int:
    """Assert the copy is sound and is the live ledger up to its last row; return that row's id."""
    assert integrity(copy) == ["ok"]
    with contextlib.closing(sqlite3.connect(copy)) as conn, contextlib.closing(sqlite3.connect(live)) as now:
        last = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger").fetchone()[0])
        assert ledger_rows(conn) == ledger_rows(now, last), "the copy is not the live ledger up to its last row"
        # The live ledger's totals at the moment of the copy: every row committed by then (ids grow in commit order).
        at_that_moment = ledger_sums(now, last)
        assert stored_totals(conn) == ledger_sums(conn) == at_that_moment
        if expected is not None:
            assert at_that_moment == expected
        assert LedgerQueries(conn).count_totals_mismatches() == 0
        check_ledger_consistent(conn)
        assert int(conn.execute("PRAGMA user_version").fetchone()[0]) == LATEST
        assert str(conn.execute("PRAGMA journal_mode").fetchone()[0]) == "delete"
    return last


async def test_a_copy_in_a_read_transaction_holds_that_snapshots_totals_while_the_ledger_writes(
    tmp_path: Path,
) -> None:
    """A burst of reserve/settle/release runs through the real Ledger; another connection reads the ledger's totals
    and copies in the same read transaction. The copy passes integrity_check and holds exactly those totals, and
    the burst went on writing before and after it."""
    live, copy = tmp_path / "live.sqlite3", tmp_path / "copy.sqlite3"
    async with live_ledger(live) as (_db, ledger), Burst(ledger).running() as burst:
        before = burst.operations
        sums, last = await asyncio.to_thread(snapshot_and_copy, live, copy)
        during = burst.operations
    assert last > 0 and sums
    assert check_copy_matches(copy, live, sums) == last
    with contextlib.closing(sqlite3.connect(live)) as conn:
        final = int(conn.execute("SELECT MAX(id) FROM ledger").fetchone()[0])
    assert final > last, "the burst wrote nothing after the copy: the copy was not taken while it was writing"
    assert during > before, "the burst wrote nothing while the copy ran"
    assert not leftovers(tmp_path, ".copy"), "a partial file was left behind"


async def test_the_backup_command_copies_a_committed_state_while_the_ledger_writes(tmp_path: Path) -> None:
    """`python -m bot backup PATH` runs as its own process during a burst: the copy opens, passes integrity_check,
    and its totals equal the live ledger's at that moment (every row committed up to the copy's last one, which is
    after the command started and before the burst ended)."""
    live, copy = tmp_path / "live.sqlite3", tmp_path / "copy.sqlite3"
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("ATELIER_", "DISCORD_"))}
    environment |= {"PYTHONPATH": str(ROOT), "ATELIER_CONFIG": str(CONFIG_PATH), "ATELIER_DATABASE": str(live)}
    async with live_ledger(live) as (db, ledger), Burst(ledger).running():
        # A long read (say a spend report being built) holds an older snapshot, so checkpoints cannot move the newer
        # commits from the WAL into the main file: the case where copying the file itself would lose them.
        with contextlib.closing(sqlite3.connect(live, isolation_level=None)) as reader:
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM ledger").fetchone()
            await asyncio.sleep(0.2)
            committed = await db.run(lambda conn: int(conn.execute("SELECT MAX(id) FROM ledger").fetchone()[0]))
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "backup",
                str(copy),
                cwd=tmp_path,
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            reader.execute("ROLLBACK")
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == (
        f"backup: wrote {copy} ({copy.stat().st_size:,} bytes, schema version {LATEST}) from {live}"
    )
    last = check_copy_matches(copy, live)
    with contextlib.closing(sqlite3.connect(live)) as conn:
        final = int(conn.execute("SELECT MAX(id) FROM ledger").fetchone()[0])
    # Not an older state either (a copy of the main file alone lags behind what the WAL holds): everything committed
    # before the command started is in it.
    assert committed <= last < final, f"copy ends at row {last}; {committed} were committed before, {final} at the end"


def table_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the file, by table."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        names = [
            str(row[0])
            for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        return {name: sorted(map(tuple, conn.execute(f'SELECT * FROM "{name}"')), key=repr) for name in names}


def leftovers(folder: Path, prefix: str) -> list[str]:
    return [name for name in os.listdir(folder) if name.startswith(prefix)]


def backups_of(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.before-v*.bak"))


@pytest.mark.parametrize("start", range(1, LATEST))
async def test_a_migration_leaves_a_backup_with_the_old_version_and_the_same_rows(
    tmp_path: Path, start: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Opening a file at an older version copies it beside itself first: the copy is at the old version, holds
    every row the file held, passes integrity_check, and one log line names it."""
    path = tmp_path / "atelier.sqlite3"
    async with await Database.open(path, migrate_to=start):
        pass
    seed_version_1(path)
    before = table_rows(path)
    caplog.set_level("INFO", logger="bot.storage.backup")
    async with await Database.open(path) as db:
        assert db.version == LATEST
    [backup] = backups_of(path)
    assert backup.name.startswith(f"atelier.sqlite3.before-v{LATEST}.")
    assert user_version(backup) == start
    assert integrity(backup) == ["ok"]
    assert table_rows(backup) == before
    assert user_version(path) == LATEST
    assert not leftovers(tmp_path, f"{backup.name}-"), "the backup has a -wal or -journal of its own"
    lines = [record.getMessage() for record in caplog.records if record.name == "bot.storage.backup"]
    assert len(lines) == 1 and str(backup) in lines[0] and f"version {start}" in lines[0]


async def test_a_new_file_and_a_current_file_get_no_backup(tmp_path: Path) -> None:
    """A database created now has nothing to lose, and a file already at the latest version is not migrated."""
    path = tmp_path / "atelier.sqlite3"
    async with await Database.open(path):
        pass
    async with await Database.open(path):
        pass
    assert backups_of(path) == []
    assert [name for name in os.listdir(tmp_path) if not name.startswith("atelier.sqlite3-")] == ["atelier.sqlite3"]


async def test_a_failed_migration_keeps_its_backup_and_the_file_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backup is taken before the migrations run; when one fails the file stays as it was, and so does the copy."""
    path = tmp_path / "atelier.sqlite3"
    async with await Database.open(path, migrate_to=1):
        pass
    seed_version_1(path)
    before = table_rows(path)
    shipped = load_migrations()
    broken = Migration(LATEST + 1, "broken", "SELECT * FROM no_such_table;")
    monkeypatch.setattr(migrate, "load_migrations", lambda: [*shipped, broken])
    with pytest.raises(DatabaseError, match="no_such_table"):
        await Database.open(path)
    assert user_version(path) == 1
    [backup] = backups_of(path)
    assert user_version(backup) == 1
    assert table_rows(backup) == before == table_rows(path)
