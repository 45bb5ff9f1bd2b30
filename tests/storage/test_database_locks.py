"""`Database.run(..., locks=...)` across handles on one PostgreSQL database: the locks serialise, never deadlock, and
a unit that loses a deadlock on rows runs again."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bot.storage.database import Database
from tests.postgres_server import PostgresServer


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh migrated PostgreSQL database of this test's own (its URL)."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


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
