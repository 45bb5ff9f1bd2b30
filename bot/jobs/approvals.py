"""Held requests and quarantined results: post them to the mod-log, carry out a moderator's decision, expire them.

A request in an approval channel is admitted as `awaiting_approval` with its estimate reserved (`bot.jobs.admission`
step 5); `announce` then posts it to the mod-log (if that fails, the request is cancelled and released, and the
requester is told why). A decision is one atomic step in SQL (`ModerationRepository.decide`: the hold row's decision
and the job's state together, only if nobody decided first), so of two moderators clicking at once exactly one wins:

- **approve**: `awaiting_approval` -> `queued`, then scheduled as any other job (the requester's status moves on);
- **reject**: -> `rejected`, the hold is released, the requester is told (with the moderator's reason, if any);
- **expire**: nobody decided within `[moderation] approval_timeout_hours`: -> `cancelled` and released. `sweep` runs
  at start (so a deadline that passed while the bot was down is honoured) and every `SWEEP_SECONDS`;
- **withdraw**: the requester (or a moderator) cancels it (`Worker.cancel`): -> `cancelled`, the hold is decided in
  the same step (so a later click is refused) and the mod-log entry says so, without buttons.

At start, `reannounce` posts held requests whose message was never posted (the bot stopped in between); the sweep,
at start and then every `SWEEP_SECONDS`, posts quarantined results whose post failed (the mod-log was unreachable,
or the bot stopped), so one reaches the moderators without a restart, also when the process posting it died and its
claim ran out.
With several processes (PostgreSQL) each post is claimed in the database first (`ModerationRepository.claim_post`),
and only a process that serves the server (`ModLog.serves`: on its shard) tries: of processes starting at once, one
posts each entry, and a process on other shards never cancels a held request for a mod-log it cannot see.

A result that Runware's safety check flagged in a safety channel is not delivered: `quarantine` posts it to the
mod-log as spoilers, and the job is charged as delivered (it was paid for). **publish** posts it in the channel for
the requester and only then records the approval (a failed post leaves the buttons live) and logs it as a
generation; **discard** leaves it unposted and tells the requester what it was charged. Either way the decision is
shown on the mod-log message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.billing.ledger import Ledger
from bot.errors import InvalidRequestError
from bot.images import FittedImage, InvalidImageError, fit_to_limit
from bot.jobs.delivery import Delivery, DeliveryError, ResultSummary
from bot.jobs.modlog import ModLog
from bot.jobs.requests import DeliveryTarget
from bot.jobs.scheduler import JobScheduler
from bot.jobs.tracking import ActiveJobs
from bot.moderation.approvals import ModerationRules
from bot.money import format_usd
from bot.observability import metrics
from bot.providers.base import Providers
from bot.runware.models import ImageResult
from bot.storage.jobs import JobRepository
from bot.storage.moderation import HoldRow, ModerationRepository
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60.0
"""How often held requests past their deadline are looked for (besides at every start)."""

APPROVAL = "approval"
SAFETY = "safety"

ALREADY_DECIDED = "This request was already decided (or cancelled); nothing changed."
PUBLISH_FAILED = "The result could not be posted in its channel:"
NOTHING_DECIDED = "Nothing was decided; the buttons stay, so you can try again."


class AlreadyDecidedError(InvalidRequestError):
    """Someone (another moderator, the expiry) decided first, or the requester cancelled: nothing changed."""


class Approvals:
    """Carries held requests and quarantined results from the mod-log to their end."""

    def __init__(
        self,
        *,
        rules: ModerationRules,
        ledger: Ledger,
        jobs: JobRepository,
        scheduler: JobScheduler,
        active: ActiveJobs,
        delivery: Delivery,
        modlog: ModLog,
        providers: Providers,
        timeout_hours: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._holds = rules.repository
        self._ledger = ledger
        self._jobs = jobs
        self._scheduler = scheduler
        self._active = active
        self._delivery = delivery
        self.modlog = modlog
        self._providers = providers
        self.timeout = timedelta(hours=timeout_hours)
        self._clock = clock
        self.sweep_seconds = SWEEP_SECONDS
        self._sweeper: asyncio.Task[None] | None = None
        self._publishing: set[str] = set()

    # ------------------------------------------------------------------------------------------- held requests

    async def announce(self, job_id: str) -> None:
        """Post a just-held request to the mod-log; if that fails, cancel it, release its hold and raise why."""
        job = await self._require(job_id)
        refusal = await self._post_held(job)
        if refusal is not None:
            raise InvalidRequestError(refusal)

    async def reannounce(self, job_ids: Sequence[str]) -> list[str]:
        """At start: post the held requests `job_ids` that never reached the mod-log; return the ids posted.

        Requests past their deadline are left to `sweep`; one the mod-log cannot take now is cancelled and released,
        and its requester told why (as `announce` does). Quarantined results that never reached it are the sweep's
        (`repost_quarantined`), which runs right after this at start, then every `sweep_seconds`.
        """
        posted: list[str] = []
        deadline = self._clock() - self.timeout
        for job_id in job_ids:
            hold = await self._holds.hold(job_id)
            if hold is not None and (hold.message_id is not None or hold.decision is not None):
                continue
            job = await self._jobs.get(job_id)
            if job is None or job.state is not JobState.AWAITING_APPROVAL or job.created_at < deadline:
                continue
            if job.guild_id is None or not self.modlog.serves(job.guild_id):
                continue  # the process holding the server's shard posts it (this one cannot see its mod-log)
            await self._holds.add_hold(job.id, job.guild_id, APPROVAL)
            if not await self._holds.claim_post(job.id):
                continue  # another process is posting it (or has)
            refusal = await self._post_held(job, claimed=True)
            if refusal is None:
                log.info("held job %s announced to the mod-log at start", job.id)
                posted.append(job.id)
            else:
                await self._tell(job, refusal)
        return posted

    async def _post_held(self, job: Job, *, claimed: bool = False) -> str | None:
        """Post a held request with its buttons; on failure cancel and release it, and return the sentence why.

        Posting is claimed first (unless the caller `claimed` it): a process starting meanwhile leaves it alone.
        """
        if job.guild_id is None:  # pragma: no cover - admission holds only requests made in a server
            return "Only requests in a server can wait for approval."
        await self._holds.add_hold(job.id, job.guild_id, APPROVAL)
        if not claimed and not await self._holds.claim_post(job.id):  # pragma: no cover - a start claimed it first
            return None
        try:
            channel_id, message_id = await self.modlog.held(job, job.created_at + self.timeout)
        except Exception as exc:
            log.warning("held job %s could not be posted to the mod-log: %s", job.id, exc)
            reason = str(exc) if isinstance(exc, DeliveryError) else "The mod-log could not be posted to."
            if await self._holds.decide(
                job.id, "expired", None, reason, job_state=JobState.CANCELLED, expected=JobState.AWAITING_APPROVAL
            ):
                await self._release(job.id)
            return f"{reason} The request was not held; nothing was charged."
        await self._holds.set_hold_message(job.id, channel_id, message_id)
        return None

    async def approve(self, job_id: str, moderator_id: int) -> Job:
        """Queue a held request (one decision wins); raise `AlreadyDecidedError` if it was decided or cancelled."""
        if not await self._holds.decide(
            job_id, "approved", moderator_id, job_state=JobState.QUEUED, expected=JobState.AWAITING_APPROVAL
        ):
            raise AlreadyDecidedError(ALREADY_DECIDED)
        job = await self._require(job_id)
        metrics.current().job_state(JobState.QUEUED)
        self._active.track(job)
        position = self._scheduler.submit(job.id, job.member_id, job.provider)
        log.info("held job %s approved by %d", job_id, moderator_id)
        with contextlib.suppress(Exception):
            await self._delivery.progress(job, position, 0.0, JobState.QUEUED)
        await self._show_decision(job)
        return job

    async def reject(self, job_id: str, moderator_id: int, reason: str | None) -> Job:
        """Reject a held request: release its hold and tell the requester; `AlreadyDecidedError` if decided."""
        text = (reason or "").strip()[:500] or None
        error = "A moderator rejected this request" + (f": {text}" if text else ".")
        if not await self._holds.decide(
            job_id,
            "rejected",
            moderator_id,
            text,
            job_state=JobState.REJECTED,
            expected=JobState.AWAITING_APPROVAL,
            error=error,
        ):
            raise AlreadyDecidedError(ALREADY_DECIDED)
        metrics.current().job_state(JobState.REJECTED)
        await self._release(job_id)
        job = await self._require(job_id)
        log.info("held job %s rejected by %d", job_id, moderator_id)
        await self._tell(job, f"{error if error.endswith('.') else error + '.'} Nothing was charged.")
        await self._show_decision(job)
        return job

    async def withdraw(self, job: Job, member_id: int, who: str) -> bool:
        """Cancel a held request for its requester (or a moderator): the hold is decided with the job, in one step.

        Stored as a rejection by `member_id` with the reason `Cancelled by <who>.` and the job `cancelled` (the
        schema's decisions are approved/rejected/expired); the mod-log entry then says it was cancelled and loses its
        buttons, so a later click is told it was already decided. The caller releases the hold. False if a moderator
        (or the expiry) decided first.
        """
        job_id = job.id
        if job.guild_id is not None:
            await self._holds.add_hold(job_id, job.guild_id, APPROVAL)  # a crash may have come before `announce`
        error = f"Cancelled by {who}."
        if not await self._holds.decide(
            job_id,
            "rejected",
            member_id,
            error,
            job_state=JobState.CANCELLED,
            expected=JobState.AWAITING_APPROVAL,
            error=error,
        ):
            return False
        log.info("held job %s cancelled by %s", job_id, who)
        current = await self._jobs.get(job_id)
        if current is not None:
            await self._show_decision(current)
        return True

    async def sweep(self) -> list[str]:
        """Expire and release every held request past its deadline; return their ids.

        Then post the flagged results still missing from the mod-log (their post failed, or the process posting one
        died and its claim ran out), so one reaches the moderators within `sweep_seconds`, not at the next start.
        """
        expired: list[str] = []
        for job in await self._holds.overdue(self._clock() - self.timeout):
            if job.guild_id is not None:
                await self._holds.add_hold(job.id, job.guild_id, APPROVAL)  # a crash may have come before `announce`
            hours = self.timeout.total_seconds() / 3600
            error = f"No moderator decided within {hours:g} hour(s), so the request expired."
            if not await self._holds.decide(
                job.id,
                "expired",
                None,
                job_state=JobState.CANCELLED,
                expected=JobState.AWAITING_APPROVAL,
                error=error,
            ):
                continue
            metrics.current().job_state(JobState.CANCELLED)
            await self._release(job.id)
            log.info("held job %s expired", job.id)
            expired.append(job.id)
            current = await self._require(job.id)
            await self._tell(current, f"{error} Nothing was charged.")
            await self._show_decision(current)
        await repost_quarantined(self._holds, self._jobs, self._providers, self.modlog)
        return expired

    def start(self) -> None:
        """Sweep now and then every `sweep_seconds` until `stop`."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(), name="approval-expiry")

    async def stop(self) -> None:
        """Stop sweeping."""
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the sweep of expired approvals failed")
            await asyncio.sleep(self.sweep_seconds)

    # ----------------------------------------------------------------------------------------- safety quarantine

    async def quarantine(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> None:
        """Hold a flagged result for review in the mod-log instead of the channel (the job is charged as delivered)."""
        if job.guild_id is None:  # pragma: no cover - safety rules apply in servers only
            return
        await self._holds.add_hold(job.id, job.guild_id, SAFETY)
        if not await self._holds.claim_post(job.id):  # pragma: no cover - a process starting just now posts it
            return
        try:
            channel_id, message_id = await self.modlog.quarantined(job, images, summary)
        except Exception:
            # Never post it in the channel instead: it stays held (undecided) with no mod-log message.
            log.exception("flagged result of job %s could not be posted to the mod-log", job.id)
            await self._holds.release_post(job.id)
            await self._tell(job, "The result was flagged by the safety check and is held for a moderator's review.")
            return
        await self._holds.set_hold_message(job.id, channel_id, message_id)

    async def publish(self, job_id: str, moderator_id: int) -> int | None:
        """Post a quarantined result in its channel for the requester, then record the approval; return the message id.

        The decision is recorded only once the result is posted: if posting fails, `DeliveryError` says why and the
        hold stays undecided (the buttons stay live, so the moderator can try again). A second click meanwhile (or a
        Reject) is refused while the first is posting. The published result is logged as a generation (with Delete).
        """
        hold = await self._holds.hold(job_id)
        if hold is None or hold.kind != SAFETY or hold.decision is not None or job_id in self._publishing:
            raise AlreadyDecidedError(ALREADY_DECIDED)
        self._publishing.add(job_id)
        try:
            job = await self._require(job_id)
            try:
                fitted = await result_images(job, hold, jobs=self._jobs, providers=self._providers, modlog=self.modlog)
                summary = published_summary(job, len(fitted))
                message_id = await self._delivery.deliver(job, fitted, summary)
            except Exception as exc:
                log.warning("quarantined result of job %s could not be posted: %s", job_id, exc)
                why = str(exc) if isinstance(exc, DeliveryError) else "Discord did not take the message."
                raise DeliveryError(f"{PUBLISH_FAILED} {why} {NOTHING_DECIDED}") from exc
            if not await self._holds.decide(job_id, "approved", moderator_id):  # pragma: no cover - guarded above
                log.error("quarantined result of job %s was posted but its hold was decided meanwhile", job_id)
            await self._holds.set_result_message(job_id, message_id)
        finally:
            self._publishing.discard(job_id)
        log.info("quarantined result of job %s approved by %d and posted", job_id, moderator_id)
        await self._show_decision(job)
        await self.log_generated(job, summary, message_id)
        return message_id

    async def discard(self, job_id: str, moderator_id: int, reason: str | None) -> None:
        """Keep a quarantined result out of the channel for good, and tell the requester (who was charged for it)."""
        text = (reason or "").strip()[:500] or None
        hold = await self._holds.hold(job_id)
        if (
            hold is None
            or hold.kind != SAFETY
            or job_id in self._publishing
            or not await self._holds.decide(job_id, "rejected", moderator_id, text)
        ):
            raise AlreadyDecidedError(ALREADY_DECIDED)
        job = await self._require(job_id)
        log.info("quarantined result of job %s rejected by %d", job_id, moderator_id)
        why = f": {text}." if text else "."
        charged = format_usd(job.cost if job.cost is not None else job.estimate)
        await self._tell(
            job,
            f"A moderator did not approve the result, so it will not be posted{why} "
            f"It was still charged {charged}, as the images were made and paid for.",
        )
        await self._show_decision(job)

    # -------------------------------------------------------------------------------------------------- helpers

    async def hold(self, job_id: str) -> HoldRow | None:
        """Return the job's hold row (held request or quarantined result), or None."""
        return await self._holds.hold(job_id)

    async def log_generated(self, job: Job, summary: ResultSummary, message_id: int | None) -> None:
        """Log a delivered generation to the mod-log (never raises)."""
        try:
            await self.modlog.generated(job, summary, message_id)
        except Exception:
            log.warning("job %s could not be logged to the mod-log", job.id, exc_info=True)

    async def _show_decision(self, job: Job) -> None:
        hold = await self._holds.hold(job.id)
        if hold is None:
            return
        try:
            await self.modlog.decided(job, hold)
        except Exception:
            log.warning("the decision on job %s could not be shown in the mod-log", job.id, exc_info=True)

    async def _tell(self, job: Job, message: str) -> None:
        try:
            await self._delivery.fail(job, message)
        except Exception:
            log.warning("could not tell the requester of job %s", job.id, exc_info=True)

    async def _release(self, job_id: str) -> None:
        try:
            await self._ledger.release(job_id)
        except Exception:
            log.exception("could not release the hold of job %s", job_id)

    async def _require(self, job_id: str) -> Job:
        job = await self._jobs.get(job_id)
        if job is None:
            raise AlreadyDecidedError("That request no longer exists.")
        return job


async def repost_quarantined(
    holds: ModerationRepository, jobs: JobRepository, providers: Providers, modlog: ModLog
) -> list[str]:
    """Post again the quarantined results whose mod-log post failed; return the ids posted.

    Their images come from the job's provider (the mod-log has no copy yet). One that cannot be posted now (images
    gone, the mod-log still unreachable) stays held, undecided and out of the channel, for the next sweep or start. Of
    several processes, only those serving the result's server try, and one of them posts it (`claim_post`).
    """
    posted: list[str] = []
    for job in await holds.unposted_quarantines():
        if job.guild_id is None or not modlog.serves(job.guild_id) or not await holds.claim_post(job.id):
            continue
        hold = await holds.hold(job.id)
        if hold is None:  # pragma: no cover - the query joined it
            continue
        try:
            fitted = await result_images(job, hold, jobs=jobs, providers=providers, modlog=modlog)
            channel_id, message_id = await modlog.quarantined(job, fitted, published_summary(job, len(fitted)))
        except Exception as exc:
            log.warning("flagged result of job %s still cannot be posted to the mod-log: %s", job.id, exc)
            await holds.release_post(job.id)
            continue
        await holds.set_hold_message(job.id, channel_id, message_id)
        log.info("flagged result of job %s posted to the mod-log (its first post had failed)", job.id)
        posted.append(job.id)
    return posted


def published_summary(job: Job, image_count: int) -> ResultSummary:
    """Return the card of a quarantined result posted after a moderator approved it (already charged)."""
    cost = job.cost if job.cost is not None else job.estimate
    return ResultSummary.of_job(job, image_count=image_count, cost=cost, cost_reported=job.cost is not None)


async def result_images(
    job: Job, hold: HoldRow, *, jobs: JobRepository, providers: Providers, modlog: ModLog
) -> list[FittedImage]:
    """Return the result's images fitted for the channel: from its provider, else the mod-log message's files."""
    target = DeliveryTarget.from_job(job)
    datas: list[bytes] = []
    try:
        for result in await jobs.results(job.id):
            datas.append(
                await providers.for_job(job).download(
                    ImageResult(task_uuid=job.task_uuid or "", image_uuid=result.image_uuid, url=result.image_url)
                )
            )
    except Exception as exc:
        log.info("result of job %s not downloadable (%s); using the mod-log's copy", job.id, exc)
        datas = []
    if not datas:
        datas = list(await modlog.images(hold))
    if not datas:
        raise DeliveryError("Its images are no longer available.")
    fitted: list[FittedImage] = []
    for data in datas:
        try:
            fitted.append(
                await asyncio.to_thread(
                    fit_to_limit, data, limit=target.attachment_size_limit, preferred_format=job.format
                )
            )
        except (InvalidImageError, ValueError) as exc:
            raise DeliveryError("The images could not be prepared for posting.") from exc
    return fitted
