"""Throttled progress edits: a waiting job's position when it changes, a running job's elapsed time.

`Delivery.progress` is sent from one loop, at most once per `limits.progress_edit_seconds` per job (the one place
that throttles). An edit still on its way is never piled on; a job being delivered or cancelled gets none. A job
whose admission did not show its status gets its first one once it has waited `limits.status_after_seconds`: one
done sooner is never shown in progress, its result is the only edit (Discord's "thinking…" shows meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.jobs.delivery import Delivery
from bot.jobs.scheduler import JobScheduler
from bot.jobs.tracking import ActiveJobs, Phase
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)


class Progress:
    """Sends the tracked jobs' progress through the `Delivery` port, throttled per job."""

    def __init__(
        self, delivery: Delivery, scheduler: JobScheduler, active: ActiveJobs, interval: float, first_after: float = 0.0
    ) -> None:
        self._delivery = delivery
        self._scheduler = scheduler
        self._active = active
        self._interval = interval
        self._first_after = first_after
        self._loop: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop (again, after `stop`); a running loop is kept."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._report(), name="job-progress")

    async def stop(self) -> None:
        """Stop the loop and every progress edit still on its way."""
        loop_task, self._loop = self._loop, None
        calls = [tracked.progress_call for tracked in self._active if tracked.progress_call is not None]
        for task in [loop_task, *calls]:
            if task is not None and not task.done():
                task.cancel()
        for task in [loop_task, *calls]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _report(self) -> None:
        period = self._interval / 3
        if self._first_after > 0:  # first statuses come at most a quarter of their delay late
            period = min(period, max(self._first_after / 4, 0.1))
        while True:
            await asyncio.sleep(period)
            self.tick()

    def tick(self) -> None:
        """Start the progress edits that are due now (one per job per interval, only when there is news)."""
        delivery = self._delivery
        interval = self._interval
        now = asyncio.get_running_loop().time()
        positions: dict[str, int] | None = None
        for tracked in self._active:
            if tracked.cancel_requested or tracked.phase is Phase.DELIVERING:
                continue
            if not tracked.shown and now - tracked.admitted_at < self._first_after:
                continue  # "thinking…" is on show; a job done within the delay gets no progress edit at all
            if now - tracked.last_sent < interval:
                continue
            if tracked.progress_call is not None and not tracked.progress_call.done():
                continue  # the previous edit is still on its way; skip rather than pile up
            if tracked.phase is Phase.WAITING:
                if positions is None:
                    positions = self._scheduler.positions()
                position = positions.get(tracked.job.id)
                if position is None:
                    continue
                key: tuple[str, int | None] = ("queued", position)
                if key == tracked.last_key:
                    continue
                elapsed, state = now - tracked.admitted_at, JobState.QUEUED
            else:
                posting = tracked.phase is Phase.PRODUCED
                position, key = None, ("posting" if posting else "running", None)
                if posting and key == tracked.last_key:
                    continue  # "being posted" is said once; it has no clock to update
                elapsed, state = now - (tracked.started_at or now), JobState.SUBMITTED
            tracked.last_sent, tracked.last_key = now, key
            tracked.progress_call = asyncio.get_running_loop().create_task(
                _send(delivery, tracked.job, position, elapsed, state, posting=key[0] == "posting")
            )


async def _send(
    delivery: Delivery, job: Job, position: int | None, elapsed: float, state: JobState, *, posting: bool
) -> None:
    try:
        await delivery.progress(job, position, elapsed, state, posting=posting)
    except Exception:
        log.debug("progress edit for job %s failed", job.id, exc_info=True)
