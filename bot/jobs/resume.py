"""After a restart: find the unfinished jobs, and continue a submitted one without ever paying for it twice.

Crash points and what the next start (`Worker.resume`: `Ledger.reconcile()` first, then every unfinished job) does:

| process dies ...                             | found on restart              | resume does                          |
|----------------------------------------------|-------------------------------|--------------------------------------|
| before the reservation                       | nothing stored                | nothing (nothing was charged)        |
| inside reserve (hold + job row: one tx)      | both or neither               | as the rows say                      |
| after reserve, before the worker started     | `queued`, hold open           | re-queue it                          |
| after the task UUID was stored, before POST  | `submitted`, UUID, no ack     | ask Runware: unknown, so submit it   |
|                                              |                               | under the same UUID                  |
| after the POST, before the ack was recorded  | `submitted`, UUID, no ack     | ask Runware: known, so only poll     |
| after the ack, while Runware works           | `submitted`, UUID, ack        | poll by UUID, never resubmit         |
| after Runware finished, results stored       | `submitted`, job_results rows | deliver from the stored results      |
| after `deliver` posted, before recording it  | `submitted`, not delivered    | deliver again (`redelivery`)         |
| after `succeeded` + delivered, before settle | `succeeded`, cost, hold open  | reconcile settles to the job's cost  |
| after failed/cancelled, before the release   | failed or cancelled, held     | reconcile releases the hold          |
| after settle or release                      | finished, hold closed         | nothing                              |

The one window that cannot be closed is the second-to-last delivery row: the post happened, the record did not.
The job is then posted again after the restart, flagged `redelivery`; the Discord edge keeps that idempotent while
the interaction token is valid by editing the same original response, and only after the token expired (15 minutes)
does a second message appear. It is still charged once: the charge follows the recorded delivery, and the ledger
allows one charge per job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from bot.billing.ledger import Ledger, ReconcileReport
from bot.runware.client import RunwareClient
from bot.runware.models import ImageInferenceRequest, ImageResult
from bot.settings import RunwareConfig
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

RESUME_MIN_WAIT_SECONDS = 30.0
"""The least time a resumed task is polled for, even when its task timeout has (nearly) passed."""


@dataclass(frozen=True, slots=True)
class ResumeReport:
    """What `resume` found and did on start-up."""

    reconcile: ReconcileReport
    requeued: list[str] = field(default_factory=list)
    """Jobs found `queued`, queued again."""
    resumed: list[str] = field(default_factory=list)
    """Jobs found `submitted`, polled (or delivered from stored results) without resubmitting."""
    waiting_approval: list[str] = field(default_factory=list)
    """Jobs awaiting a moderator; left alone."""


class Restarts:
    """What a start does about the jobs an earlier process left unfinished."""

    def __init__(
        self,
        client: RunwareClient,
        ledger: Ledger,
        jobs: JobRepository,
        runware: RunwareConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._client = client
        self._ledger = ledger
        self._jobs = jobs
        self._runware = runware
        self._clock = clock

    async def unfinished(self) -> tuple[ResumeReport, list[Job]]:
        """Reconcile the ledger, then return what was found and the jobs to run, `submitted` ones first.

        Submitted jobs come first, so each member's runs on Runware start before their waiting ones (the
        round-robin across members still holds).
        """
        reconciled = await self._ledger.reconcile()
        unfinished = await self._jobs.list_unfinished()
        submitted = [job for job in unfinished if job.state is JobState.SUBMITTED]
        queued = [job for job in unfinished if job.state is JobState.QUEUED]
        report = ResumeReport(
            reconcile=reconciled,
            requeued=[job.id for job in queued],
            resumed=[job.id for job in submitted],
            waiting_approval=[job.id for job in unfinished if job.state is JobState.AWAITING_APPROVAL],
        )
        return report, [*submitted, *queued]

    async def continue_submitted(self, job: Job, request: ImageInferenceRequest) -> tuple[list[ImageResult], bool]:
        """Get a submitted job's images: from storage if an earlier run stored them, else from Runware by its UUID.

        Returns the images and whether they were already stored (an earlier run may have posted them).
        """
        stored = await self._jobs.results(job.id)
        if stored:
            log.info("job %s: delivering the %d stored result(s) after a restart", job.id, len(stored))
            task_uuid = job.task_uuid or ""
            restored = [
                ImageResult(
                    task_uuid=task_uuid, image_uuid=r.image_uuid, url=r.image_url, cost_micros=r.cost, nsfw=r.nsfw
                )
                for r in stored
            ]
            return restored, True
        return await self._poll(job, request), False

    async def _poll(self, job: Job, request: ImageInferenceRequest) -> list[ImageResult]:
        """Resume a submitted job by its stored task UUID; submit (under that UUID) only if Runware never got it."""
        task_uuid = job.task_uuid
        if task_uuid is None:
            raise RuntimeError(f"job {job.id} is submitted without a task UUID")
        acked = await self._jobs.acknowledged_at(job.id)
        early: list[ImageResult] = []
        if acked is None:
            # Died between storing the UUID and Runware's answer: a POST may still be registering, so "unknown"
            # counts only once the client's late-registration window has passed since the *latest* POST (a re-POST in
            # `submit`, or this method's own submit in an earlier restart). With none recorded (none was sent, as
            # each is recorded first, or the job predates schema version 5), count from storing the UUID
            # (`updated_at`, set just before the first POST).
            sent_at = await self._jobs.last_post_at(job.id) or job.updated_at
            sent_ago = (self._clock() - sent_at).total_seconds()
            state = await self._client.find_recent_task(task_uuid, sent_ago)
            if state is None:
                log.info("task %s of job %s never reached Runware; submitting it now", task_uuid, job.id)
                early = await self._client.submit(request, task_uuid, before_post=self.post_recorder(job.id, task_uuid))
            else:
                early = list(state.images)
            await self._jobs.mark_acknowledged(job.id)
            acked = self._clock()
        budget = self._runware.task_timeout_seconds
        left = budget - (self._clock() - acked).total_seconds()
        timeout = max(left, min(RESUME_MIN_WAIT_SECONDS, budget))
        log.info("job %s: polling task %s after a restart", job.id, task_uuid)
        return await self._client.wait(task_uuid, job.count, timeout=timeout, known=early)

    def post_recorder(self, job_id: str, task_uuid: str) -> Callable[[], Awaitable[None]]:
        """Return `submit`'s `before_post` for a job: it stores the time of each POST of the task before it is sent.

        A crash after a POST then makes the next start wait for the latest one to register before it counts the
        task as unknown to Runware.
        """

        async def record() -> None:
            if not await self._jobs.record_post(job_id, task_uuid):
                raise RuntimeError(f"job {job_id} no longer has task {task_uuid}; not posting it")

        return record
