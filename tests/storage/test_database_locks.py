"""`Database.run(..., locks=...)` across handles on one PostgreSQL database: the locks serialise, never deadlock, and
a unit that loses a deadlock on rows runs again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from bot.storage import postgres
from bot.storage.database import Database
from bot.storage.postgres import PgConnection


async def test_units_with_the_same_lock_at_two_handles_run_one_after_the_other(pg_url: str) -> None:
    """While one handle's unit holds lock 7, another handle's unit naming 7 waits for it; one naming 8 does not."""
    async with await Database.open(pg_url) as first, await Database.open(pg_url) as second:
        inside = threading.Event()
        slow_ended: list[float] = []

        def slow(conn: sqlite3.Connection) -> None:
            inside.set()
            time.sleep(0.4)
            slow_ended.append(time.monotonic())

        def now(conn: sqlite3.Connection) -> float:
            return time.monotonic()

        for key, waits in ((7, True), (8, False)):
            inside.clear()
            holder = asyncio.create_task(first.run(slow, locks=[7]))
            assert await asyncio.to_thread(inside.wait, 5)
            started = await second.run(now, locks=[key])
            await holder
            assert (started >= slow_ended[-1]) is waits, key


async def test_a_unit_that_loses_a_deadlock_runs_again(pg_url: str) -> None:
    """Two handles update two rows in opposite orders: PostgreSQL aborts one; it runs again and both succeed.

    The loser is run again in a new transaction: retried inside the same one (after a rollback to its savepoint) it
    would lose every time, since PostgreSQL wakes the winner only when the loser's transaction ends.
    """
    async with await Database.open(pg_url) as first, await Database.open(pg_url) as second:
        await first.run(lambda conn: conn.execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY, n INTEGER)"))
        await first.run(lambda conn: conn.execute("INSERT INTO scratch (id, n) VALUES (1, 0), (2, 0)"))
        barrier = threading.Barrier(2, timeout=10)
        attempts = {"first": 0, "second": 0}

        def crosswise(name: str, order: tuple[int, int]) -> Callable[[sqlite3.Connection], None]:
            def unit(conn: sqlite3.Connection) -> None:
                attempts[name] += 1
                conn.execute("UPDATE scratch SET n = n + 1 WHERE id = ?", (order[0],))
                if attempts[name] == 1:
                    barrier.wait()  # both hold their first row: each now waits for the other's
                conn.execute("UPDATE scratch SET n = n + 1 WHERE id = ?", (order[1],))

            return unit

        await asyncio.gather(first.run(crosswise("first", (1, 2))), second.run(crosswise("second", (2, 1))))
        assert sorted(attempts.values()) == [1, 2]
        rows = await first.run(lambda conn: [tuple(r) for r in conn.execute("SELECT id, n FROM scratch ORDER BY id")])
        assert rows == [(1, 2), (2, 2)]


async def test_a_peer_idle_inside_a_transaction_holding_a_budget_lock_is_ended_by_the_server(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A peer (a process stopped with SIGSTOP) holds budget lock 7 inside an open transaction and sends nothing more:
    the server ends its transaction after `idle_in_transaction_session_timeout`, so another handle's unit naming 7
    runs instead of waiting forever, and the peer's session is gone."""
    monkeypatch.setattr(postgres, "IDLE_IN_TRANSACTION_TIMEOUT_MS", 500)
    peer = PgConnection.connect(pg_url)
    try:
        peer.execute("BEGIN")
        peer.execute("SELECT pg_advisory_xact_lock(?)", (7,)).fetchone()
        async with await Database.open(pg_url) as database:
            started = time.monotonic()
            assert await asyncio.wait_for(database.run(lambda conn: 1, locks=[7]), timeout=10.0) == 1
            assert 0.3 < time.monotonic() - started < 5.0
        with pytest.raises(sqlite3.OperationalError):
            peer.execute("SELECT 1").fetchone()
    finally:
        peer.close()


async def test_a_wait_for_a_lock_whose_holder_stays_busy_ends_with_an_error(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder that is busy (not idle) inside its transaction is not ended; a unit waiting for its lock fails after
    `lock_timeout` (SQLSTATE 55P03) instead of waiting forever."""
    monkeypatch.setattr(postgres, "LOCK_TIMEOUT_MS", 300)
    peer = PgConnection.connect(pg_url)
    holding = threading.Event()

    def hold() -> None:
        peer.execute("BEGIN")
        peer.execute("SELECT pg_advisory_xact_lock(?)", (7,)).fetchone()
        holding.set()
        peer.execute("SELECT pg_sleep(2)").fetchone()
        peer.execute("COMMIT")

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert await asyncio.to_thread(holding.wait, 5)
        async with await Database.open(pg_url) as database:
            with pytest.raises(sqlite3.OperationalError) as raised:
                await asyncio.wait_for(database.run(lambda conn: 1, locks=[7]), timeout=10.0)
            assert getattr(raised.value, "sqlstate", None) == "55P03"
    finally:
        await asyncio.to_thread(holder.join)
        peer.close()
