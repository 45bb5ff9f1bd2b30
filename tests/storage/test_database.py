"""The database: WAL and pragmas on open, atomic units of work, group commit, transactions, closing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.storage.database import BUSY_TIMEOUT_MS, MAX_BATCH, Database, DatabaseError
from bot.storage.meta import MetaQueries, MetaRepository


def put(key: str, value: str) -> Callable[[sqlite3.Connection], None]:
    def unit(conn: sqlite3.Connection) -> None:
        MetaQueries(conn).set(key, value)

    return unit


class Boom(Exception):
    pass


async def test_open_sets_wal_foreign_keys_and_busy_timeout(sqlite_db: Database) -> None:
    """The connection runs in WAL mode with foreign keys enforced and a busy timeout."""

    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
            conn.execute("PRAGMA busy_timeout").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
        )

    mode, foreign_keys, busy, synchronous = await sqlite_db.run(pragmas, write=False)
    assert (mode, foreign_keys, synchronous, busy) == ("wal", 1, 1, BUSY_TIMEOUT_MS)


async def test_open_creates_missing_parent_folders(tmp_path: Path) -> None:
    """The database's folder is created if it does not exist (data/ on a fresh checkout)."""
    path = tmp_path / "data" / "nested" / "atelier.sqlite3"
    async with await Database.open(path) as db:
        assert db.path == path
    assert path.exists()


async def test_a_database_path_that_cannot_be_created_gives_a_clear_error(tmp_path: Path) -> None:
    """A folder that cannot be made (here: a file is in the way) is a DatabaseError naming the path, not an OSError."""
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseError, match=r"cannot create the folder of the database .*data/atelier\.sqlite3"):
        await Database.open(blocker / "atelier.sqlite3")


@pytest.mark.parametrize("group_commit", [True, False])
async def test_a_failing_unit_is_rolled_back_and_its_neighbours_are_kept(tmp_path: Path, group_commit: bool) -> None:
    """Among many concurrent units, each failing one leaves no trace and every other one is committed."""

    def failing(key: str) -> Callable[[sqlite3.Connection], None]:
        def unit(conn: sqlite3.Connection) -> None:
            MetaQueries(conn).set(key, "half")
            raise Boom(key)

        return unit

    async with await Database.open(tmp_path / "x.sqlite3", group_commit=group_commit) as db:
        units = [failing(f"k{i}") if i % 3 == 0 else put(f"k{i}", "ok") for i in range(60)]
        results = await asyncio.gather(*(db.run(unit) for unit in units), return_exceptions=True)
        meta = MetaRepository(db)
        for i, result in enumerate(results):
            if i % 3 == 0:
                assert isinstance(result, Boom)
                assert await meta.get(f"k{i}") is None
            else:
                assert result is None
                assert await meta.get(f"k{i}") == "ok"


async def test_unit_result_is_returned_to_the_caller(db: Database) -> None:
    """What the function returns is what `run` returns."""
    assert await db.run(lambda conn: conn.execute("SELECT 6 * 7").fetchone()[0], write=False) == 42


async def test_transaction_commits_on_exit_and_rolls_back_on_error(sqlite_db: Database) -> None:
    """The multi-statement transaction keeps its writes on success and drops them on an exception."""
    async with sqlite_db.transaction() as conn:
        await conn.execute("INSERT INTO meta (key, value) VALUES ('kept', '1')")
    with pytest.raises(Boom):
        async with sqlite_db.transaction() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('dropped', '1')")
            raise Boom
    meta = MetaRepository(sqlite_db)
    assert await meta.get("kept") == "1"
    assert await meta.get("dropped") is None


