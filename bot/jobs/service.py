"""The generation service: the one object the cogs and the composition root see, delegating by phase.

Admission (`bot.jobs.admission`, with `bot.jobs.references`) turns a request into a queued job; the worker
(`bot.jobs.worker`, with `bot.jobs.resume` and `bot.jobs.progress`) runs it on Runware, posts it through the
`Delivery` port and keeps the money right. Held requests and quarantined results (`bot.jobs.approvals`) reach
moderators through the `ModLog` port (`bot.jobs.modlog`); a blocklist refusal is logged there too. Look-ups
(`get_job`, `job_results`, `job_for_message`,
`queue_for_member`) read storage and this process's bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import aiohttp

from bot.billing.ledger import Ledger, ReconcileReport
from bot.billing.pricing import Pricing
from bot.catalog import Routing
from bot.clock import utc_now
from bot.jobs.admission import Admission, Admitter
from bot.jobs.approvals import Approvals
from bot.jobs.delivery import Delivery
from bot.jobs.errors import JobNotFoundError
from bot.jobs.failover import Failover
from bot.jobs.modlog import ModLog, NoModLog
from bot.jobs.options import ServerOptions
from bot.jobs.references import References
from bot.jobs.requests import DeliveryTarget, GenerationRequest
from bot.jobs.resume import ResumeReport
from bot.jobs.scheduler import JobScheduler
from bot.jobs.tracking import ActiveJobs
from bot.jobs.worker import CancelResult, Worker
from bot.moderation.approvals import ModerationRules
from bot.moderation.errors import PromptBlockedError
from bot.moderation.policy import Policy
from bot.providers.base import Providers
from bot.providers.runware import RunwareProvider
from bot.runware.client import RunwareClient
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobResult

__all__ = ["Admission", "CancelResult", "GenerationService", "QueueEntry", "ResumeReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One of a member's unfinished jobs for `/queue`."""

    job: Job
    position: int | None
    """1-based place among waiting jobs; None while running."""
    elapsed_seconds: float
    """Since admission for a waiting job, since its run started for a running one."""


