"""The jobs table group: `jobs` and `job_results`.

Creating a job, its state changes, the task's POSTs and acknowledgement, results, delivery, duplicates and look-ups.

`JobQueries` holds every query, on a connection inside a transaction opened by `Database.run()` (the ledger creates
a job row in the same transaction as its hold). `JobRepository` is the async face for the job service and the cogs:
one transaction per call, each delegating to one query method, stamped with its clock.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from bot.catalog import Background, ModelName, OutputFormat, Quality, Resolution, Size
from bot.clock import from_ms, optional_from_ms, to_ms, utc_now
from bot.storage.database import Database, Repository
from bot.storage.queue import QUEUE_CHANNEL, is_postgres, notify
from bot.storage.rows import Job, JobResult, JobState, NewJob


def job_from_row(row: sqlite3.Row) -> Job:
    """Build a `Job` from a `SELECT * FROM jobs` row."""
    extras = json.loads(row["extras"])
    references = tuple(str(ref) for ref in extras.pop("references", ()))
    return Job(
        id=row["id"],
        state=JobState(row["state"]),
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        member_id=row["member_id"],
        model=ModelName(row["model"]),
        size=Size(row["size"]),
        quality=Quality(row["quality"]),
        background=Background(row["background"]),
        format=OutputFormat(row["format"]),
        count=row["count"],
        prompt=row["prompt"],
        references=references,
        extras=extras,
        parent_job_id=row["parent_job_id"],
        estimate=row["estimate"],
        cost=row["cost"],
        task_uuid=row["task_uuid"],
        error=row["error"],
        interaction_token=row["interaction_token"],
        interaction_expires_at=optional_from_ms(row["interaction_expires_at"]),
        result_message_id=row["result_message_id"],
        created_at=from_ms(row["created_at"]),
        updated_at=from_ms(row["updated_at"]),
        finished_at=optional_from_ms(row["finished_at"]),
        delivered_at=optional_from_ms(row["delivered_at"]),
        provider=row["provider"],
        resolution=None if row["resolution"] is None else Resolution(row["resolution"]),
    )


def _extras_json(job: NewJob) -> str:
    if "references" in job.extras:
        raise ValueError("job extras must not use the key 'references'; pass references separately")
    return json.dumps({"references": list(job.references), **job.extras}, separators=(",", ":"))


_UNFINISHED = "('awaiting_approval', 'queued', 'submitted')"
_EXCLUDED_FROM_DUPLICATES = ("failed", "cancelled", "rejected")


class JobQueries:
    """The `jobs` and `job_results` tables.

    Listings order by `created_at` and then by `rowid`, the insertion order: job ids are random, so ordering by id
    would shuffle the jobs created in the same millisecond.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def insert(self, job: NewJob, at: datetime) -> Job:
        """Store a new job; raises `sqlite3.IntegrityError` if its id is taken."""
        at_ms = to_ms(at)
        finished = at_ms if job.state.is_finished else None
        self._conn.execute(
            "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format,"
            " count, prompt, extras, parent_job_id, estimate, interaction_token, interaction_expires_at,"
            " created_at, updated_at, finished_at, provider, resolution)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.state.value,
                job.guild_id,
                job.channel_id,
                job.member_id,
                job.model.value,
                job.size.value,
                job.quality.value,
                job.background.value,
                job.format.value,
                job.count,
                job.prompt,
                _extras_json(job),
                job.parent_job_id,
                job.estimate,
                job.interaction_token,
                None if job.interaction_expires_at is None else to_ms(job.interaction_expires_at),
                at_ms,
                at_ms,
                finished,
                job.provider,
                None if job.resolution is None else job.resolution.value,
            ),
        )
        created = self.get(job.id)
        if created is None:  # pragma: no cover - the row was inserted by the statement above
            raise sqlite3.IntegrityError(f"job {job.id} vanished after insert")
        if created.state is JobState.QUEUED:  # every process's queue hears of it when this transaction commits
            notify(self._conn, QUEUE_CHANNEL, job.id)
        return created

    def get(self, job_id: str) -> Job | None:
        """Return the job, or None."""
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else job_from_row(row)

    def update_state(
        self,
        job_id: str,
        state: JobState,
        at: datetime,
        *,
        error: str | None = None,
        expected: Collection[JobState] | None = None,
        without_results: bool = False,
    ) -> bool:
        """Move the job to `state` (only from one of `expected`, if given); True if a row changed.

        Entering a finished state records `finished_at`; `error` is stored as given (None clears it).
        `without_results`: only if no result image is stored (a cancel racing another process's `save_results`: on
        PostgreSQL both lock the job's row first, so the check below sees the other's committed results).
        """
        if without_results:
            self._lock_row(job_id)
        at_ms = to_ms(at)
        finished = at_ms if state.is_finished else None
        sql = "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?"
        params: list[Any] = [state.value, error, at_ms, finished, job_id]
        if expected is not None:
            allowed = [s.value for s in expected]
            if not allowed:
                return False
            sql += f" AND state IN ({', '.join('?' * len(allowed))})"
            params.extend(allowed)
        if without_results:
            sql += " AND NOT EXISTS (SELECT 1 FROM job_results r WHERE r.job_id = jobs.id)"
        changed = self._conn.execute(sql, params).rowcount > 0
        if changed and state is JobState.QUEUED:  # approved: every process's queue hears of it on commit
            notify(self._conn, QUEUE_CHANNEL, job_id)
        return changed

    def list_unfinished(self) -> list[Job]:
        """Return the jobs a restart must resume (awaiting approval, queued or submitted), oldest first."""
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE state IN {_UNFINISHED} ORDER BY created_at, rowid"
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def list_recent_for_member(self, guild_id: int | None, member_id: int, limit: int) -> list[Job]:
        """Return the member's most recent jobs in the server, newest first."""
        # `guild_id = ?` (or IS NULL), not `IS ?`: PostgreSQL cannot search an index with IS NOT DISTINCT FROM.
        where = "guild_id IS NULL" if guild_id is None else "guild_id = ?"
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE {where} AND member_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (member_id, limit) if guild_id is None else (guild_id, member_id, limit),
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def begin_submit(self, job_id: str, task_uuid: str, at: datetime) -> bool:
        """Store the task UUID and move a queued job to `submitted`, before the POST; False if it is not queued."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_uuid = ?, state = 'submitted', updated_at = ? WHERE id = ? AND state = 'queued'",
            (task_uuid, to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def move_to_provider(
        self, job_id: str, provider: str, estimate: int, at: datetime, references: Sequence[str] | None = None
    ) -> bool:
        """Queue a job again on another provider at a new estimate, its old task forgotten (failover).

        `references`, when given, replace the job's stored references (the new provider's form of them: Runbase's
        URLs for Runware's UUIDs). Only for a job whose provider certainly did not take its work; False unless it is
        queued or submitted on another provider.
        """
        cursor = self._conn.execute(
            "UPDATE jobs SET provider = ?, estimate = ?, state = 'queued', task_uuid = NULL, task_sent_at = NULL,"
            " task_acked_at = NULL, updated_at = ? WHERE id = ? AND state IN ('queued', 'submitted') AND provider <> ?",
            (provider, estimate, to_ms(at), job_id, provider),
        )
        if cursor.rowcount == 0:
            return False
        if references is not None:
            # In the caller's transaction, so the references change with the provider or not at all.
            row = self._conn.execute("SELECT extras FROM jobs WHERE id = ?", (job_id,)).fetchone()
            extras = {**json.loads(row["extras"]), "references": list(references)}
            self._conn.execute(
                "UPDATE jobs SET extras = ? WHERE id = ?", (json.dumps(extras, separators=(",", ":")), job_id)
            )
        return True

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

    def save_results(
        self, job_id: str, results: Sequence[JobResult], cost: int | None, at: datetime, *, running: bool = False
    ) -> bool:
        """Store the job's result images (repeating it keeps the first ones) and, if known, the reported cost.

        `running`: only while the job is queued or submitted (a run's results); False, nothing stored, when another
        process cancelled it meanwhile (on PostgreSQL the job's row is locked first, against that cancel).
        """
        if running:
            self._lock_row(job_id)
            row = self._conn.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row[0] not in (JobState.QUEUED.value, JobState.SUBMITTED.value):
                return False
        self._conn.executemany(
            "INSERT INTO job_results (job_id, idx, image_uuid, image_url, cost, seed, nsfw, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, idx) DO NOTHING",
            [
                (
                    job_id,
                    result.index,
                    result.image_uuid,
                    result.image_url,
                    result.cost,
                    result.seed,
                    None if result.nsfw is None else int(result.nsfw),
                    to_ms(at),
                )
                for result in results
            ],
        )
        if cost is not None:
            self._conn.execute(
                "UPDATE jobs SET cost = ?, updated_at = ? WHERE id = ? AND cost IS NULL", (cost, to_ms(at), job_id)
            )
        return True

    def _lock_row(self, job_id: str) -> None:
        """Lock the job's row to the end of the unit (PostgreSQL; SQLite's writers are serialised already)."""
        if is_postgres(self._conn):
            self._conn.execute("SELECT 1 FROM jobs WHERE id = ? FOR UPDATE", (job_id,)).fetchall()

    def results(self, job_id: str) -> list[JobResult]:
        """Return the job's result images in order (empty until its task finished)."""
        rows = self._conn.execute(
            "SELECT idx, image_uuid, image_url, cost, seed, nsfw FROM job_results WHERE job_id = ? ORDER BY idx",
            (job_id,),
        ).fetchall()
        return [
            JobResult(row[0], row[1], row[2], row[3], row[4], None if row[5] is None else bool(row[5])) for row in rows
        ]

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
        """Return the member's unfinished jobs in the server (held for approval, queued, submitted), oldest first."""
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE guild_id = ? AND member_id = ? AND state IN {_UNFINISHED}"
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


class JobRepository(Repository[JobQueries]):
    """The calls the job service and the cogs make one at a time, each running the `JobQueries` method it names."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(db, JobQueries)
        self._clock = clock

    async def get(self, job_id: str) -> Job | None:
        """`JobQueries.get`."""
        return await self._read(lambda jobs: jobs.get(job_id))

    async def list_unfinished(self) -> list[Job]:
        """`JobQueries.list_unfinished`."""
        return await self._read(lambda jobs: jobs.list_unfinished())

    async def list_recent_for_member(self, guild_id: int | None, member_id: int, limit: int) -> list[Job]:
        """`JobQueries.list_recent_for_member`."""
        return await self._read(lambda jobs: jobs.list_recent_for_member(guild_id, member_id, limit))

    async def list_active_for_member(self, guild_id: int, member_id: int) -> list[Job]:
        """`JobQueries.list_active_for_member`."""
        return await self._read(lambda jobs: jobs.list_active_for_member(guild_id, member_id))

    async def find_recent_duplicate(
        self, guild_id: int, member_id: int, fingerprint: str, since: datetime
    ) -> Job | None:
        """`JobQueries.find_recent_duplicate`."""
        return await self._read(lambda jobs: jobs.find_recent_duplicate(guild_id, member_id, fingerprint, since))

    async def get_by_result_message(self, message_id: int) -> Job | None:
        """`JobQueries.get_by_result_message`."""
        return await self._read(lambda jobs: jobs.get_by_result_message(message_id))

    async def results(self, job_id: str) -> list[JobResult]:
        """`JobQueries.results`."""
        return await self._read(lambda jobs: jobs.results(job_id))

    async def last_post_at(self, job_id: str) -> datetime | None:
        """`JobQueries.last_post_at`."""
        return await self._read(lambda jobs: jobs.last_post_at(job_id))

    async def acknowledged_at(self, job_id: str) -> datetime | None:
        """`JobQueries.acknowledged_at`."""
        return await self._read(lambda jobs: jobs.acknowledged_at(job_id))

    async def begin_submit(self, job_id: str, task_uuid: str) -> bool:
        """`JobQueries.begin_submit`, now."""
        at = self._clock()
        return await self._write(lambda jobs: jobs.begin_submit(job_id, task_uuid, at))

    async def record_post(self, job_id: str, task_uuid: str) -> bool:
        """`JobQueries.record_post`, now."""
        at = self._clock()
        return await self._write(lambda jobs: jobs.record_post(job_id, task_uuid, at))

    async def mark_acknowledged(self, job_id: str) -> bool:
        """`JobQueries.mark_acknowledged`, now."""
        at = self._clock()
        return await self._write(lambda jobs: jobs.mark_acknowledged(job_id, at))

    async def save_results(self, job_id: str, results: Sequence[JobResult], cost: int | None) -> bool:
        """`JobQueries.save_results`, now (False: the job was cancelled meanwhile, nothing stored)."""
        at = self._clock()
        return await self._write(lambda jobs: jobs.save_results(job_id, results, cost, at, running=True))

    async def finish_delivered(self, job_id: str, message_id: int | None, cost: int) -> bool:
        """`JobQueries.finish_delivered`, now."""
        at = self._clock()
        return await self._write(lambda jobs: jobs.finish_delivered(job_id, message_id, cost, at))

    async def finish(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str | None,
        expected: Sequence[JobState],
        without_results: bool = False,
    ) -> bool:
        """`JobQueries.update_state` now, to an end state (failed, cancelled) and only from one of `expected`."""
        at = self._clock()
        return await self._write(
            lambda jobs: jobs.update_state(
                job_id, state, at, error=error, expected=expected, without_results=without_results
            )
        )
