"""In-process bookkeeping of unfinished jobs: their phase, when they were admitted and started, their last progress.

Admission tracks a job when it queues it, the worker moves it through its phases, progress reads it to throttle
status edits, and cancellation reads the phase to know whether it is too late. Nothing here is stored: after a
restart `resume` tracks the unfinished jobs again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from bot.storage.rows import Job


class Phase(StrEnum):
    """Where a tracked job is in this process."""

    WAITING = "waiting"
    RUNNING = "running"
    PRODUCED = "produced"
    """The images exist (Runware made and billed them): the job waits for its delivery turn, downloads and fits them.
    It can no longer be cancelled; progress is still shown."""
    DELIVERING = "delivering"
    """`deliver` was called: no progress edit may reach the message any more."""


@dataclass(slots=True)
class Tracked:
    """One unfinished job: for progress edits, elapsed times and safe cancellation."""

    job: Job
    admitted_at: float
    phase: Phase = Phase.WAITING
    started_at: float | None = None
    cancel_requested: bool = False
    last_sent: float = float("-inf")
    last_key: tuple[str, int | None] | None = None
    progress_call: asyncio.Task[None] | None = None

    @property
    def shown(self) -> bool:
        """Whether a status of the job was shown (its first one is due `status_after_seconds` after admission)."""
        return self.last_sent != float("-inf")


class ActiveJobs:
    """The unfinished jobs of this process by id (loop time throughout)."""

    def __init__(self) -> None:
        self._tracked: dict[str, Tracked] = {}

    def track(self, job: Job, *, shown: bool = True) -> Tracked:
        """Start tracking a job that was just queued (or found unfinished on start-up).

        `shown`: its status is on show already (the admission reply or an approval showed it, or a run before a
        restart did), so the next progress edit is due one interval later; else the first is due once the job has
        waited `limits.status_after_seconds`.
        """
        tracked = Tracked(job=job, admitted_at=asyncio.get_running_loop().time())
        if shown:
            tracked.last_sent = tracked.admitted_at
        self._tracked[job.id] = tracked
        return tracked

    def untrack(self, job_id: str) -> None:
        """Forget a job (finished, cancelled or no longer runnable)."""
        self._tracked.pop(job_id, None)

    def get(self, job_id: str) -> Tracked | None:
        """Return the job's bookkeeping, or None if it is not tracked."""
        return self._tracked.get(job_id)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._tracked

    def __iter__(self) -> Iterator[Tracked]:
        """Iterate over a snapshot, so tracking may change meanwhile."""
        return iter(list(self._tracked.values()))
