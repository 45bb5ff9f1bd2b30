"""The worker: run each queued job on its provider, post its result through the `Delivery` port, settle or release.

A run (`Worker.run_job`, started by the scheduler) has the job's provider (`bot.providers`) move it to `submitted`
and store what a restart needs *before* the request (Runware: a fresh task UUID), submit and wait; it then stores
the result images, downloads and fits them to the channel's upload limit, and calls `Delivery.deliver`; at most
`limits.delivery_concurrency` jobs download, fit and post at once (each holds its images in memory meanwhile), while
the others wait their turn (the result card's budget line is read while the images download, and the charge is
recorded after the turn is handed on); a job hands its scheduler (provider) slot to the next job as soon as its
images exist.
Only after a successful delivery does one transaction
record `succeeded`, `delivered_at`, the message id and the cost, and settle the hold to that cost
(`Ledger.settle_delivered`: one unit of work).
Every failure first moves the job to `failed`/`cancelled` and then releases the hold; `Ledger.reconcile()` closes
the gap between the two if the process dies there. A submitted job found after a restart is continued by
`bot.jobs.resume` (which holds the crash-point table), never resubmitted blindly.

Cancelling a running job stops the worker and releases the hold; a submitted Runware task keeps running on Runware
(client-side cancel does not stop it, and the owner may be billed for it) but is never resubmitted or delivered.
Once the job's images are made and stored it can no longer be cancelled, also while it waits for its delivery turn:
they are posted and charged (the check and the phase change are synchronous on the event loop, so the two cannot
interleave).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from bot.billing.errors import LedgerError
from bot.billing.ledger import Ledger, ReconcileReport
from bot.errors import AtelierError, PermissionDeniedError
from bot.images import FittedImage, InvalidImageError, fit_to_limit
from bot.jobs.approvals import Approvals
from bot.jobs.delivery import Delivery, DeliveryError, ResultSummary
from bot.jobs.errors import JobNotCancellableError
from bot.jobs.failover import Failover
from bot.jobs.modlog import ModLog, NoModLog
from bot.jobs.progress import Progress
from bot.jobs.requests import DeliveryTarget, job_role_ids
from bot.jobs.resume import Restarts, ResumeReport
from bot.jobs.scheduler import JobScheduler
from bot.jobs.tracking import ActiveJobs, Phase, Tracked
from bot.jobs.unsure import fail_charged
from bot.log import log_context
from bot.moderation.policy import mark_retrieved
from bot.observability import metrics
from bot.providers.base import PaidFailureError, Providers
from bot.runware.errors import RunwareError
from bot.runware.models import ImageResult, total_cost_micros
from bot.settings import AppConfig
from bot.storage.jobs import JobRepository
from bot.storage.rows import ACTIVE_STATES, Job, JobResult, JobState

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong while making your images. Nothing was charged."
"""Shown when a job fails for a reason that is not the member's to fix (the traceback goes to the log)."""

DELIVERY_FAILURE = "The images were made but could not be posted here. Nothing was charged."
"""Shown when posting the result failed for a reason the cog did not explain with a `DeliveryError`."""

_ACTIVE = tuple(ACTIVE_STATES)
_RUNNABLE = (JobState.QUEUED, JobState.SUBMITTED)

_TOO_LATE = (
    "Its images are already made and are being posted, so it is too late to cancel it; "
    "it will be charged as usual once they are posted."
)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What `cancel` did."""

    job: Job
    """The job as it was just before it was cancelled."""
    released: int
    """Micro-dollars returned to the member's budget (0 if the hold had already ended)."""
    was_running: bool

    @property
    def previous_state(self) -> JobState:
        """The state the job was cancelled from (queued, submitted or awaiting approval)."""
        return self.job.state


@dataclass(frozen=True, slots=True)
class _Posted:
    """What posting a result left for charging it: the message, the cost, the card, and whether it was held."""

    message_id: int | None
    cost: int
    summary: ResultSummary
    quarantined: bool


