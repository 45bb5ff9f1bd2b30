"""Admission: turn a request into a queued job, or refuse it, before any money moves.

One request goes through `Admitter.admit` in this order, so every refusal happens before money moves:

0. the server's policy (`bot.moderation.policy`): its channel and role rules, then its blocklist on the prompt,
   from memory; every entry point (slash, context menu, reply, Reroll, Edit, a confirmation) comes through here;
1. validate: count against the server's `max_count` (`bot.jobs.options`: its own, else the config's
   `limits.max_count`), prompt length, declared attachment sizes; then pick the route (`bot.catalog.Routing.choose`:
   the first configured provider of the model that can honour every option, or a refusal naming what is possible)
   and check the model's own rules on it (on Runware an `ImageInferenceRequest` is built, so a bad option is refused
   with the field named, exactly as before routes existed). The job stores the route's provider and resolution;
2. collapse duplicates: the same member asking for the same thing (same `GenerationRequest.fingerprint()`) within
   `duplicate_window_seconds` gets the first job back (`Admission.duplicate`). Truly concurrent identical requests
   wait on the first one's in-process future, so they can never create two jobs; later ones find its row: here when
   a confirmation, the mod-log's check or references come next, else only in the reservation of step 5, which looks
   in its transaction and under the server's budget lock (`Ledger.reserve(duplicate_since=...)`), so two processes
   (PostgreSQL) given the same request store one job;
3. estimate on the chosen route (`Pricing`: Runware's table, or Runbase's fixed price per run), and ask for
   confirmation (`Admission.needs_confirmation`, nothing reserved, nothing fetched) when the estimate is above the
   server's `confirm_above` (its own, else the config's) and the request is not yet `confirmed`. Before that
   question, and before any reference is downloaded or uploaded, `Ledger.check` refuses what the budget cannot hold
   anyway (it writes nothing; the reservation in step 5 still decides);
4. fetch, check and upload the references (`bot.jobs.references`), so the job row holds only reference UUIDs (on
   Runbase: the checked Discord URLs) and can be re-run after a restart; each reference's source URL is kept too
   (`reference_sources`), for failover to Runbase;
5. reserve the estimate *and* insert the job row (state `queued`) in one ledger transaction, then queue it. In an
   approval channel (`bot.moderation.approvals`: mode `all`, or `over` with the estimate above the amount) the row is
   inserted as `awaiting_approval` instead, in the same transaction as its hold, and not queued
   (`Admission.held`; `bot.jobs.approvals` posts it to the mod-log). Such a request is refused before anything is
   fetched or reserved when the mod-log could not show it (`ModLog.problem`). In a safety channel the job is marked
   so the worker asks Runware to check the output.

Requests built from a stored job (a reroll, an edit of its result images) are made here too; an edit keeps its
parent's model and size and takes the other options from the server's defaults, else the config's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.billing.errors import LedgerError
from bot.billing.ledger import AllowanceWarning, Ledger
from bot.billing.pricing import Pricing
from bot.catalog import NoRouteError, ProviderName, Resolution, Route, Routing
from bot.errors import InvalidRequestError
from bot.images import ReferenceTooLargeError
from bot.jobs.errors import RESTARTING, ServiceNotReadyError
from bot.jobs.modlog import ModLog, NoModLog
from bot.jobs.options import ServerLimits, ServerOptions
from bot.jobs.references import References, about_reference, runbase_source
from bot.jobs.requests import DeliveryTarget, GenerationRequest, ReferenceSource, RequestKind, request_from_job
from bot.jobs.scheduler import JobScheduler
from bot.jobs.tracking import ActiveJobs
from bot.moderation.approvals import ModerationRules, PlaceRules
from bot.moderation.policy import Policy, PolicyCache
from bot.money import format_usd
from bot.observability import metrics
from bot.runware.models import ImageInferenceRequest
from bot.settings import AppConfig
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState, NewJob, new_job_id

log = logging.getLogger(__name__)

EMPTY_PROMPT = "The prompt is empty; describe what you want to see."
"""The refusal of an edit without a prompt."""

NOT_IN_A_SERVER = "That job was not made in a server, so it cannot be edited here."
"""The refusal of an edit of a job made outside a server."""


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
    held: bool = False
    """The job waits for a moderator's approval (`awaiting_approval`, its estimate reserved)."""
    warning: AllowanceWarning | None = None
    """Set when this job took the member past 80% of their allowance for the first time this period."""
    status_now: bool = True
    """The answer to the request shows the job's status now (held, or `limits.status_after_seconds` is 0). Else
    it keeps Discord's "thinking…" and the progress loop shows the status once the job has waited that long."""


