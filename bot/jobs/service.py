"""The generation service: admit a request, queue it fairly, run it on Runware, deliver it, and keep the money right.

One request goes through `admit` in this order, so every refusal happens before money moves:

1. validate: count against the server's `max_count` (`bot.jobs.options`: its own, else the config's
   `limits.max_count`), prompt length, declared attachment sizes, and the model's own rules
   (an `ImageInferenceRequest` is built, so a bad option is refused with the field named);
2. collapse duplicates: the same member asking for the same thing (same `GenerationRequest.fingerprint()`) within
   `duplicate_window_seconds` gets the first job back (`Admission.duplicate`). Truly concurrent identical requests
   wait on the first one's in-process future, so they can never create two jobs; later ones find its row;
3. estimate, and ask for confirmation (`Admission.needs_confirmation`, nothing reserved, nothing fetched) when the
   estimate is above the server's `confirm_above` (its own, else the config's) and the request is not yet
   `confirmed`. Before that question, and before any reference is downloaded or uploaded, `Ledger.check` refuses
   what the budget cannot hold anyway (it writes nothing; the reservation in step 5 still decides);
4. fetch (Discord's CDN and media proxy only, byte cap while streaming), decode, normalise and upload the references
   to Runware (`imageUpload` is free), so the job row holds only reference UUIDs and can be re-run after a restart;
5. reserve the estimate *and* insert the job row (state `queued`) in one ledger transaction, then queue it.

A worker run (`_run_job`) stores a fresh task UUID and moves the job to `submitted` *before* the POST, submits,
records Runware's acknowledgement, waits, stores the result images, downloads and fits them to the channel's upload
limit, and calls `Delivery.deliver`; at most `limits.delivery_concurrency` jobs download, fit and post at once (each
holds its images in memory meanwhile), while the others keep their scheduler slot and wait their turn. Only after a
successful delivery does one transaction record `succeeded`, `delivered_at`, the message id and the cost; the ledger
then settles the hold to that cost. Every failure first moves the job to `failed`/`cancelled` and then releases the
hold; `Ledger.reconcile()` closes the gap between the two if the process dies there.

Crash points and what the next start (`resume`: `Ledger.reconcile()` first, then every unfinished job) does:

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
The job is then posted again after the restart, flagged `redelivery`; the cog keeps that idempotent while the
interaction token is valid by editing the same original response, and only after the token expired (15 minutes)
does a second message appear. It is still charged once: the charge follows the recorded delivery, and the ledger
allows one charge per job.

Cancelling a running job stops the worker and releases the hold; a submitted Runware task keeps running on Runware
(client-side cancel does not stop it, and the owner may be billed for it) but is never resubmitted or delivered.
Once the job's images are made and stored it can no longer be cancelled, also while it waits for its delivery turn:
they are posted and charged (the check and the phase change are synchronous on the event loop, so the two cannot
interleave).

Progress (`Delivery.progress`) is sent from one loop, throttled to one call per `limits.progress_edit_seconds` per
job: a waiting job's position when it changes, a running job's elapsed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import aiohttp

from bot.billing.errors import LedgerError
from bot.billing.ledger import Ledger, ReconcileReport
from bot.billing.pricing import Pricing
from bot.clock import utc_now
from bot.errors import AtelierError, InvalidRequestError, PermissionDeniedError
from bot.images import (
    FittedImage,
    InvalidImageError,
    ReferenceTooLargeError,
    fetch_reference,
    fit_to_limit,
    normalise,
)
from bot.jobs.delivery import Delivery, DeliveryError, ResultSummary
from bot.jobs.errors import RESTARTING, JobNotCancellableError, JobNotFoundError, ServiceNotReadyError
from bot.jobs.options import ResolvedOptions, ServerLimits, ServerOptions
from bot.jobs.requests import DeliveryTarget, GenerationRequest, ReferenceSource, RequestKind, request_from_job
from bot.jobs.scheduler import Scheduler
from bot.money import format_usd
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.runware.models import ImageInferenceRequest, ImageResult, total_cost_micros
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.rows import ACTIVE_STATES, Job, JobResult, JobState, NewJob, new_job_id

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong while making your images. Nothing was charged."
"""Shown when a job fails for a reason that is not the member's to fix (the traceback goes to the log)."""

