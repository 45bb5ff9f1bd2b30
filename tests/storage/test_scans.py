"""Lookups made for every job, or every minute, find their rows by index, not by reading a whole table (schema 18).

Each test fills a table with 3,000 rows and counts SQLite's virtual-machine steps for the lookup (a progress handler
every 100 steps): a read of the whole table takes thousands; an index search a few dozen.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

from bot.clock import to_ms
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.ledger import LedgerQueries
from bot.storage.moderation import ModerationQueries
from bot.storage.rows import EntryKind

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
ROWS = 3000
T = TypeVar("T")


def counted(conn: sqlite3.Connection, lookup: Callable[[], T]) -> tuple[T, int]:
    """Run `lookup` and return its result and the hundreds of virtual-machine steps it took."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        return lookup(), steps[0]
    finally:
        conn.set_progress_handler(None, 0)


def finished_jobs(conn: sqlite3.Connection, *, one_member: bool = False) -> None:
    """Add `ROWS` finished jobs in server 1, each by its own member or all by member 7."""
    created = to_ms(NOW - timedelta(days=30))
    conn.executemany(
        "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format, count,"
        " prompt, extras, estimate, created_at, updated_at)"
        " VALUES (?, 'succeeded', 1, 2, ?, 'gpt-image-1-mini', '1024x1024', 'medium', 'auto', 'png', 1, 'a fox', '{}',"
        " 11000, ?, ?)",
        [(f"job{index}", 7 if one_member else index, created + index, created + index) for index in range(ROWS)],
    )


async def test_a_jobs_ledger_rows_are_found_by_index(sqlite_db: Database) -> None:
    """Every settle and release looks up its job's rows; before schema 18 that read the whole ledger."""

    def holds(conn: sqlite3.Connection) -> None:
        ledger = LedgerQueries(conn)
        for index in range(ROWS):
            ledger.insert(
                guild_id=1,
                member_id=index,
                job_id=f"job{index}",
                kind=EntryKind.HOLD,
                amount=10,
                effective_at=NOW,
                created_at=NOW,
            )

    def lookups(conn: sqlite3.Connection) -> tuple[tuple[int, int | None], int]:
        ledger = LedgerQueries(conn)
        return counted(conn, lambda: (len(ledger.entries_for_job("job1500")), ledger.guild_of_job("job2999")))

    await sqlite_db.run(holds)
    found, steps = await sqlite_db.run(lookups, write=False)
    assert found == (1, 1)
    assert steps <= 5, f"{steps * 100} steps: the ledger was read whole"


async def test_the_minutely_sweeps_find_their_jobs_by_index(sqlite_db: Database) -> None:
    """The approval expiry and the search for unposted flagged results, among 3,000 finished jobs."""
    await sqlite_db.run(finished_jobs)

    def sweeps(conn: sqlite3.Connection) -> tuple[tuple[int, int], int]:
        moderation = ModerationQueries(conn)
        return counted(conn, lambda: (len(moderation.overdue(NOW)), len(moderation.unposted_quarantines())))

    found, steps = await sqlite_db.run(sweeps, write=False)
    assert found == (0, 0)
    assert steps <= 5, f"{steps * 100} steps: the jobs table was read whole"


async def test_a_members_queue_is_found_by_index_however_many_jobs_they_finished(sqlite_db: Database) -> None:
    """`/queue` lists a member's unfinished jobs; before schema 18 it read every job the member ever made there."""
    await sqlite_db.run(partial(finished_jobs, one_member=True))

    def queue(conn: sqlite3.Connection) -> tuple[tuple[int, int], int]:
        jobs = JobQueries(conn)
        return counted(
            conn, lambda: (len(jobs.list_active_for_member(1, 7)), len(jobs.list_recent_for_member(1, 7, 10)))
        )

    found, steps = await sqlite_db.run(queue, write=False)
    assert found == (0, 10)
    assert steps <= 5, f"{steps * 100} steps: the member's history was read whole"