class Admitter:
    """Validates, de-duplicates, estimates, asks for confirmation, then reserves, stores and queues requests."""

    def __init__(
        self,
        *,
        config: AppConfig,
        server_options: ServerOptions,
        policy: Policy,
        pricing: Pricing,
        ledger: Ledger,
        scheduler: JobScheduler,
        jobs: JobRepository,
        references: References,
        active: ActiveJobs,
        clock: Callable[[], datetime],
        rules: ModerationRules | None = None,
        modlog: ModLog | None = None,
        routing: Routing | None = None,
    ) -> None:
        self._config = config
        self.routing = routing or Routing.build([ProviderName.RUNWARE])
        """The configured routes per model (`Settings.routing()`); Runware alone when none are given."""
        self._rules = rules
        self._modlog: ModLog = modlog or NoModLog()
        self._limits = config.limits
        # The composition root's one instance, which `/settings` changes go through: it caches rows, so a second one
        # would not see those changes.
        self._server_options = server_options
        self._policy = policy
        self._pricing = pricing
        self._ledger = ledger
        self._scheduler = scheduler
        self._jobs = jobs
        self._references = references
        self._active = active
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[Admission]] = {}
        self.stopping = False
        """Set while the service shuts down: new requests are turned away with `ServiceNotReadyError`."""

    async def admit(self, request: GenerationRequest) -> Admission:
        """Validate, collapse duplicates, check confirmation, fetch references, reserve, store and queue a request.

        Raises `InvalidRequestError` (bad option, prompt, count or reference; `InvalidImageError` and
        `ReferenceFetchError` among them; the policy's `NotAllowedHereError` and `PromptBlockedError`),
        `BudgetExceededError` (with the numbers), `RunwareError` (a reference upload failed) or
        `ServiceNotReadyError` (shutting down). In every one of those cases nothing is reserved.
        """
        if self.stopping:
            raise ServiceNotReadyError(RESTARTING)
        await self._warm(request.guild_id)
        await self._policy.check(
            guild_id=request.guild_id,
            member_id=request.member_id,
            role_ids=request.role_ids,
            places=request.places,
            prompt=request.prompt,
        )
        limits = await self._server_options.limits(request.guild_id)
        route = self._validate(request, limits)
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
            admission = await self._admit(request, fingerprint, limits, route)
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

    async def _warm(self, guild_id: int) -> None:
        """Read the server's rules that are not in memory (after a start or a change) together, not one by one.

        Admission reads the policy, the options and the moderation rules one after another; cold, that was three
        database round trips in a row, each behind everything else the event loop had queued (a burst's
        acknowledgements), so the first requests after a start waited for all three.
        """
        caches: list[PolicyCache[Any]] = [self._policy.cache, self._server_options.cache]
        if self._rules is not None:
            caches.append(self._rules.cache)
        cold = [cache.get(guild_id) for cache in caches if not cache.holds(guild_id)]
        if cold:
            await asyncio.gather(*cold)

    async def _admit(
        self, request: GenerationRequest, fingerprint: str, limits: ServerLimits, route: Route
    ) -> Admission:
        window = self._limits.duplicate_window_seconds
        since = self._clock() - timedelta(seconds=window) if window > 0 else None
        resolution = self._resolution(request, route)
        estimate = self._pricing.estimate_request(request, provider=route.provider, resolution=resolution)
        place = await self._place_rules(request)
        held = place.holds(estimate)
        ask_first = estimate > limits.confirm_above and not request.confirmed
        if since is not None and (ask_first or held or place.safety or request.references):
            # Before a question, the mod-log's check or fetching references, look for the request's first job. Without
            # any of those the reservation's own look (the same query, in its unit) is the only one: one read fewer.
            earlier = await self._jobs.find_recent_duplicate(request.guild_id, request.member_id, fingerprint, since)
            if earlier is not None:
                log.info("request of member %d collapsed into job %s", request.member_id, earlier.id)
                return Admission(earlier.id, earlier.estimate, self._scheduler.position(earlier.id), duplicate=True)
        if held or place.safety:
            # A held request, or a flagged result of a safety channel, goes to the mod-log: without one that works it
            # would be paid for and seen by nobody, so the request is refused before anything is reserved.
            problem = await self._modlog.problem(request.guild_id)
            if problem is not None:
                raise InvalidRequestError(problem)
        if ask_first or any(reference.image_uuid is None for reference in request.references):
            # Refuse now what the budget cannot hold anyway: rather than after a confirmation, and before downloading
            # (up to 4 x 25 MB) and uploading references. The reservation below still decides.
            await self._ledger.check(
                request.guild_id, request.member_id, request.role_ids, estimate, places=request.places
            )
        if ask_first:
            return Admission(None, estimate, needs_confirmation=True, threshold=limits.confirm_above)
        if route.provider is ProviderName.RUNBASE:
            # Runbase fetches `image_urls` itself: the Discord URLs as they are, checked against its limits.
            references = await self._references.urls_for_runbase(request, route.max_references)
        else:
            references = await self._references.prepare(request)
        if self.stopping:
            raise ServiceNotReadyError(RESTARTING)
        new_job = self._new_job(request, estimate, references, fingerprint, place, held=held)
        new_job = replace(new_job, provider=route.provider.value, resolution=resolution)
        # One transaction: the hold and the job row exist together or not at all.
        reservation = await self._ledger.reserve(
            new_job.id,
            request.guild_id,
            request.member_id,
            request.role_ids,
            estimate,
            job=new_job,
            places=request.places,
            duplicate_since=since,  # asked again under the server's lock: another process may have just stored it
        )
        job = reservation.job
        if reservation.duplicate and job is not None:
            log.info("request of member %d collapsed into job %s", request.member_id, job.id)
            return Admission(job.id, job.estimate, self._scheduler.position(job.id), duplicate=True)
        if job is None:  # pragma: no cover - a fresh job id: the reservation just stored the row
            raise LedgerError(f"Job {new_job.id} was not stored with its reservation.")
        if held:
            metrics.current().job_state(JobState.AWAITING_APPROVAL)
            log.info(
                "job %s of member %d held for approval in guild %d, estimate %s reserved",
                job.id,
                job.member_id,
                request.guild_id,
                format_usd(estimate),
                extra={"job_id": job.id, "guild_id": request.guild_id},
            )
            return Admission(job.id, estimate, None, held=True, warning=reservation.warning)
        status_now = self._limits.status_after_seconds == 0
        self._active.track(job, shown=status_now)
        position = self._scheduler.submit(job.id, job.member_id, job.provider)
        metrics.current().job_state(JobState.QUEUED)
        log.info(
            "job %s admitted for member %d in guild %d: %s on %s x%d, estimate %s, position %s",
            job.id,
            job.member_id,
            request.guild_id,
            job.model.value,
            job.provider,
            job.count,
            format_usd(estimate),
            position,
            extra={"job_id": job.id, "guild_id": request.guild_id},
        )
        return Admission(job.id, estimate, position, warning=reservation.warning, status_now=status_now)

    async def _place_rules(self, request: GenerationRequest) -> PlaceRules:
        """Return the approval and safety rules of the request's channel (or its parents); none without moderation."""
        if self._rules is None:
            return PlaceRules()
        return await self._rules.rules(request.guild_id, request.places)

    def _resolution(self, request: GenerationRequest, route: Route) -> Resolution | None:
        """Return the job's resolution: the member's, else the config's default, on a model that offers one."""
        if not route.resolutions:
            return None
        return request.resolution or self._config.defaults.resolution

    def _route(self, request: GenerationRequest) -> Route:
        """Pick the route of `request`, or raise `InvalidRequestError` naming what is possible instead."""
        try:
            return self.routing.choose(request.model, request.route_request())
        except NoRouteError as exc:
            if self.routing.route(request.model, ProviderName.RUNWARE) is not None:
                # Runware's own check first: its refusals read exactly as they did before routes existed.
                self._check_runware(request)
            raise InvalidRequestError(exc.sentence()) from None

    def _check_runware(self, request: GenerationRequest) -> None:
        # Builds (and so checks) the Runware request; the reference strings are replaced by UUIDs later.
        ImageInferenceRequest(
            model=request.model,
            prompt=request.prompt,
            size=request.size,
            quality=request.quality,
            background=request.background,
            count=request.count,
            format=request.format,
            reference_images=tuple(reference.identity for reference in request.references),
            output_quality=self._config.runware.output_quality,
        )

    def _validate(self, request: GenerationRequest, server: ServerLimits) -> Route:
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
                raise about_reference(error, request, number, reference) from None
        route = self._route(request)
        if route.provider is ProviderName.RUNWARE:
            self._check_runware(request)
        elif not request.prompt.strip():
            raise InvalidRequestError("the prompt is empty; describe the image you want")
        return route

    def _new_job(
        self,
        request: GenerationRequest,
        estimate: int,
        references: tuple[str, ...],
        fingerprint: str,
        place: PlaceRules,
        *,
        held: bool,
    ) -> NewJob:
        extras: dict[str, Any] = {
            "fingerprint": fingerprint,
            "kind": request.kind.value,
            "role_ids": list(request.role_ids),
            "delivery": request.delivery.to_extras(),
            "reference_names": [reference.filename for reference in request.references],
            "output_quality": self._config.runware.output_quality,
        }
        if place.safety:
            extras["safety"] = True
        if request.references:
            # Kept so failover can send the references to Runbase by URL when Runware refuses the job.
            extras["reference_sources"] = [runbase_source(reference) for reference in request.references]
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
            state=JobState.AWAITING_APPROVAL if held else JobState.QUEUED,
            references=references,
            extras=extras,
            parent_job_id=request.parent_job_id,
            interaction_token=request.delivery.interaction_token,
            interaction_expires_at=request.delivery.token_expires_at,
        )

    # ------------------------------------------------------------------------------- requests from a stored job

    @staticmethod
    def reroll_request(
        parent: Job, member_id: int, role_ids: Sequence[int], delivery: DeliveryTarget, *, confirmed: bool
    ) -> GenerationRequest:
        """Build the parent's request again (same options and references) for `member_id`, who pays for it."""
        return request_from_job(
            parent,
            member_id=member_id,
            role_ids=tuple(role_ids),
            delivery=delivery,
            kind=RequestKind.REROLL,
            confirmed=confirmed,
        )

    async def edit_request(
        self,
        parent: Job,
        member_id: int,
        role_ids: Sequence[int],
        prompt: str,
        delivery: DeliveryTarget,
        *,
        confirmed: bool,
    ) -> GenerationRequest:
        """Build an edit of the parent's result images (the references, by Runware UUID) with a new prompt.

        The prompt is stripped and must not be empty; the parent must have been made in a server. The parent's
        model and size are kept; the other options come from the server's defaults, else the config's.
        """
        text = prompt.strip()
        if not text:
            raise InvalidRequestError(EMPTY_PROMPT)
        if parent.guild_id is None:
            raise InvalidRequestError(NOT_IN_A_SERVER)
        options = await self._server_options.resolve(parent.guild_id, model=parent.model.value, size=parent.size.value)
        results = await self._jobs.results(parent.id)
        if not results:
            raise InvalidRequestError("That job has no images to edit; it did not finish.")
        # A Runbase result is known to no one by an id: its link (on Runbase's CDN) stands for it, either way.
        on_runbase = parent.provider == ProviderName.RUNBASE.value
        references = tuple(
            ReferenceSource.from_image_uuid(
                (result.image_url or result.image_uuid) if on_runbase else result.image_uuid,
                filename=f"image {result.index + 1}",
            )
            for result in results
        )
        request = request_from_job(
            parent,
            member_id=member_id,
            role_ids=tuple(role_ids),
            delivery=delivery,
            kind=RequestKind.EDIT,
            prompt=text,
            references=references,
            confirmed=confirmed,
        )
        return replace(
            request,
            model=options.model,
            size=options.size,
            quality=options.quality,
            background=options.background,
            format=options.format,
            count=options.count,
        )