async def test_units_never_run_inside_a_multi_statement_transaction(sqlite_db: Database) -> None:
    """Units queued while a transaction is open wait for it, so they see both of its writes or neither."""

    def read_pair(conn: sqlite3.Connection) -> tuple[str | None, str | None]:
        meta = MetaQueries(conn)
        return meta.get("a"), meta.get("b")

    seen: list[tuple[str | None, str | None]] = []

    async def writer() -> None:
        async with sqlite_db.transaction() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
            for _ in range(5):
                await asyncio.sleep(0)
            await conn.execute("INSERT INTO meta (key, value) VALUES ('b', '1')")

    async def reader() -> None:
        for _ in range(20):
            seen.append(await sqlite_db.run(read_pair, write=False))
            await asyncio.sleep(0)

    await asyncio.gather(reader(), writer(), reader())
    assert set(seen) <= {(None, None), ("1", "1")}
    assert ("1", "1") in seen


async def test_a_unit_cancelled_before_it_starts_never_runs(sqlite_db: Database) -> None:
    """Cancelling the caller while its unit is still queued means the unit is skipped."""
    async with sqlite_db.transaction():
        task = asyncio.create_task(sqlite_db.run(put("late", "1")))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await MetaRepository(sqlite_db).get("late") is None


async def test_close_finishes_queued_work_and_then_refuses_more(tmp_path: Path) -> None:
    """Units queued before close() complete; run() after close raises a clear error."""
    db = await Database.open(tmp_path / "x.sqlite3")
    pending = [asyncio.create_task(db.run(put(f"k{i}", "v"))) for i in range(20)]
    await asyncio.sleep(0)
    await db.close()
    await asyncio.gather(*pending)
    with pytest.raises(DatabaseError, match="closed"):
        await db.run(lambda conn: None)
    async with await Database.open(tmp_path / "x.sqlite3") as again:
        assert await MetaRepository(again).get("k19") == "v"


async def test_integrity_check_passes_a_sound_file_and_names_damage(tmp_path: Path) -> None:
    """A fresh file has no problems; an index that disagrees with its table is reported row by row."""
    path = tmp_path / "x.sqlite3"
    async with await Database.open(path) as db:
        assert await db.integrity_problems() == []
        await db.run(put("k", "v"))
    with sqlite3.connect(path) as conn:
        # Build an index on one column, then tell SQLite it covers another: its entries no longer match the rows.
        conn.execute("CREATE INDEX meta_value ON meta (value)")
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX meta_value ON meta (key)' WHERE name = 'meta_value'")
    conn.close()
    async with await Database.open(path) as db:
        assert await db.integrity_problems() == ["row 1 missing from index meta_value"]


async def test_batches_are_capped_and_deferrable_units_let_later_ones_go_first(sqlite_db: Database) -> None:
    """Units queued behind an open transaction run in batches of at most `MAX_BATCH`. 60 deferrable units (a burst's
    reservations) let the plain units queued after them go first, in their own order (a job's write before its
    provider request, and a cancel queued before it, never overtake each other); the deferrable ones keep theirs."""
    batches = [0]

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN"):
            batches[0] += 1

    await sqlite_db.run(lambda conn: conn.set_trace_callback(trace), write=False)
    ran: list[tuple[str, int]] = []

    def unit(label: str) -> Callable[[sqlite3.Connection], None]:
        def run(conn: sqlite3.Connection) -> None:
            MetaQueries(conn).set(label, "1")
            ran.append((label, batches[0]))

        return run

    async with sqlite_db.transaction():
        first = [asyncio.create_task(sqlite_db.run(unit(f"plain{index}"))) for index in range(40)]
        await asyncio.sleep(0)
        deferred = [asyncio.create_task(sqlite_db.run(unit(f"new{index}"), deferrable=True)) for index in range(60)]
        await asyncio.sleep(0)
        later = [asyncio.create_task(sqlite_db.run(unit(f"later{index}"))) for index in range(5)]
        await asyncio.sleep(0)
    await asyncio.gather(*first, *deferred, *later)
    await sqlite_db.run(lambda conn: conn.set_trace_callback(None), write=False)
    labels = [label for label, _ in ran]
    assert labels == (
        [f"plain{index}" for index in range(40)]
        + [f"later{index}" for index in range(5)]
        + [f"new{index}" for index in range(60)]
    )
    per_batch: dict[int, int] = {}
    for _, batch in ran:
        per_batch[batch] = per_batch.get(batch, 0) + 1
    assert max(per_batch.values()) <= MAX_BATCH
