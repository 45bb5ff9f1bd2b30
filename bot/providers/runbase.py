"""`RunbaseProvider`: a job on Runbase, one run per image, never paying for the same image twice.

Runbase has no idempotency key and no way to list runs (reference §6), and a run's id is known only from the create's
answer. So each run gets a `job_runs` row in state `creating` just before its create is sent (once the key's limiter
gave it its turn: a create still waiting there was never sent), and the run id once Runbase answered. Then:

| found (after a restart, or by the create itself)  | what happens                                            |
|---------------------------------------------------|---------------------------------------------------------|
| no row for an image                               | its create was never sent: it is created now            |
| `creating` (no run id)                            | the answer never arrived: `lost`, never sent again;     |
|                                                   | charged at the estimate's share (the owner may have     |
|                                                   | paid), the member and the operator told                 |
| `created` (a run id)                              | polled until it ends                                    |
| `succeeded` / `failed`                            | taken as it is (a failed run was refunded: $0)          |
| a run the bot stopped waiting for (timeout)       | `abandoned`: charged its `costUsd` (it may still finish) |

What the job is charged is the sum of the `costUsd` of its delivered runs, plus what lost or abandoned runs may have
cost the owner. A job where no image was made and nothing may have been paid raises the first run's error: when no
run was made at all (`not_created` on every one), the job may move to another provider (`bot.jobs.failover`). A job
where no image was made but something may have been paid raises `PaidFailureError` (the worker settles it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.catalog import ModelName, ProviderName, Quality, Resolution, Route, find_route
from bot.observability import metrics
from bot.providers.base import PaidFailureError
from bot.runbase.client import RunbaseClient
from bot.runbase.errors import (
    RunbaseContentRefusedError,
    RunbaseError,
    RunbaseInvalidRequestError,
    RunbaseOutcomeUnknownError,
    RunbaseRunFailedError,
)
from bot.runbase.models import CreateRun, RunInput
from bot.runware.models import ImageResult
from bot.storage.jobs import JobRepository
from bot.storage.rows import Job, JobState
from bot.storage.runs import JobRun, RunRepository, RunState

log = logging.getLogger(__name__)

TASK_PREFIX = "runbase-"
"""A Runbase job's `task_uuid` is this and its job id (the column is unique; Runbase has no task of its own)."""