DELIVERY_FAILURE = "The images were made but could not be posted here. Nothing was charged."
"""Shown when posting the result failed for a reason the cog did not explain with a `DeliveryError`."""

_RESUME_MIN_WAIT_SECONDS = 30.0
_ACTIVE = tuple(ACTIVE_STATES)
_RUNNABLE = (JobState.QUEUED, JobState.SUBMITTED)


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to `admit`: a queued job, a collapsed duplicate, or a request that needs the member to confirm."""

    job_id: str | None
    """None only when `needs_confirmation`."""
    estimate: int
    position: int | None = None
    """1-based place among waiting jobs; None when the job started at once (or needs confirmation)."""
    duplicate: bool = False
    needs_confirmation: bool = False
    threshold: int | None = None
    """With `needs_confirmation`: the server's confirmation threshold the estimate is above (micro-dollars)."""


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
class QueueEntry:
    """One of a member's unfinished jobs for `/queue`."""

    job: Job
    position: int | None
    """1-based place among waiting jobs; None while running."""
    elapsed_seconds: float
    """Since admission for a waiting job, since its run started for a running one."""


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


class _Phase(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    PRODUCED = "produced"
    """The images exist (Runware made and billed them): the job waits for its delivery turn, downloads and fits them.
    It can no longer be cancelled; progress is still shown."""
    DELIVERING = "delivering"
    """`deliver` was called: no progress edit may reach the message any more."""


_TOO_LATE = (
    "Its images are already made and are being posted, so it is too late to cancel it; "
    "it will be charged as usual once they are posted."
)


@dataclass(slots=True)
class _Tracked:
    """In-process bookkeeping of an unfinished job: for progress edits, elapsed times and safe cancellation."""

    job: Job
    admitted_at: float
    phase: _Phase = _Phase.WAITING
    started_at: float | None = None
    cancel_requested: bool = False
    last_sent: float = float("-inf")
    last_key: tuple[str, int | None] | None = None
    progress_call: asyncio.Task[None] | None = None


class GenerationService:
    """Admits requests, runs them through the scheduler, delivers results, and keeps the money right."""

    def __init__(
        self,
        db: Database,
        client: RunwareClient,
        session: aiohttp.ClientSession,
        ledger: Ledger,
        pricing: Pricing,
        config: AppConfig,
        scheduler: Scheduler,
        *,
        settings: ServerOptions,
        delivery: Delivery | None = None,
        allowed_hosts: Collection[str] = frozenset(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._session = session
        self._ledger = ledger
        self._pricing = pricing
        self._config = config
        self._limits = config.limits
        # The composition root's one instance, which `/settings` changes go through: it caches rows, so a second one
        # would not see those changes.
        self._settings = settings
        self._scheduler = scheduler
        self._delivery = delivery
        self._allowed_hosts = frozenset(host.lower() for host in allowed_hosts)
        self._clock = clock
        self._jobs = JobRepository(db, clock=clock)
        self._queue = self._jobs
        # A job holds its result images in memory from download to post (up to 4 of ~1.5 MB, and a copy while
        # posting); this bounds how many do so at once, whatever global_concurrency is. The Runware slot stays held.
        self._delivering = asyncio.Semaphore(config.limits.delivery_concurrency)
        self._inflight: dict[str, asyncio.Future[Admission]] = {}
        self._active: dict[str, _Tracked] = {}
        self._progress_loop: asyncio.Task[None] | None = None
        self._stopping = False

    def set_delivery(self, delivery: Delivery) -> None:
        """Attach the Delivery implementation (the cogs do this when they load, before `resume`)."""
        self._delivery = delivery

    # ------------------------------------------------------------------------------------------------ admission

    async def admit(self, request: GenerationRequest) -> Admission:
        """Validate, collapse duplicates, check confirmation, fetch references, reserve, store and queue a request.

        Raises `InvalidRequestError` (bad option, prompt, count or reference; `InvalidImageError` and
        `ReferenceFetchError` among them), `BudgetExceededError` (with the numbers), `RunwareError` (a reference
        upload failed) or `ServiceNotReadyError` (shutting down). In every one of those cases nothing is reserved.
        """
        if self._stopping:
            raise ServiceNotReadyError(RESTARTING)
        limits = await self._settings.limits(request.guild_id)
        self._validate(request, limits)
        fingerprint = request.fingerprint()
        while True:
            pending = self._inflight.get(fingerprint)
            if pending is None:
                break
            first = await asyncio.shield(pending)
            if first.needs_confirmation and request.confirmed:
                continue  # the other one only asked for confirmation; this one goes ahead once it is done
            if first.job_id is None:
                return first
            return replace(first, duplicate=True, position=self._scheduler.position(first.job_id))
        future: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._inflight[fingerprint] = future
        try:
            admission = await self._admit(request, fingerprint, limits)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark it retrieved: the caller gets it; waiters, if any, get it too
            raise
        else:
            future.set_result(admission)
            return admission
        finally:
            del self._inflight[fingerprint]

    async def _admit(self, request: GenerationRequest, fingerprint: str, limits: ServerLimits) -> Admission:
        window = self._limits.duplicate_window_seconds
        if window > 0:
            since = self._clock() - timedelta(seconds=window)
            earlier = await self._queue.find_recent_duplicate(request.guild_id, request.member_id, fingerprint, since)
            if earlier is not None:
                log.info("request of member %d collapsed into job %s", request.member_id, earlier.id)
                return Admission(earlier.id, earlier.estimate, self._scheduler.position(earlier.id), duplicate=True)
        estimate = self._pricing.estimate(
            request.model, request.quality, request.size, request.count, len(request.prompt), len(request.references)
        )
        ask_first = estimate > limits.confirm_above and not request.confirmed
        if ask_first or any(reference.image_uuid is None for reference in request.references):
            # Refuse now what the budget cannot hold anyway: rather than after a confirmation, and before downloading
            # (up to 4 x 25 MB) and uploading references. The reservation below still decides.
            await self._ledger.check(request.guild_id, request.member_id, request.role_ids, estimate)
        if ask_first:
            return Admission(None, estimate, needs_confirmation=True, threshold=limits.confirm_above)
        references = await self._prepare_references(request)
        if self._stopping:
            raise ServiceNotReadyError(RESTARTING)
        new_job = self._new_job(request, estimate, references, fingerprint)
        # One transaction: the hold and the job row exist together or not at all.
        reservation = await self._ledger.reserve(
            new_job.id, request.guild_id, request.member_id, request.role_ids, estimate, job=new_job
        )
        job = reservation.job
        if job is None:  # pragma: no cover - a fresh job id: the reservation just stored the row
            raise LedgerError(f"Job {new_job.id} was not stored with its reservation.")
        self._track(job)
        position = self._scheduler.submit(job.id, job.member_id)
        log.info(
            "job %s admitted for member %d in guild %d: %s x%d, estimate %s, position %s",
            job.id,
            job.member_id,
            request.guild_id,
            job.model.value,
            job.count,
            format_usd(estimate),
            position,
        )
        return Admission(job.id, estimate, position)

    def _validate(self, request: GenerationRequest, server: ServerLimits) -> None:
        limits = self._limits
        if not 1 <= request.count <= server.max_count:
            raise InvalidRequestError(
                f"count must be between 1 and {server.max_count} on this server (got {request.count})."
            )
        if len(request.prompt) > limits.max_prompt_chars:
            raise InvalidRequestError(
                f"The prompt has {len(request.prompt):,} characters; the limit is {limits.max_prompt_chars:,}."
            )
        for number, reference in enumerate(request.references, start=1):
            if reference.size is not None and reference.size > limits.max_reference_bytes:
                error = ReferenceTooLargeError(reference.size, limits.max_reference_bytes)
                raise self._about_reference(error, request, number, reference) from None
        # Builds (and so checks) the Runware request; the reference strings are replaced by UUIDs later.
        self._inference_request_for(request, tuple(reference.identity for reference in request.references))

    async def _prepare_references(self, request: GenerationRequest) -> tuple[str, ...]:
        """Fetch, check and normalise every reference, then upload them; return Runware image UUIDs in order."""
        if not request.references:
            return ()
        loaded = await asyncio.gather(
            *(self._load_reference(reference) for reference in request.references), return_exceptions=True
        )
        prepared: list[str | tuple[bytes, str]] = []
        for number, (reference, outcome) in enumerate(zip(request.references, loaded, strict=True), start=1):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, AtelierError):
                    raise self._about_reference(outcome, request, number, reference)
                raise outcome
            prepared.append(outcome)
        uuids: list[str] = []
        for item in prepared:
            if isinstance(item, str):
                uuids.append(item)
            else:
                uploaded = await self._client.upload_image(item[0], item[1])
                uuids.append(uploaded.image_uuid)
        return tuple(uuids)

    async def _load_reference(self, reference: ReferenceSource) -> str | tuple[bytes, str]:
        if reference.image_uuid is not None:
            return reference.image_uuid
        if reference.data is not None:
            data = reference.data
            if len(data) > self._limits.max_reference_bytes:
                raise ReferenceTooLargeError(len(data), self._limits.max_reference_bytes)
        else:
            data = await fetch_reference(
                self._session,
                reference.url or "",
                max_bytes=self._limits.max_reference_bytes,
                allowed_hosts=self._allowed_hosts,
            )
        image = await asyncio.to_thread(normalise, data, max_side=self._limits.max_reference_side)
        return image.data, image.mime

    @staticmethod
    def _about_reference(
        error: AtelierError, request: GenerationRequest, number: int, reference: ReferenceSource
    ) -> AtelierError:
        """Name the reference in the message when there are several, so the member knows which one to fix.

        The error keeps its class (the cogs and tests tell "too large" from "not an image" by it).
        """
        if len(request.references) > 1:
            error.args = (f"Reference {number} ({reference.filename}): {error}",)
        return error

    def _inference_request_for(self, request: GenerationRequest, references: tuple[str, ...]) -> ImageInferenceRequest:
        return ImageInferenceRequest(
            model=request.model,
            prompt=request.prompt,
            size=request.size,
            quality=request.quality,
            background=request.background,
            count=request.count,
            format=request.format,
            reference_images=references,
            output_quality=self._config.runware.output_quality,
        )

    def _new_job(
        self, request: GenerationRequest, estimate: int, references: tuple[str, ...], fingerprint: str
    ) -> NewJob:
        extras: dict[str, Any] = {
            "fingerprint": fingerprint,
            "kind": request.kind.value,
            "role_ids": list(request.role_ids),
            "delivery": request.delivery.to_extras(),
            "reference_names": [reference.filename for reference in request.references],
            "output_quality": self._config.runware.output_quality,
        }
        return NewJob(
            id=new_job_id(),
            member_id=request.member_id,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            model=request.model,
            size=request.size,
            quality=request.quality,
            background=request.background,
            format=request.format,
            count=request.count,
            prompt=request.prompt,
            estimate=estimate,
            state=JobState.QUEUED,
            references=references,
            extras=extras,
            parent_job_id=request.parent_job_id,
            interaction_token=request.delivery.interaction_token,
            interaction_expires_at=request.delivery.token_expires_at,
        )

    # ------------------------------------------------------------------------------------------- reroll and edit

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
        request = request_from_job(
            parent,
            member_id=member_id,
            role_ids=tuple(role_ids),
            delivery=delivery,
            kind=RequestKind.REROLL,
            confirmed=confirmed,
        )
        return await self.admit(request)

    async def edit_from(
        self,
        parent: Job,
        member_id: int,
        role_ids: Sequence[int],
        prompt: str,
        delivery: DeliveryTarget,
        *,
        options: ResolvedOptions | None = None,
        confirmed: bool = False,
    ) -> Admission:
        """Edit a stored job's result images (they become the references, by Runware UUID) with a new prompt.

        `parent` is the job as the caller already read it (`require_job`, `job_for_message`). `options` replaces
        the job's model, size, quality, background, format and count; without it the job's own are used.
        """
        results = await self._queue.results(parent.id)
        if not results:
            raise InvalidRequestError("That job has no images to edit; it did not finish.")
        references = tuple(
            ReferenceSource.from_image_uuid(result.image_uuid, filename=f"image {result.index + 1}")
            for result in results
        )
        request = request_from_job(
            parent,
            member_id=member_id,
            role_ids=tuple(role_ids),
            delivery=delivery,
            kind=RequestKind.EDIT,
            prompt=prompt,
            references=references,
            confirmed=confirmed,
        )
        if options is not None:
            request = replace(
                request,
                model=options.model,
                size=options.size,
                quality=options.quality,
                background=options.background,
                format=options.format,
                count=options.count,
            )
        return await self.admit(request)

    # ------------------------------------------------------------------------------------------ queries, cancel

    async def get_job(self, job_id: str) -> Job | None:
        """Return the stored job, or None."""
        return await self._jobs.get(job_id)

    async def job_results(self, job_id: str) -> list[JobResult]:
        """Return the job's result images (Runware UUIDs and URLs) in order; empty until its task finished."""
        return await self._queue.results(job_id)

    async def job_for_message(self, message_id: int) -> Job | None:
        """Return the job whose result was posted as `message_id` (for replies to a result), or None."""
        return await self._queue.get_by_result_message(message_id)

    async def queue_for_member(self, guild_id: int, member_id: int) -> list[QueueEntry]:
        """Return the member's queued and running jobs in this server, oldest first, with position and elapsed."""
        jobs = await self._queue.list_active_for_member(guild_id, member_id)
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
        if job.member_id != member_id and not is_moderator:
            raise PermissionDeniedError("Only the member who asked for this job, or a moderator, can cancel it.")
        if job.state.is_finished:
            raise JobNotCancellableError(_finished_sentence(job.state))
        tracked = self._active.get(job_id)
        # From here to `cancel_requested` there is no await, so the worker cannot get its images unnoticed: it checks
        # `cancel_requested` and leaves RUNNING in one synchronous step as soon as they are stored (see `_run`).
        if tracked is not None:
            if tracked.phase in (_Phase.PRODUCED, _Phase.DELIVERING):
                raise JobNotCancellableError(_TOO_LATE)
            tracked.cancel_requested = True
        self._scheduler.remove(job_id)
        who = "a moderator" if is_moderator and job.member_id != member_id else "the member"
        changed = await self._queue.finish(job_id, JobState.CANCELLED, error=f"Cancelled by {who}.", expected=_ACTIVE)
        if not changed:
            current = await self._jobs.get(job_id)
            state = current.state if current is not None else JobState.CANCELLED
            raise JobNotCancellableError(_finished_sentence(state))
        was_running = self._scheduler.cancel_running(job_id)
        released = await self._release(job_id)
        self._untrack(job_id)
        log.info("job %s cancelled by %s (was %s)", job_id, who, job.state.value)
        return CancelResult(job, job.estimate if released else 0, was_running)

    async def require_job(self, job_id: str) -> Job:
        """Return the stored job; raise `JobNotFoundError` (a sentence for the member) if there is none."""
        job = await self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError("That job no longer exists.")
        return job

    # --------------------------------------------------------------------------------------- start, resume, stop

    async def resume(self) -> ResumeReport:
        """On start-up: reconcile the ledger, re-queue `queued` jobs, resume `submitted` ones, and start running.

        Submitted jobs are queued first, so each member's runs on Runware start before their waiting ones (the
        round-robin across members still holds); they poll by the stored task UUID (or deliver from stored results)
        and never submit a task Runware already knows.
        """
        if self._delivery is None:
            raise RuntimeError("set_delivery() must be called before resume()")
        self._stopping = False
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
        for job in [*submitted, *queued]:
            if job.id not in self._active:
                self._track(job)
            self._scheduler.submit(job.id, job.member_id)
        self._start()
        if report.resumed or report.requeued:
            log.info("resumed %d submitted and re-queued %d queued job(s)", len(report.resumed), len(report.requeued))
        return report

    def _start(self) -> None:
        self._scheduler.start(self._run_job)
        if self._progress_loop is None or self._progress_loop.done():
            self._progress_loop = asyncio.get_running_loop().create_task(self._report_progress(), name="job-progress")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking requests; running jobs get `grace` seconds, then stay `submitted` for the next start."""
        self._stopping = True
        await self._scheduler.stop(grace)
        loop_task, self._progress_loop = self._progress_loop, None
        calls = [tracked.progress_call for tracked in self._active.values() if tracked.progress_call is not None]
        for task in [loop_task, *calls]:
            if task is not None and not task.done():
                task.cancel()
        for task in [loop_task, *calls]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def wait_idle(self) -> None:
        """Wait until no job is waiting or running in this process (for tests and orderly shutdowns)."""
        await self._scheduler.wait_idle()

    # ------------------------------------------------------------------------------------------------ the worker

    async def _run_job(self, job_id: str) -> None:
        """Run one job to its end (delivered and settled, or failed and released); cancellation leaves it resumable."""
        job = await self._jobs.get(job_id)
        if job is None or job.state not in _RUNNABLE:
            self._untrack(job_id)
            return
        tracked = self._active.get(job_id) or self._track(job)
        if tracked.cancel_requested:
            return
        tracked.phase = _Phase.RUNNING
        tracked.started_at = asyncio.get_running_loop().time()
        try:
            await self._run(job, tracked)
        except asyncio.CancelledError:
            if tracked.cancel_requested:
                log.info("run of job %s stopped: cancelled", job_id)
            else:
                log.info("run of job %s interrupted; the next start resumes it", job_id)
            raise
        except RunwareError as exc:
            log.warning("job %s failed on Runware: %s", job_id, exc)
            await self._fail(job, exc.user_message)
        except DeliveryError as exc:
            log.warning("job %s could not be delivered: %s", job_id, exc)
            await self._fail(job, str(exc))
        except Exception:
            log.exception("job %s failed", job_id)
            await self._fail(job, GENERIC_FAILURE)
        finally:
            self._untrack(job_id)

    async def _run(self, job: Job, tracked: _Tracked) -> None:
        produced = await self._produce(job)
        if produced is None or tracked.cancel_requested:
            return
        # The images exist and are stored: from here the job is posted and charged, never cancelled (a cancel now
        # would leave the owner paying Runware for nothing). No await between the check above and this: see cancel().
        tracked.phase = _Phase.PRODUCED
        images, redelivery = produced
        async with self._delivering:
            await self._post_results(job, tracked, images, redelivery)

    async def _post_results(self, job: Job, tracked: _Tracked, images: list[ImageResult], redelivery: bool) -> None:
        """Download the images, fit them to the upload limit, post them, and charge the job."""
        target = DeliveryTarget.from_job(job)
        fitted: list[FittedImage] = []
        for image in images:
            data = await self._client.download(image)
            try:
                fitted.append(
                    await asyncio.to_thread(
                        fit_to_limit, data, limit=target.attachment_size_limit, preferred_format=job.format
                    )
                )
            except (InvalidImageError, ValueError) as exc:
                log.error("image %s of job %s cannot be fitted: %s", image.image_uuid, job.id, exc)
                raise DeliveryError(DELIVERY_FAILURE) from exc
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
        summary = await self._summary(job, len(fitted), cost, reported is not None, redelivery)
        tracked.phase = _Phase.DELIVERING  # no more progress edits; cancel() has refused since PRODUCED
        delivery = self._require_delivery()
        try:
            message_id = await delivery.deliver(job, fitted, summary)
        except (DeliveryError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("delivery of job %s failed", job.id)
            raise DeliveryError(DELIVERY_FAILURE) from exc
        if not await self._queue.finish_delivered(job.id, message_id, cost):
            current = await self._jobs.get(job.id)
            log.error(
                "job %s was delivered but is now %s; not charging it", job.id, current.state if current else "gone"
            )
            return
        try:
            await self._ledger.settle(job.id, cost)
        except LedgerError:
            log.exception("job %s was delivered but could not be settled", job.id)
        log.info("job %s delivered (%d image(s), message %s), charged %s", job.id, len(fitted), message_id, cost)

    async def _produce(self, job: Job) -> tuple[list[ImageResult], bool] | None:
        """Get the job's images: submit a queued job, or continue a submitted one without resubmitting.

        Returns the images and whether they were already stored by an earlier run (which may have posted them), or
        None when the job is no longer queued.
        """
        request = self._inference_request(job)
        if job.state is JobState.QUEUED:
            task_uuid = self._client.new_task_uuid()
            # Stored before the POST: a crash after it makes the next start ask Runware instead of paying twice. So is
            # the time of every POST of the task (re-POSTs included): the next start waits for the latest to register.
            if not await self._queue.begin_submit(job.id, task_uuid):
                log.info("job %s is no longer queued; not submitting it", job.id)
                return None
            early = await self._client.submit(request, task_uuid, before_post=self._post_recorder(job.id, task_uuid))
            await self._queue.mark_acknowledged(job.id)
            images = await self._client.wait(task_uuid, job.count, known=early)
        else:
            stored = await self._queue.results(job.id)
            if stored:
                log.info("job %s: delivering the %d stored result(s) after a restart", job.id, len(stored))
                task_uuid = job.task_uuid or ""
                restored = [
                    ImageResult(task_uuid=task_uuid, image_uuid=r.image_uuid, url=r.image_url, cost_micros=r.cost)
                    for r in stored
                ]
                return restored, True
            images = await self._continue(job, request)
        results = [
            JobResult(index, image.image_uuid, image.url, image.cost_micros, image.seed)
            for index, image in enumerate(images)
        ]
        await self._queue.save_results(job.id, results, total_cost_micros(images))
        return images, False

    async def _continue(self, job: Job, request: ImageInferenceRequest) -> list[ImageResult]:
        """Resume a submitted job by its stored task UUID; submit (under that UUID) only if Runware never got it."""
        task_uuid = job.task_uuid
        if task_uuid is None:
            raise RuntimeError(f"job {job.id} is submitted without a task UUID")
        acked = await self._queue.acknowledged_at(job.id)
        early: list[ImageResult] = []
        if acked is None:
            # Died between storing the UUID and Runware's answer: a POST may still be registering, so "unknown"
            # counts only once the client's late-registration window has passed since the *latest* POST (a re-POST in
            # `submit`, or this method's own submit in an earlier restart). With none recorded (none was sent, as
            # each is recorded first, or the job predates schema version 5), count from storing the UUID
            # (`updated_at`, set just before the first POST).
            sent_at = await self._queue.last_post_at(job.id) or job.updated_at
            sent_ago = (self._clock() - sent_at).total_seconds()
            state = await self._client.find_recent_task(task_uuid, sent_ago)
            if state is None:
                log.info("task %s of job %s never reached Runware; submitting it now", task_uuid, job.id)
                early = await self._client.submit(
                    request, task_uuid, before_post=self._post_recorder(job.id, task_uuid)
                )
            else:
                early = list(state.images)
            await self._queue.mark_acknowledged(job.id)
            acked = self._clock()
        budget = self._config.runware.task_timeout_seconds
        left = budget - (self._clock() - acked).total_seconds()
        timeout = max(left, min(_RESUME_MIN_WAIT_SECONDS, budget))
        log.info("job %s: polling task %s after a restart", job.id, task_uuid)
        return await self._client.wait(task_uuid, job.count, timeout=timeout, known=early)

    def _post_recorder(self, job_id: str, task_uuid: str) -> Callable[[], Awaitable[None]]:
        """Return `submit`'s `before_post` for a job: it stores the time of each POST of the task before it is sent."""

        async def record() -> None:
            if not await self._queue.record_post(job_id, task_uuid):
                raise RuntimeError(f"job {job_id} no longer has task {task_uuid}; not posting it")

        return record

    def _inference_request(self, job: Job) -> ImageInferenceRequest:
        quality = job.extras.get("output_quality", self._config.runware.output_quality)
        return ImageInferenceRequest(
            model=job.model,
            prompt=job.prompt,
            size=job.size,
            quality=job.quality,
            background=job.background,
            count=job.count,
            format=job.format,
            reference_images=job.references,
            output_quality=quality if isinstance(quality, int) else self._config.runware.output_quality,
        )

    async def _summary(self, job: Job, image_count: int, cost: int, reported: bool, redelivery: bool) -> ResultSummary:
        remaining: int | None = None
        resets_at: datetime | None = None
        if job.guild_id is not None:
            roles = [int(role) for role in job.extras.get("role_ids", []) if isinstance(role, int)]
            try:
                status = await self._ledger.status(job.guild_id, job.member_id, roles)
            except AtelierError:
                log.warning("no budget status for job %s", job.id, exc_info=True)
            else:
                resets_at = status.resets_at
                # The hold is still counted as reserved; after settling, the charge replaces it.
                remaining = None if status.remaining is None else max(0, status.remaining + job.estimate - cost)
        kind = job.extras.get("kind", RequestKind.IMAGINE.value)
        return ResultSummary(
            job_id=job.id,
            kind=RequestKind(kind) if kind in RequestKind.__members__.values() else RequestKind.IMAGINE,
            requester_id=job.member_id,
            prompt=job.prompt,
            model=job.model,
            size=job.size,
            quality=job.quality,
            count=job.count,
            image_count=image_count,
            cost=cost,
            cost_reported=reported,
            estimate=job.estimate,
            remaining=remaining,
            resets_at=resets_at,
            parent_job_id=job.parent_job_id,
            redelivery=redelivery,
        )

    async def _fail(self, job: Job, message: str) -> None:
        """Record the failure first, then release the hold (reconcile finishes it if we die between), then tell."""
        if not await self._queue.finish(job.id, JobState.FAILED, error=message, expected=_RUNNABLE):
            log.info("job %s already finished; not marking it failed", job.id)
            return
        await self._release(job.id)
        try:
            await self._require_delivery().fail(job, message)
        except Exception:
            log.warning("could not tell the member that job %s failed", job.id, exc_info=True)

    async def _release(self, job_id: str) -> bool:
        try:
            return await self._ledger.release(job_id)
        except LedgerError:
            log.exception("could not release the hold of job %s", job_id)
            return False

    def _require_delivery(self) -> Delivery:
        if self._delivery is None:
            raise RuntimeError("no Delivery attached; call set_delivery()")
        return self._delivery

    # ---------------------------------------------------------------------------------------------- bookkeeping

    def _track(self, job: Job) -> _Tracked:
        tracked = _Tracked(job=job, admitted_at=asyncio.get_running_loop().time())
        tracked.last_sent = tracked.admitted_at  # the admission reply already showed the first position
        self._active[job.id] = tracked
        return tracked

    def _untrack(self, job_id: str) -> None:
        self._active.pop(job_id, None)

    async def _report_progress(self) -> None:
        """Send progress edits, at most one per `progress_edit_seconds` per job (the one place that throttles)."""
        interval = self._limits.progress_edit_seconds
        while True:
            await asyncio.sleep(interval / 3)
            self._progress_tick(interval)

    def _progress_tick(self, interval: float) -> None:
        delivery = self._delivery
        if delivery is None:
            return
        now = asyncio.get_running_loop().time()
        positions: dict[str, int] | None = None
        for tracked in list(self._active.values()):
            if tracked.cancel_requested or tracked.phase is _Phase.DELIVERING:
                continue
            if now - tracked.last_sent < interval:
                continue
            if tracked.progress_call is not None and not tracked.progress_call.done():
                continue  # the previous edit is still on its way; skip rather than pile up
            if tracked.phase is _Phase.WAITING:
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
                posting = tracked.phase is _Phase.PRODUCED
                position, key = None, ("posting" if posting else "running", None)
                if posting and key == tracked.last_key:
                    continue  # "being posted" is said once; it has no clock to update
                elapsed, state = now - (tracked.started_at or now), JobState.SUBMITTED
            tracked.last_sent, tracked.last_key = now, key
            tracked.progress_call = asyncio.get_running_loop().create_task(
                self._send_progress(delivery, tracked.job, position, elapsed, state, posting=key[0] == "posting")
            )

    @staticmethod
    async def _send_progress(
        delivery: Delivery, job: Job, position: int | None, elapsed: float, state: JobState, *, posting: bool
    ) -> None:
        try:
            await delivery.progress(job, position, elapsed, state, posting=posting)
        except Exception:
            log.debug("progress edit for job %s failed", job.id, exc_info=True)


def _finished_sentence(state: JobState) -> str:
    return {
        JobState.SUCCEEDED: "That job already finished and was posted; there is nothing to cancel.",
        JobState.FAILED: "That job already failed (nothing was charged); there is nothing to cancel.",
        JobState.CANCELLED: "That job was already cancelled.",
        JobState.REJECTED: "That job was rejected by a moderator; there is nothing to cancel.",
    }.get(state, "That job can no longer be cancelled.")
