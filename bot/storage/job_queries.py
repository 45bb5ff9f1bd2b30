"""The job queue's own queries (schema versions 3, 5): task POSTs and acknowledgement, results, duplicates, lookups.

Kept apart from `repositories.py` (the base tables' queries) but written the same way: `JobQueueQueries` works
inside a transaction opened by `Database.run()`, `JobQueueRepository` is its async face with one transaction per
call. Jobs come back as `repositories.Job` (built by `repositories.job_from_row`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.jobs.state import JobState
from bot.storage.database import Database
from bot.storage.repositories import Job, JobQueries, from_ms, job_from_row, to_ms, utc_now

_EXCLUDED_FROM_DUPLICATES = ("failed", "cancelled", "rejected")


@dataclass(frozen=True, slots=True)
class JobResult:
    """One image a job produced: Runware's imageUUID (usable as a reference), its URL and reported cost."""

    index: int
    image_uuid: str
    image_url: str | None
    cost: int | None
    seed: int | None = None


class JobQueueQueries:
    """Queries on `jobs` and `job_results` that the job service needs beyond `JobQueries`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def begin_submit(self, job_id: str, task_uuid: str, at: datetime) -> bool:
        """Store the task UUID and move a queued job to `submitted`, before the POST; False if it is not queued."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_uuid = ?, state = 'submitted', updated_at = ? WHERE id = ? AND state = 'queued'",
            (task_uuid, to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def record_post(self, job_id: str, task_uuid: str, at: datetime) -> bool:
        """Record that the job's task is about to be POSTed (again) at `at`; False if the job has another task UUID."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_sent_at = ? WHERE id = ? AND task_uuid = ?", (to_ms(at), job_id, task_uuid)
        )
        return cursor.rowcount > 0

    def last_post_at(self, job_id: str) -> datetime | None:
        """When the job's task was last POSTed (recorded before sending), or None if no POST was recorded."""
        row = self._conn.execute("SELECT task_sent_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None or row[0] is None else from_ms(row[0])

    def mark_acknowledged(self, job_id: str, at: datetime) -> bool:
        """Record that Runware accepted the job's task (once); True the first time."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_acked_at = ?, updated_at = ? WHERE id = ? AND task_acked_at IS NULL",
            (to_ms(at), to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def acknowledged_at(self, job_id: str) -> datetime | None:
        """When Runware accepted the job's task, or None if that was never recorded."""
        row = self._conn.execute("SELECT task_acked_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None or row[0] is None else from_ms(row[0])

    def save_results(self, job_id: str, results: Sequence[JobResult], cost: int | None, at: datetime) -> None:
        """Store the job's result images (repeating it keeps the first ones) and, if known, the reported cost."""
        self._conn.executemany(
            "INSERT INTO job_results (job_id, idx, image_uuid, image_url, cost, seed, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, idx) DO NOTHING",
            [
                (job_id, result.index, result.image_uuid, result.image_url, result.cost, result.seed, to_ms(at))
                for result in results
            ],
        )
        if cost is not None:
            self._conn.execute(
                "UPDATE jobs SET cost = ?, updated_at = ? WHERE id = ? AND cost IS NULL", (cost, to_ms(at), job_id)
            )

    def results(self, job_id: str) -> list[JobResult]:
        """Return the job's result images in order (empty until its task finished)."""
        rows = self._conn.execute(
            "SELECT idx, image_uuid, image_url, cost, seed FROM job_results WHERE job_id = ? ORDER BY idx", (job_id,)
        ).fetchall()
        return [JobResult(row[0], row[1], row[2], row[3], row[4]) for row in rows]

    def finish_delivered(self, job_id: str, message_id: int | None, cost: int, at: datetime) -> bool:
        """Record delivery, the charged cost and `succeeded` in one step, only for a submitted, undelivered job."""
        at_ms = to_ms(at)
        cursor = self._conn.execute(
            "UPDATE jobs SET state = 'succeeded', cost = ?, delivered_at = ?, result_message_id = ?, error = NULL,"
            " updated_at = ?, finished_at = ? WHERE id = ? AND state = 'submitted' AND delivered_at IS NULL",
            (cost, at_ms, message_id, at_ms, at_ms, job_id),
        )
        return cursor.rowcount > 0

    def list_active_for_member(self, guild_id: int, member_id: int) -> list[Job]:
        """Return the member's queued and submitted jobs in the server, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM jobs WHERE guild_id = ? AND member_id = ? AND state IN ('queued', 'submitted')"
            " ORDER BY created_at, rowid",
            (guild_id, member_id),
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def find_recent_duplicate(self, guild_id: int, member_id: int, fingerprint: str, since: datetime) -> Job | None:
        """Return the member's newest job with this fingerprint created at or after `since`, unless it ended badly."""
        row = self._conn.execute(
            "SELECT * FROM jobs WHERE member_id = ? AND json_extract(extras, '$.fingerprint') = ?"
            " AND created_at >= ? AND guild_id IS ? AND state NOT IN (?, ?, ?)"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (member_id, fingerprint, to_ms(since), guild_id, *_EXCLUDED_FROM_DUPLICATES),
        ).fetchone()
        return None if row is None else job_from_row(row)

    def get_by_result_message(self, message_id: int) -> Job | None:
        """Return the job whose result was posted as this message, or None."""
        row = self._conn.execute("SELECT * FROM jobs WHERE result_message_id = ? LIMIT 1", (message_id,)).fetchone()
        return None if row is None else job_from_row(row)


class JobQueueRepository:
    """Async face of `JobQueueQueries` (and the few `JobQueries` the service combines with it)."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def begin_submit(self, job_id: str, task_uuid: str) -> bool:
        """Store the task UUID and move a queued job to `submitted`; False if it is no longer queued."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueueQueries(conn).begin_submit(job_id, task_uuid, at))

    async def record_post(self, job_id: str, task_uuid: str) -> bool:
        """Record, before sending it, that the job's task is POSTed now; False if the job has another task UUID."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueueQueries(conn).record_post(job_id, task_uuid, at))

    async def last_post_at(self, job_id: str) -> datetime | None:
        """When the job's task was last POSTed, or None if no POST was recorded."""
        return await self._db.run(lambda conn: JobQueueQueries(conn).last_post_at(job_id), write=False)

    async def mark_acknowledged(self, job_id: str) -> bool:
        """Record that Runware accepted the job's task."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueueQueries(conn).mark_acknowledged(job_id, at))

    async def acknowledged_at(self, job_id: str) -> datetime | None:
        """When Runware accepted the job's task, or None."""
        return await self._db.run(lambda conn: JobQueueQueries(conn).acknowledged_at(job_id), write=False)

    async def save_results(self, job_id: str, results: Sequence[JobResult], cost: int | None) -> None:
        """Store the job's result images and reported cost."""
        at = self._clock()
        await self._db.run(lambda conn: JobQueueQueries(conn).save_results(job_id, results, cost, at))

    async def results(self, job_id: str) -> list[JobResult]:
        """Return the job's result images in order."""
        return await self._db.run(lambda conn: JobQueueQueries(conn).results(job_id), write=False)

    async def finish_delivered(self, job_id: str, message_id: int | None, cost: int) -> bool:
        """Record delivery, cost and success in one transaction; False if the job was not submitted and undelivered."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueueQueries(conn).finish_delivered(job_id, message_id, cost, at))

    async def finish(self, job_id: str, state: JobState, *, error: str | None, expected: Sequence[JobState]) -> bool:
        """Move the job to an end state (failed, cancelled) only from one of `expected`; True if it changed."""
        at = self._clock()
        return await self._db.run(
            lambda conn: JobQueries(conn).update_state(job_id, state, at, error=error, expected=expected)
        )

    async def list_active_for_member(self, guild_id: int, member_id: int) -> list[Job]:
        """Return the member's queued and submitted jobs in the server, oldest first."""
        return await self._db.run(
            lambda conn: JobQueueQueries(conn).list_active_for_member(guild_id, member_id), write=False
        )

    async def find_recent_duplicate(
        self, guild_id: int, member_id: int, fingerprint: str, since: datetime
    ) -> Job | None:
        """Return the member's newest job with this fingerprint since `since`, unless it failed or was cancelled."""
        return await self._db.run(
            lambda conn: JobQueueQueries(conn).find_recent_duplicate(guild_id, member_id, fingerprint, since),
            write=False,
        )

    async def get_by_result_message(self, message_id: int) -> Job | None:
        """Return the job whose result was posted as this message, or None."""
        return await self._db.run(lambda conn: JobQueueQueries(conn).get_by_result_message(message_id), write=False)
