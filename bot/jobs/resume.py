"""After a restart: find the unfinished jobs, and continue a submitted one without ever paying for it twice.

Crash points and what the next start (`Ledger.reconcile()` first, by `bot.app` before connecting or else by
`Worker.resume`, then every unfinished job) does:

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

The rows about the task UUID are Runware's; each job continues on the provider stored with it
(`bot.providers.base.Provider.resume`: `bot.providers.runware` holds the Runware side of this table,
`bot.providers.runbase` Runbase's: a run stored `creating` without a run id is lost, never created again).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from bot.billing.ledger import Ledger, ReconcileReport
from bot.providers.base import Providers
from bot.runware.models import ImageResult
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)


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

    def __init__(self, providers: Providers, ledger: Ledger, jobs: JobRepository) -> None:
        self._providers = providers
        self._ledger = ledger
        self._jobs = jobs

    async def unfinished(self, reconciled: ReconcileReport | None = None) -> tuple[ResumeReport, list[Job]]:
        """Reconcile the ledger, then return what was found and the jobs to run, `submitted` ones first.

        `reconciled`: the report of a reconcile this process already ran at start (`bot.app` runs one before the
        bot connects); the ledger is then not read whole a second time. Submitted jobs come first, so each member's
        runs on Runware start before their waiting ones (the round-robin across members still holds).
        """
        if reconciled is None:
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

    async def continue_submitted(self, job: Job) -> tuple[list[ImageResult], bool]:
        """Get a submitted job's images: from storage if an earlier run stored them, else from the job's provider.

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
        return await self._providers.for_job(job).resume(job), False
