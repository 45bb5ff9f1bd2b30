"""Failover: a job whose provider certainly did not take its work moves to the next route for its model.

"Certainly did not take it" (`bot.providers.base.certainly_not_accepted`) is decided on the error categories
(`bot.runware.errors`, `bot.runbase.errors`):
- Runbase: `not_created` (a refusal it answered: 400, 401, 402 `insufficient_balance`, 403 key limits, 429
  `USAGE_EXCEEDED`, or a connection never opened) on every run of the job: no run was made, nothing was paid.
- Runware: a refused key (`RunwareAuthError`), an empty balance (`RunwareCreditsError`, 402), or a connection that
  was never opened (nothing was sent).
Never after an unknown outcome: a timeout after sending, a dropped connection, a 5xx, a lost create answer. Those
end the job as they always did (and a lost Runbase create is charged, `bot.jobs.unsure`).

Moving is one ledger transaction (`Ledger.refit`): the estimate is recomputed for the next route and re-reserved (a
larger one's difference must fit the budgets with the job's hold counted, and is then held; a smaller one's surplus
is freed; a request that no longer fits ends, nothing charged, the member told why), and the job gets the new
provider, estimate and state `queued`.

A job with references keeps each one's source (`reference_sources` in its extras: the Discord URL, declared size,
name). Moving Runware -> Runbase sends those URLs as `image_urls`, checked here against Runbase's limits for the
model as admission checks them (how many, each an image of at most 4 MB); when they cannot go (too many, too large,
bytes in hand or an earlier Runware result with no URL, or a job stored before sources were kept) the job stays and
the first error stands, the reason logged. A job with references on Runbase does not move to Runware (its
references would have to be fetched and uploaded to Runware by the worker; not done).
"""

from __future__ import annotations

import logging

from bot.billing.errors import BudgetExceededError, LedgerError, PricingError
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import ProviderName, Route, Routing
from bot.errors import AtelierError
from bot.jobs.references import References
from bot.jobs.requests import ReferenceSource, job_places, job_role_ids, job_route_request
from bot.money import format_usd
from bot.providers.base import Providers, certainly_not_accepted
from bot.runware.errors import RunwareError
from bot.runware.models import ImageResult
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job

log = logging.getLogger(__name__)


class FailoverRefusedError(RunwareError):
    """The next route would cost more than the member's budget still allows: the job ends, nothing charged."""

    def __init__(self, first: RunwareError, route: Route, estimate: int, refusal: BudgetExceededError) -> None:
        super().__init__(str(refusal), code="failoverRefused")
        self.first = first
        self.route = route
        self.estimate = estimate

    @property
    def user_message(self) -> str:
        """Say why the first provider failed and why the next one was not used."""
        return (
            f"{self.first.user_message.removesuffix(' Nothing was charged.').rstrip()} "
            f"{self.route.provider.label} could take over, but there this request costs about "
            f"{format_usd(self.estimate)}, which no longer fits your budget. Nothing was charged."
        )


class Failover:
    """Produces a queued job's images on its provider, moving it along its model's routes while they refuse."""

    def __init__(
        self,
        *,
        providers: Providers,
        routing: Routing,
        pricing: Pricing,
        ledger: Ledger,
        jobs: JobRepository,
        references: References | None = None,
    ) -> None:
        self._providers = providers
        self._routing = routing
        self._pricing = pricing
        self._ledger = ledger
        self._jobs = jobs
        self._references = references

    async def produce(self, job: Job) -> tuple[list[ImageResult] | None, Job]:
        """Return the job's images (None: no longer queued) and the job as it ran (its provider may have changed)."""
        while True:
            try:
                return await self._providers.for_job(job).produce(job), job
            except RunwareError as exc:
                moved = await self._move(job, exc) if certainly_not_accepted(exc) else None
                if moved is None:
                    raise
                job = moved

    async def _move(self, job: Job, error: RunwareError) -> Job | None:
        """Move the job to its model's next route; None when there is none (the error then stands)."""
        request = job_route_request(job)
        route = self._routing.after(job.model, job.provider, request)
        if route is None or route.provider.value not in self._providers:
            return None
        urls: tuple[str, ...] | None = None
        if job.references:
            urls = await self._urls_for(job, route)
            if urls is None:
                return None
        try:
            estimate = self._pricing.estimate_route(route, job, job.resolution)
        except PricingError:
            log.warning("job %s: no price on %s; not moving it", job.id, route.label, exc_info=True)
            return None
        try:
            extra = await self._ledger.refit(
                job.id, job_role_ids(job), job_places(job), estimate, route.provider.value, references=urls
            )
        except BudgetExceededError as refusal:
            log.info("job %s: %s refused it and %s does not fit the budget (%s)", job.id, job.provider, route, refusal)
            raise FailoverRefusedError(error, route, estimate, refusal) from error
        except LedgerError:
            log.warning("job %s could not move to %s", job.id, route.label, exc_info=True)
            return None
        log.warning(
            "job %s: %s certainly did not take it (%s); moved to %s, re-reserved at an estimate of %d (%+d)",
            job.id,
            job.provider,
            error,
            route.label,
            estimate,
            extra,
        )
        return await self._jobs.get(job.id)

    async def _urls_for(self, job: Job, route: Route) -> tuple[str, ...] | None:
        """Return the job's references as Runbase `image_urls` for `route`; None (logged why) when they cannot go."""
        if job.provider != ProviderName.RUNWARE.value or route.provider is not ProviderName.RUNBASE:
            log.info("job %s has references on %s; not moving it to %s", job.id, job.provider, route.label)
            return None
        kept = job.extras.get("reference_sources")
        if self._references is None or not isinstance(kept, list) or len(kept) != len(job.references):
            log.info("job %s kept no reference URLs; not moving it to %s", job.id, route.label)
            return None
        sources: list[ReferenceSource] = []
        for number, item in enumerate(kept, start=1):
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                log.info("job %s: reference %d has no URL Runbase could fetch; not moving it", job.id, number)
                return None
            size = item.get("size")
            name = item.get("name")
            sources.append(
                ReferenceSource.from_url(
                    url,
                    filename=name if isinstance(name, str) else "reference",
                    size=size if isinstance(size, int) else None,
                )
            )
        try:
            return await self._references.urls_for_move(sources, route.max_references)
        except AtelierError as exc:
            log.info("job %s: its references cannot go to %s (%s); not moving it", job.id, route.label, exc)
            return None