class GenerationService:
    """Admits requests, runs them through the scheduler, delivers results, and keeps the money right."""

    def __init__(
        self,
        db: Database,
        client: RunwareClient | None,
        session: aiohttp.ClientSession,
        ledger: Ledger,
        pricing: Pricing,
        config: AppConfig,
        scheduler: JobScheduler,
        *,
        server_options: ServerOptions,
        delivery: Delivery,
        policy: Policy | None = None,
        allowed_hosts: Collection[str] = frozenset(),
        clock: Callable[[], datetime] = utc_now,
        rules: ModerationRules | None = None,
        modlog: ModLog | None = None,
        providers: Providers | None = None,
        routing: Routing | None = None,
    ) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._jobs = JobRepository(db, clock=clock)
        self._active = ActiveJobs()
        rules = rules or ModerationRules(db, clock=clock)
        modlog = modlog or NoModLog()
        if providers is None:
            if client is None:
                raise ValueError("a job service needs a Runware client or its providers")
            providers = Providers(RunwareProvider(client, self._jobs, config.runware, clock))
        self.providers = providers
        """The configured providers by name; each job runs on the one stored with it."""
        self.approvals = Approvals(
            rules=rules,
            ledger=ledger,
            jobs=self._jobs,
            scheduler=scheduler,
            active=self._active,
            delivery=delivery,
            modlog=modlog,
            providers=providers,
            timeout_hours=config.moderation.approval_timeout_hours,
            clock=clock,
        )
        """Held requests and quarantined results: a moderator's decisions, the expiry sweep."""
        references = References(client, session, config.limits, allowed_hosts=allowed_hosts)
        self._admitter = Admitter(
            config=config,
            server_options=server_options,
            policy=policy or Policy(db, clock=clock),
            pricing=pricing,
            ledger=ledger,
            scheduler=scheduler,
            jobs=self._jobs,
            references=references,
            active=self._active,
            clock=clock,
            rules=rules,
            modlog=modlog,
            routing=routing,
        )
        self.routing = self._admitter.routing
        """Per model, the configured routes in order (`Settings.routing()`): what the commands offer and admit."""
        self._worker = Worker(
            providers=providers,
            ledger=ledger,
            config=config,
            scheduler=scheduler,
            delivery=delivery,
            jobs=self._jobs,
            active=self._active,
            approvals=self.approvals,
            failover=Failover(
                providers=providers,
                routing=self.routing,
                pricing=pricing,
                ledger=ledger,
                jobs=self._jobs,
                references=references,
            ),
        )

    # ------------------------------------------------------------------------------------------------ admission

    async def admit(self, request: GenerationRequest) -> Admission:
        """Validate, collapse duplicates, check confirmation, fetch references, reserve, store and queue a request.

        Raises `InvalidRequestError` (bad option, prompt, count or reference; `InvalidImageError` and
        `ReferenceFetchError` among them), `BudgetExceededError` (with the numbers), `RunwareError` (a reference
        upload failed) or `ServiceNotReadyError` (shutting down). In every one of those cases nothing is reserved.

        A request in an approval channel is held (`Admission.held`) and posted to the mod-log; if the mod-log cannot
        take it, it is released and refused. A blocklisted prompt (`PromptBlockedError`) is logged to the mod-log.
        """
        try:
            admission = await self._admitter.admit(request)
        except PromptBlockedError as exc:
            await self._log_refusal(exc)
            raise
        if admission.held and not admission.duplicate and admission.job_id is not None:
            await self.approvals.announce(admission.job_id)
        return admission

    async def _log_refusal(self, error: PromptBlockedError) -> None:
        try:
            await self.approvals.modlog.refused(error)
        except Exception:
            log.warning("a blocklist refusal could not be logged to the mod-log", exc_info=True)

    async def reroll(
        self,
        job_id: str,
        member_id: int,
        role_ids: Sequence[int],
        delivery: DeliveryTarget,
        *,
        confirmed: bool = False,
    ) -> Admission:
        """Run a stored job's request again (same options and references) for `member_id`, who pays for it."""
        parent = await self.require_job(job_id)
        return await self.admit(
            self._admitter.reroll_request(parent, member_id, role_ids, delivery, confirmed=confirmed)
        )

    async def edit_request(
        self,
        parent: Job,
        member_id: int,
        role_ids: Sequence[int],
        prompt: str,
        delivery: DeliveryTarget,
    ) -> GenerationRequest:
        """Build, without admitting it, an edit of a stored job's result images (the references, by Runware UUID).

        `parent` is the job as the caller already read it (`require_job`, `job_for_message`). The prompt is stripped
        and must not be empty, the parent must have been made in a server and have images (`InvalidRequestError`
        otherwise). The parent's model and size are kept; the other options come from the server's defaults, else the
        config's, read now: a request that is confirmed later is admitted with the options its estimate was shown for.
        """
        return await self._admitter.edit_request(parent, member_id, role_ids, prompt, delivery, confirmed=False)

    async def edit_from(
        self,
        parent: Job,
        member_id: int,
        role_ids: Sequence[int],
        prompt: str,
        delivery: DeliveryTarget,
        *,
        confirmed: bool = False,
    ) -> Admission:
        """Admit an edit of a stored job's result images at once (`edit_request`, then `admit`)."""
        request = await self._admitter.edit_request(parent, member_id, role_ids, prompt, delivery, confirmed=confirmed)
        return await self.admit(request)

    # ---------------------------------------------------------------------------------------- look-ups, cancel

    async def get_job(self, job_id: str) -> Job | None:
        """Return the stored job, or None."""
        return await self._jobs.get(job_id)

    async def require_job(self, job_id: str) -> Job:
        """Return the stored job; raise `JobNotFoundError` (a sentence for the member) if there is none."""
        job = await self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError("That job no longer exists.")
        return job

    async def job_results(self, job_id: str) -> list[JobResult]:
        """Return the job's result images (Runware UUIDs and URLs) in order; empty until its task finished."""
        return await self._jobs.results(job_id)

    async def job_for_message(self, message_id: int) -> Job | None:
        """Return the job whose result was posted as `message_id` (for replies to a result), or None."""
        return await self._jobs.get_by_result_message(message_id)

    async def queue_for_member(self, guild_id: int, member_id: int) -> list[QueueEntry]:
        """Return the member's held, queued and running jobs in this server, oldest first, with position and elapsed."""
        jobs = await self._jobs.list_active_for_member(guild_id, member_id)
        positions = self._scheduler.positions()
        now = asyncio.get_running_loop().time()
        wall = self._clock()
        entries: list[QueueEntry] = []
        for job in jobs:
            tracked = self._active.get(job.id)
            if tracked is not None and tracked.started_at is not None:
                elapsed = now - tracked.started_at
            else:
                elapsed = max(0.0, (wall - job.created_at).total_seconds())
            entries.append(QueueEntry(job=job, position=positions.get(job.id), elapsed_seconds=elapsed))
        return entries

    async def cancel(self, job_id: str, member_id: int, *, is_moderator: bool = False) -> CancelResult:
        """Cancel a queued or running job and release its reservation; a submitted task is never resubmitted.

        Raises `JobNotFoundError`, `PermissionDeniedError` (someone else's job, not a moderator) or
        `JobNotCancellableError` (already finished, or its images are already made: they are posted and charged).
        """
        job = await self.require_job(job_id)
        return await self._worker.cancel(job, member_id, is_moderator=is_moderator)

    # --------------------------------------------------------------------------------------- start, resume, stop

    async def resume(self, reconciled: ReconcileReport | None = None) -> ResumeReport:
        """On start-up: reconcile the ledger, re-queue `queued` jobs, resume `submitted` ones, and start running.

        `reconciled`: the report of the reconcile this process ran at start (`bot.app`); the ledger is not read again.
        Submitted jobs are queued first, so each member's runs on Runware start before their waiting ones (the
        round-robin across members still holds); they poll by the stored task UUID (or deliver from stored results)
        and never submit a task Runware already knows.
        """
        self._admitter.stopping = False
        report = await self._worker.resume(reconciled)
        # Held requests whose mod-log message was never posted (the bot stopped in between) are posted now.
        await self.approvals.reannounce(report.waiting_approval)
        self.approvals.start()  # expires what passed its deadline while the bot was down, then every minute
        return report

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests; running jobs get `grace` seconds, then stay `submitted` for the next start."""
        self._admitter.stopping = True
        await self.approvals.stop()
        await self._worker.stop(grace)

    async def wait_idle(self) -> None:
        """Wait until no job is waiting or running in this process (for tests and orderly shutdowns)."""
        await self._worker.wait_idle()