class Worker:
    """Runs jobs from the scheduler to their end, resumes unfinished ones on start, and cancels them safely."""

    def __init__(
        self,
        *,
        providers: Providers,
        ledger: Ledger,
        config: AppConfig,
        scheduler: JobScheduler,
        delivery: Delivery,
        jobs: JobRepository,
        active: ActiveJobs,
        approvals: Approvals | None = None,
        modlog: ModLog | None = None,
        failover: Failover | None = None,
    ) -> None:
        self._approvals = approvals
        self._failover = failover
        self._modlog = modlog or (approvals.modlog if approvals is not None else NoModLog())
        self._providers = providers
        self._ledger = ledger
        self._config = config
        self._scheduler = scheduler
        self._delivery = delivery
        self._jobs = jobs
        self._active = active
        self._restarts = Restarts(providers, ledger, jobs)
        limits = config.limits
        self._progress = Progress(
            delivery, scheduler, active, limits.progress_edit_seconds, first_after=limits.status_after_seconds
        )
        # A job holds its result images in memory from download to post (up to 4 of ~1.5 MB, and a copy while
        # posting); this bounds how many do so at once, whatever global_concurrency is. The provider slot is
        # already given back (`Scheduler.release_slot`).
        self._delivering = asyncio.Semaphore(config.limits.delivery_concurrency)

    # --------------------------------------------------------------------------------------- start, resume, stop

    async def resume(self, reconciled: ReconcileReport | None = None) -> ResumeReport:
        """On start-up: reconcile the ledger, re-queue `queued` jobs, resume `submitted` ones, and start running.

        `reconciled`: the report of the reconcile this process ran at start (`bot.app`); the ledger is not read again.
        Submitted jobs are queued first; they poll by the stored task UUID (or deliver from stored results) and
        never submit a task Runware already knows.
        """
        report, runnable = await self._restarts.unfinished(reconciled)
        for job in runnable:
            if job.id not in self._active:
                self._active.track(job)
            self._scheduler.submit(job.id, job.member_id, job.provider)
        self._scheduler.start(self.run_job, elsewhere=self._active.untrack)
        self._progress.start()
        if report.resumed or report.requeued:
            log.info("resumed %d submitted and re-queued %d queued job(s)", len(report.resumed), len(report.requeued))
        return report

    async def stop(self, grace: float) -> None:
        """Give running jobs `grace` seconds, then cancel them (they stay `submitted`); stop the progress edits."""
        await self._scheduler.stop(grace)
        await self._progress.stop()

    async def wait_idle(self) -> None:
        """Wait until no job is waiting or running in this process."""
        await self._scheduler.wait_idle()

    # ------------------------------------------------------------------------------------------------ one run

    async def run_job(self, job_id: str) -> None:
        """Run one job to its end (delivered and settled, or failed and released); cancellation leaves it resumable."""
        tracked = self._active.get(job_id)
        if tracked is not None and tracked.phase is Phase.WAITING and tracked.job.state is JobState.QUEUED:
            # Queued by this process (admitted or approved) and never started: the job is the row as written, and
            # the provider submits it only if it is still queued (`begin_submit` checks the state in the same write
            # that stores the task UUID), so a cancel from anywhere meanwhile is still honoured. One read fewer.
            job = tracked.job
        else:
            read = await self._jobs.get(job_id)
            if read is None or read.state not in _RUNNABLE:
                self._active.untrack(job_id)
                return
            job = read
            tracked = self._active.get(job_id) or self._active.track(job)
        if tracked.cancel_requested:
            return
        tracked.phase = Phase.RUNNING
        tracked.started_at = asyncio.get_running_loop().time()
        with log_context(job_id=job_id, guild_id=job.guild_id):
            await self._run_logged(job, tracked)

    async def _run_logged(self, job: Job, tracked: Tracked) -> None:
        """`run_job` past its checks, inside the job's log context: failures become the job's failed state."""
        job_id = job.id
        try:
            await self._run(job, tracked)
        except asyncio.CancelledError:
            if tracked.cancel_requested:
                log.info("run of job %s stopped: cancelled", job_id)
            else:
                log.info("run of job %s interrupted; the next start resumes it", job_id)
            raise
        except PaidFailureError as exc:
            log.warning("job %s made no image but may have been paid: %s", job_id, exc)
            await fail_charged(
                job, exc, ledger=self._ledger, jobs=self._jobs, delivery=self._delivery, modlog=self._modlog
            )
        except RunwareError as exc:
            log.warning("job %s failed on %s: %s", job_id, job.provider, exc)
            await self._fail(job, exc.user_message)
        except DeliveryError as exc:
            log.warning("job %s could not be delivered: %s", job_id, exc)
            await self._fail(job, str(exc))
        except Exception:
            log.exception("job %s failed", job_id)
            await self._fail(job, GENERIC_FAILURE)
        finally:
            self._active.untrack(job_id)

    async def _run(self, job: Job, tracked: Tracked) -> None:
        produced = await self._produce(job)
        if produced is None or tracked.cancel_requested:
            return
        # The images exist and are stored: from here the job is posted and charged, never cancelled (a cancel now
        # would leave the owner paying Runware for nothing). No await between the check above and this: see cancel().
        tracked.phase = Phase.PRODUCED
        images, redelivery, job = produced
        async with self._delivering:
            posted = await self._post_results(job, tracked, images, redelivery)
        # Charged after the delivery turn is handed on: the settlement needs no images in memory.
        if not await self._record_delivered(job, posted.message_id, posted.cost):
            return
        log.info(
            "job %s delivered (%d image(s), message %s), charged %s",
            job.id,
            posted.summary.image_count,
            posted.message_id,
            posted.cost,
        )
        if self._approvals is not None and not posted.quarantined:
            await self._approvals.log_generated(job, posted.summary, posted.message_id)

    async def _produce(self, job: Job) -> tuple[list[ImageResult], bool, Job] | None:
        """Get the job's images: submit a queued job, or continue a submitted one without resubmitting.

        Returns the images, whether they were already stored by an earlier run (which may have posted them), and the
        job as it ran (a queued job may have moved to another provider, `bot.jobs.failover`); None when the job is
        no longer queued.
        """
        if job.state is JobState.QUEUED:
            if self._failover is not None:
                produced, job = await self._failover.produce(job)
            else:
                produced = await self._providers.for_job(job).produce(job)
            if produced is None:
                return None
            images = produced
        else:
            images, stored = await self._restarts.continue_submitted(job)
            if stored:
                self._scheduler.release_slot(job.id)
                return images, True, job
        # The provider's work is done: its slot goes to the next job now, not after storing, downloading and posting
        # the images (the slot bounds the provider's tasks, nothing of ours).
        self._scheduler.release_slot(job.id)
        results = [
            JobResult(index, image.image_uuid, image.url, image.cost_micros, image.seed, image.nsfw)
            for index, image in enumerate(images)
        ]
        if not await self._jobs.save_results(job.id, results, total_cost_micros(images)):
            log.info("job %s was cancelled while its images were made; not posting them", job.id)
            return None
        return images, False, job

    async def _post_results(self, job: Job, tracked: Tracked, images: list[ImageResult], redelivery: bool) -> _Posted:
        """Download the images and fit them to the upload limit while the result card is read, then post them."""
        reported = total_cost_micros(images)
        if reported is None:
            # The estimate stands in for the bill, for the images that were made only (a partial result is not
            # charged in full), rounded down in the member's favour.
            cost = job.estimate * min(len(images), job.count) // job.count
            log.warning(
                "Runware left a cost out for job %s; charging %d of its estimate %d", job.id, cost, job.estimate
            )
        else:
            cost = reported
        # The card's budget line is read from the database while the images download (a fitted image is never
        # dropped, so the card's count is the images'); a failed download stops the read.
        card = asyncio.create_task(self._card(job, len(images), cost, reported is not None, redelivery))
        try:
            fitted = await self._fetch(job, images)
        except BaseException:
            card.cancel()
            card.add_done_callback(mark_retrieved)  # a read that failed before the cancel is not an unheard error
            raise
        summary = await card
        tracked.phase = Phase.DELIVERING  # no more progress edits; cancel() has refused since PRODUCED
        quarantined = bool(job.extras.get("safety")) and any(image.nsfw for image in images)
        try:
            if quarantined:
                if self._approvals is None:  # pragma: no cover - the service always builds the worker with approvals
                    raise DeliveryError("The result was flagged by the safety check and cannot be posted here.")
                # Flagged by Runware's safety check: held in the mod-log for review, never posted in the channel.
                await self._approvals.quarantine(job, fitted, summary)
                message_id = None
            else:
                message_id = await self._delivery.deliver(job, fitted, summary)
        except (DeliveryError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("delivery of job %s failed", job.id)
            raise DeliveryError(DELIVERY_FAILURE) from exc
        return _Posted(message_id, cost, summary, quarantined)

    async def _fetch(self, job: Job, images: list[ImageResult]) -> list[FittedImage]:
        """Download each image and fit it to the target's upload limit (`DeliveryError` if one cannot be)."""
        limit = DeliveryTarget.from_job(job).attachment_size_limit
        fitted: list[FittedImage] = []
        for image in images:
            data = await self._providers.for_job(job).download(image)
            fit = partial(fit_to_limit, data, limit=limit, preferred_format=job.format)
            try:
                # An image that fits is only checked (at most ~0.5 ms for a 1.6 MB PNG), cheaper here than the
                # hand-over to a thread and back; one that must be re-encoded (tens of ms) goes to a thread.
                fitted.append(fit() if len(data) <= limit else await asyncio.to_thread(fit))
            except (InvalidImageError, ValueError) as exc:
                log.error("image %s of job %s cannot be fitted: %s", image.image_uuid, job.id, exc)
                raise DeliveryError(DELIVERY_FAILURE) from exc
        return fitted

    async def _card(self, job: Job, image_count: int, cost: int, reported: bool, redelivery: bool) -> ResultSummary:
        """Return the result card: the summary, and the images the provider may have billed but not made."""
        summary = await self._summary(job, image_count, cost, reported, redelivery)
        unsure = await self._providers.for_job(job).unsure_images(job)
        return replace(summary, unsure_images=unsure) if unsure else summary

    async def _record_delivered(self, job: Job, message_id: int | None, cost: int) -> bool:
        """Mark the job delivered and settle its hold, in one unit of work; False if it was no longer deliverable.

        If the ledger refuses the settlement (no reservation), the job is still recorded as delivered, and the
        failure logged, as when the two were separate writes: the member got the images.
        """
        try:
            settled = await self._ledger.settle_delivered(job.id, cost, message_id)
        except LedgerError:
            log.exception("job %s was delivered but could not be settled", job.id)
            delivered = await self._jobs.finish_delivered(job.id, message_id, cost)
        else:
            delivered = settled is not None
        if not delivered:
            current = await self._jobs.get(job.id)
            log.error(
                "job %s was delivered but is now %s; not charging it", job.id, current.state if current else "gone"
            )
            return False
        metrics.current().job_state(JobState.SUCCEEDED)
        return True

    async def _summary(self, job: Job, image_count: int, cost: int, reported: bool, redelivery: bool) -> ResultSummary:
        remaining: int | None = None
        resets_at: datetime | None = None
        if job.guild_id is not None:
            try:
                status = await self._ledger.status(job.guild_id, job.member_id, job_role_ids(job))
            except AtelierError:
                log.warning("no budget status for job %s", job.id, exc_info=True)
            else:
                resets_at = status.resets_at
                # The hold is still counted as reserved; after settling, the charge replaces it.
                remaining = None if status.remaining is None else max(0, status.remaining + job.estimate - cost)
        return ResultSummary.of_job(
            job,
            image_count=image_count,
            cost=cost,
            cost_reported=reported,
            remaining=remaining,
            resets_at=resets_at,
            redelivery=redelivery,
        )

    async def _fail(self, job: Job, message: str) -> None:
        """Record the failure first, then release the hold (reconcile finishes it if we die between), then tell."""
        if not await self._jobs.finish(job.id, JobState.FAILED, error=message, expected=_RUNNABLE):
            log.info("job %s already finished; not marking it failed", job.id)
            return
        metrics.current().job_state(JobState.FAILED)
        await self._release(job.id)
        try:
            await self._delivery.fail(job, message)
        except Exception:
            log.warning("could not tell the member that job %s failed", job.id, exc_info=True)

    async def _release(self, job_id: str) -> bool:
        try:
            return await self._ledger.release(job_id)
        except LedgerError:
            log.exception("could not release the hold of job %s", job_id)
            return False

    # ------------------------------------------------------------------------------------------------- cancel

    async def cancel(self, job: Job, member_id: int, *, is_moderator: bool) -> CancelResult:
        """Cancel a queued or running job (as just read) and release its reservation; see `GenerationService.cancel`."""
        job_id = job.id
        if job.member_id != member_id and not is_moderator:
            raise PermissionDeniedError("Only the member who asked for this job, or a moderator, can cancel it.")
        if job.state.is_finished:
            raise JobNotCancellableError(_finished_sentence(job.state))
        tracked = self._active.get(job_id)
        elsewhere = tracked is None or tracked.phase is Phase.WAITING
        if elsewhere:
            # Not running here (another process may run it, or it waits to be resumed): if its images are already
            # made and stored, they are posted and charged, as when the run is here.
            if await self._jobs.results(job_id):
                raise JobNotCancellableError(_TOO_LATE)
            tracked = self._active.get(job_id)
        # From here to `cancel_requested` there is no await, so the worker cannot get its images unnoticed: it checks
        # `cancel_requested` and leaves RUNNING in one synchronous step as soon as they are stored (see `_run`).
        if tracked is not None:
            if tracked.phase in (Phase.PRODUCED, Phase.DELIVERING):
                raise JobNotCancellableError(_TOO_LATE)
            tracked.cancel_requested = True
        self._scheduler.remove(job_id)
        who = "a moderator" if is_moderator and job.member_id != member_id else "the member"
        if job.state is JobState.AWAITING_APPROVAL and self._approvals is not None:
            # A held request: its hold is decided with it, so the mod-log's buttons stop working (and say so).
            changed = await self._approvals.withdraw(job, member_id, who)
        else:
            error = f"Cancelled by {who}."
            # Not running here: the images may be stored by another process meanwhile; the cancel only holds if none
            # is (one unit, the job's row locked against that process's `save_results`).
            changed = await self._jobs.finish(
                job_id, JobState.CANCELLED, error=error, expected=_ACTIVE, without_results=elsewhere
            )
        if not changed:
            if elsewhere and await self._jobs.results(job_id):
                raise JobNotCancellableError(_TOO_LATE)
            current = await self._jobs.get(job_id)
            state = current.state if current is not None else JobState.CANCELLED
            raise JobNotCancellableError(_finished_sentence(state))
        metrics.current().job_state(JobState.CANCELLED)
        was_running = self._scheduler.cancel_running(job_id)
        released = await self._release(job_id)
        self._active.untrack(job_id)
        log.info("job %s cancelled by %s (was %s)", job_id, who, job.state.value)
        return CancelResult(job, job.estimate if released else 0, was_running)


def _finished_sentence(state: JobState) -> str:
    return {
        JobState.SUCCEEDED: "That job already finished and was posted; there is nothing to cancel.",
        JobState.FAILED: "That job already failed (nothing was charged); there is nothing to cancel.",
        JobState.CANCELLED: "That job was already cancelled.",
        JobState.REJECTED: "That job was rejected by a moderator; there is nothing to cancel.",
    }.get(state, "That job can no longer be cancelled.")