def runbase_route(model: ModelName) -> Route | None:
    """Return the catalog's Runbase route of a model, or None when Runbase does not serve it."""
    return find_route(model, ProviderName.RUNBASE)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one run of a job ended."""

    index: int
    image: ImageResult | None = None
    error: RunbaseError | None = None
    paid: int = 0
    """Micro-dollars the owner may have paid for a run that delivered no image (lost, abandoned)."""
    lost: bool = False


class RunbaseProvider:
    """Runs jobs on Runbase through one `RunbaseClient` (one per key: it owns the key's limiter)."""

    def __init__(self, client: RunbaseClient, jobs: JobRepository, runs: RunRepository) -> None:
        self._client = client
        self._jobs = jobs
        self._runs = runs

    @property
    def name(self) -> str:
        """`runbase`."""
        return ProviderName.RUNBASE.value

    @property
    def client(self) -> RunbaseClient:
        """The Runbase client (the key check uses it)."""
        return self._client

    async def produce(self, job: Job) -> list[ImageResult] | None:
        """Move the job to `submitted`, then create and poll one run per image; see the module's table."""
        request = self.request_for(job)
        if not await self._jobs.begin_submit(job.id, TASK_PREFIX + job.id):
            log.info("job %s is no longer queued; not creating its runs", job.id)
            return None
        metrics.current().job_state(JobState.SUBMITTED)
        outcomes = await asyncio.gather(*(self._create(job, index, request) for index in range(job.count)))
        return self._collect(job, list(outcomes))

    async def resume(self, job: Job) -> list[ImageResult]:
        """Continue a submitted job: lost creates are never sent again, created runs are polled, unsent ones made."""
        stored = {run.index: run for run in await self._runs.for_job(job.id)}
        request: CreateRun | None = None
        pending = []
        for index in range(job.count):
            run = stored.get(index)
            if run is None:
                request = request or self.request_for(job)
                pending.append(self._create(job, index, request))
            else:
                pending.append(self._continue(job, run))
        outcomes = await asyncio.gather(*pending)
        return self._collect(job, list(outcomes))

    async def download(self, image: ImageResult) -> bytes:
        """Download one result image from Runbase's CDN (no key sent)."""
        return await self._client.download(image.url or "", run_id=image.image_uuid)

    async def unsure_images(self, job: Job) -> int:
        """Count the job's lost or abandoned runs: no image, but charged (the owner may have paid for them)."""
        runs = await self._runs.for_job(job.id)
        return sum(1 for run in runs if run.state in (RunState.LOST, RunState.ABANDONED))

    def request_for(self, job: Job) -> CreateRun:
        """Build the create body of one run of a job; `RunbaseInvalidRequestError` if Runbase cannot serve it."""
        route = runbase_route(job.model)
        if route is None:
            raise RunbaseInvalidRequestError(f"{job.model.label} is not served by Runbase")
        quality: str | None = None
        if route.sends_quality:
            # `auto` is priced as high everywhere, so it is sent as high.
            asked = Quality.HIGH if job.quality is Quality.AUTO else job.quality
            if asked not in route.qualities:
                offered = " or ".join(q.value for q in route.qualities)
                raise RunbaseInvalidRequestError(f"Runbase offers {route.label} at {offered} quality, not {asked}")
            quality = asked.value
        resolution = _resolution(job, route)
        urls = tuple(job.references) or None
        return CreateRun(
            model=route.provider_model,
            input=RunInput(
                prompt=job.prompt,
                aspect_ratio=job.size.aspect_ratio,
                quality=quality,
                resolution=resolution,
                image_urls=urls,
            ),
        )

    # ------------------------------------------------------------------------------------------------ one run

    async def _create(self, job: Job, index: int, request: CreateRun) -> _Outcome:
        """Create a run (stored `creating` just before it is sent, never sent twice), store its id, and poll it."""
        sent = False

        async def store_before_sending() -> None:
            nonlocal sent
            await self._runs.begin(job.id, index)
            sent = True

        try:
            run = await self._client.create(request, before_send=store_before_sending)
        except RunbaseOutcomeUnknownError as exc:
            return await self._lose(job, index, str(exc))
        except RunbaseError as exc:
            if not exc.not_created:
                return await self._lose(job, index, str(exc))
            if sent:
                await self._runs.end(job.id, index, RunState.FAILED, cost=0, error=str(exc))
            return _Outcome(index, error=exc)
        await self._runs.created(job.id, index, run.id, run.cost_micros)
        return await self._poll(job, index, run.id, run.cost_micros)

    async def _continue(self, job: Job, run: JobRun) -> _Outcome:
        """Continue a stored run after a restart."""
        if run.state is RunState.CREATING:
            return await self._lose(job, run.index, "the bot stopped before Runbase's answer to the create was stored")
        if run.state is RunState.CREATED and run.run_id is not None:
            log.info("job %s: polling Runbase run %s after a restart", job.id, run.run_id)
            return await self._poll(job, run.index, run.run_id, run.cost or 0)
        if run.state is RunState.SUCCEEDED and run.url is not None and run.run_id is not None:
            image = ImageResult(task_uuid=run.run_id, image_uuid=run.run_id, url=run.url, cost_micros=run.cost or 0)
            return _Outcome(run.index, image=image)
        if run.state in (RunState.LOST, RunState.ABANDONED):
            failure = RunbaseOutcomeUnknownError(run.error or "the run's outcome is unknown", task_uuid=run.run_id)
            return _Outcome(run.index, error=failure, paid=run.cost or 0, lost=run.state is RunState.LOST)
        failed = RunbaseRunFailedError(run.error or "the run failed", task_uuid=run.run_id, retryable=False)
        return _Outcome(run.index, error=failed)

    async def _poll(self, job: Job, index: int, run_id: str, cost: int) -> _Outcome:
        """Wait for a created run; a failed run costs nothing, one the bot gave up on costs its `costUsd`."""
        try:
            run = await self._client.wait(run_id)
        except (RunbaseRunFailedError, RunbaseContentRefusedError) as exc:
            await self._runs.end(job.id, index, RunState.FAILED, cost=0, error=str(exc))
            return _Outcome(index, error=exc)
        except RunbaseError as exc:
            log.warning("job %s: stopped waiting for Runbase run %s (%s); it may still be paid", job.id, run_id, exc)
            await self._runs.end(job.id, index, RunState.ABANDONED, error=str(exc))
            return _Outcome(index, error=exc, paid=cost)
        paid = run.charged_micros or cost
        url = run.urls[0]
        await self._runs.end(job.id, index, RunState.SUCCEEDED, cost=paid, url=url)
        return _Outcome(index, image=ImageResult(task_uuid=run_id, image_uuid=run_id, url=url, cost_micros=paid))

    async def _lose(self, job: Job, index: int, why: str) -> _Outcome:
        """Mark a run whose create's answer never arrived `lost`, charged at the estimate's share; never resent."""
        share = -(-job.estimate // job.count)  # rounded up: the ledger must not count less than may have been paid
        await self._runs.end(job.id, index, RunState.LOST, cost=share, error=why)
        log.error(
            "job %s: Runbase run %d of %d is lost (%s); it is not created again, and is charged at the estimate's "
            "share %d micro-dollars because the owner may have paid for it",
            job.id,
            index + 1,
            job.count,
            why,
            share,
        )
        failure = RunbaseOutcomeUnknownError(why, code="runLost")
        return _Outcome(index, error=failure, paid=share, lost=True)

    # ------------------------------------------------------------------------------------------------ the job

    def _collect(self, job: Job, outcomes: list[_Outcome]) -> list[ImageResult]:
        """Return the delivered images (the first also carries what undelivered runs may have cost), or raise."""
        outcomes.sort(key=lambda outcome: outcome.index)
        images = [outcome.image for outcome in outcomes if outcome.image is not None]
        paid = sum(outcome.paid for outcome in outcomes if outcome.image is None)
        lost = sum(1 for outcome in outcomes if outcome.lost)
        if images:
            if paid:
                first = images[0]
                images[0] = first.model_copy(update={"cost_micros": (first.cost_micros or 0) + paid})
                log.warning("job %s: %d micro-dollars of undelivered runs added to its charge", job.id, paid)
            return images
        errors = [outcome.error for outcome in outcomes if outcome.error is not None]
        if paid:
            raise PaidFailureError(_paid_message(lost, len(outcomes)), charge=paid, lost_runs=lost)
        made = [error for error in errors if not error.not_created]
        if made:
            raise made[0]
        raise errors[0]


def _resolution(job: Job, route: Route) -> str | None:
    """Return the `resolution` input for a route that has one (the job's, else the default); else None."""
    if not route.resolutions:
        return None
    chosen = job.resolution or route.default_resolution
    return None if chosen is None else Resolution(chosen).value


def _paid_message(lost: int, count: int) -> str:
    """Return what the member is told when no image came back but the owner may have paid."""
    what = "image" if count == 1 else f"{lost} of the {count} images"
    if lost:
        return (
            f"Runbase's answer for the {what} was lost, so the bot cannot tell whether it was made; it is not sent "
            "again, which could charge twice. The bot owner may have been charged on Runbase, so this request is "
            "charged at its estimate."
        )
    return (
        "Runbase did not finish in time, and the run may still be charged to the bot owner, so this request is "
        "charged what Runbase reported for it."
    )
