"""The `job_runs` table: a Runbase job's runs, one per image, written before each create is sent.

`RunQueries` holds the queries; `RunRepository` is the async face the Runbase provider uses, one transaction per call,
stamped with its clock. A row is `creating` from just before the create until Runbase's answer is stored with its run
id (`created`); a `creating` row found later is a create whose answer never arrived (`lost`), never sent again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.clock import to_ms, utc_now
from bot.storage.database import Database, Repository


class RunRowError(RuntimeError):
    """A run was about to be created whose row says it already was (or ended): it is not sent."""


class RunState(StrEnum):
    """Where one Runbase run of a job stands."""

    CREATING = "creating"
    """The create is about to be, or was, sent; no answer stored yet."""
    CREATED = "created"
    """Runbase answered with the run id; it is being polled."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Not made (refused before creating) or failed on Runbase (refunded): costs nothing."""
    LOST = "lost"
    """The create's answer never arrived: the run may exist and be paid; it is never sent again."""
    ABANDONED = "abandoned"
    """Created, but the bot stopped waiting (a timeout): it may still finish and be paid."""


PAID_STATES = frozenset({RunState.SUCCEEDED, RunState.LOST, RunState.ABANDONED})
"""States whose `cost` the owner may have paid."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """One row of `job_runs`."""

    job_id: str
    index: int
    state: RunState
    run_id: str | None
    cost: int | None
    """Micro-dollars: Runbase's `costUsd` as answered; for a lost run, what the job is charged for it."""
    url: str | None
    error: str | None


def _run_from_row(row: sqlite3.Row) -> JobRun:
    return JobRun(
        job_id=row["job_id"],
        index=row["idx"],
        state=RunState(row["state"]),
        run_id=row["run_id"],
        cost=row["cost"],
        url=row["url"],
        error=row["error"],
    )


class RunQueries:
    """Every query on `job_runs`, on a connection inside a `Database.run()` transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def begin(self, job_id: str, index: int, at: datetime) -> None:
        """Store run `index` of a job as `creating`, just before its create is sent.

        Again before a resend after a 429 it changes nothing; `RunRowError` when the run has another state (it was
        created or has ended: it is never sent twice).
        """
        self._conn.execute(
            "INSERT INTO job_runs (job_id, idx, state, created_at, updated_at) VALUES (?, ?, 'creating', ?, ?)"
            " ON CONFLICT (job_id, idx) DO NOTHING",
            (job_id, index, to_ms(at), to_ms(at)),
        )
        row = self._conn.execute("SELECT state FROM job_runs WHERE job_id = ? AND idx = ?", (job_id, index)).fetchone()
        if row is None or row[0] != RunState.CREATING.value:
            raise RunRowError(f"run {index} of job {job_id} is {row[0] if row else 'gone'}; it is not created again")

    def created(self, job_id: str, index: int, run_id: str, cost: int, at: datetime) -> bool:
        """Store the run id and `costUsd` Runbase answered; False unless the row was `creating`."""
        cursor = self._conn.execute(
            "UPDATE job_runs SET state = 'created', run_id = ?, cost = ?, updated_at = ?"
            " WHERE job_id = ? AND idx = ? AND state = 'creating'",
            (run_id, cost, to_ms(at), job_id, index),
        )
        return cursor.rowcount > 0

    def end(
        self,
        job_id: str,
        index: int,
        state: RunState,
        at: datetime,
        *,
        cost: int | None = None,
        url: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move a run that has not ended to an end state (`cost` kept unless given); False if it had ended."""
        cursor = self._conn.execute(
            "UPDATE job_runs SET state = ?, cost = COALESCE(?, cost), url = COALESCE(?, url), error = ?,"
            " updated_at = ? WHERE job_id = ? AND idx = ? AND state IN ('creating', 'created')",
            (state.value, cost, url, error, to_ms(at), job_id, index),
        )
        return cursor.rowcount > 0

    def for_job(self, job_id: str) -> list[JobRun]:
        """Every run of a job, by index."""
        rows = self._conn.execute("SELECT * FROM job_runs WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        return [_run_from_row(row) for row in rows]

    def forget(self, job_id: str) -> int:
        """Delete a job's runs (when the job moves to another provider before any run was made)."""
        return self._conn.execute("DELETE FROM job_runs WHERE job_id = ?", (job_id,)).rowcount


class RunRepository(Repository[RunQueries]):
    """The calls the Runbase provider makes one at a time, each running the `RunQueries` method it names."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(db, RunQueries)
        self._clock = clock

    async def begin(self, job_id: str, index: int) -> None:
        """`RunQueries.begin`, now."""
        at = self._clock()
        await self._write(lambda runs: runs.begin(job_id, index, at))

    async def created(self, job_id: str, index: int, run_id: str, cost: int) -> bool:
        """`RunQueries.created`, now."""
        at = self._clock()
        return await self._write(lambda runs: runs.created(job_id, index, run_id, cost, at))

    async def end(
        self,
        job_id: str,
        index: int,
        state: RunState,
        *,
        cost: int | None = None,
        url: str | None = None,
        error: str | None = None,
    ) -> bool:
        """`RunQueries.end`, now."""
        at = self._clock()
        return await self._write(lambda runs: runs.end(job_id, index, state, at, cost=cost, url=url, error=error))

    async def for_job(self, job_id: str) -> list[JobRun]:
        """`RunQueries.for_job`."""
        return await self._read(lambda runs: runs.for_job(job_id))

    async def forget(self, job_id: str) -> int:
        """`RunQueries.forget`."""
        return await self._write(lambda runs: runs.forget(job_id))
