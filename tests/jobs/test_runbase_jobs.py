"""Jobs on Runbase through the real service, ledger and Runbase client against the fake Runbase over real sockets.

One run per image, the charge is the exact sum of `costUsd` of the delivered runs, a partial failure charges only
what was delivered, and a create whose answer was lost (dropped, or the process stopping before the run id was
stored) is never sent again and is charged at the estimate's share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest_asyncio

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import ModelName, ProviderName, Quality, Routing
from bot.clock import utc_now
from bot.jobs.concurrency import lane_scheduler, provider_lanes
from bot.jobs.options import ServerOptions
from bot.jobs.service import GenerationService
from bot.providers.base import Providers
from bot.providers.runbase import RunbaseProvider
from bot.providers.runware import RunwareProvider
from bot.runbase.limiter import RunbaseLimiter
from bot.runware.client import RunwareClient
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.rows import EntryKind, JobState
from bot.storage.runs import RunRepository, RunState
from fakes.runbase import FakeRunbase, Fault
from fakes.runware import FakeRunware
from fakes.runware import Fault as RunwareFault
from tests.jobs.conftest import ALICE, GUILD, Harness, RecordingDelivery, eventually, make_config, make_request
from tests.runbase.conftest import fast_limiter, make_client

BOTH = (ProviderName.RUNWARE, ProviderName.RUNBASE)
"""Both keys: Runware first, Runbase taking over (contract §5.4)."""


class RunbaseHarnesses:
    """Harnesses whose service has Runware and Runbase; `admit_on_runbase` stores a job on Runbase and runs it."""

    def __init__(self, path: Path, session: aiohttp.ClientSession, runware: FakeRunware, runbase: FakeRunbase) -> None:
        self.path = path
        self.session = session
        self.runware = runware
        self.runbase = runbase
        self.opened: list[Harness] = []

    async def open(
        self,
        config: AppConfig | None = None,
        *,
        start: bool = True,
        keys: tuple[ProviderName, ...] = (ProviderName.RUNBASE,),
        limiter: RunbaseLimiter | None = None,
    ) -> Harness:
        """A harness whose routing has the providers of `keys` (Runbase alone unless told), both providers built."""
        config = config or make_config()
        db = await Database.open(self.path)
        budgets = Budgets(db, config)
        ledger = Ledger(db, budgets)
        jobs = JobRepository(db)
        lanes = provider_lanes(config.limits)
        client = RunwareClient(
            self.session,
            api_key=self.runware.api_key,
            api_url=self.runware.url,
            config=config.runware,
            load=lanes[ProviderName.RUNWARE.value],
        )
        runbase = make_client(self.session, self.runbase, limiter=limiter, load=lanes[ProviderName.RUNBASE.value])
        providers = Providers(
            RunwareProvider(client, jobs, config.runware, utc_now),
            RunbaseProvider(runbase, jobs, RunRepository(db)),
        )
        scheduler = lane_scheduler(config.limits, lanes)
        delivery = RecordingDelivery()
        settings = ServerOptions(db, config)
        service = GenerationService(
            db,
            client,
            self.session,
            ledger,
            Pricing(config),
            config,
            scheduler,
            delivery=delivery,
            server_options=settings,
            providers=providers,
            routing=Routing.build(keys),
        )
        harness = Harness(
            db, budgets, ledger, client, scheduler, service, delivery, self.runware, settings, lanes["runware"]
        )
        self.opened.append(harness)
        if start:
            await service.resume()
        return harness

    async def crash(self, harness: Harness) -> None:
        await harness.service.stop(grace=0)
        await harness.db.close()
        self.opened.remove(harness)

    async def close_all(self) -> None:
        for harness in list(self.opened):
            await self.crash(harness)


@pytest_asyncio.fixture
async def runbase_harnesses(
    tmp_path: Path, session: aiohttp.ClientSession, fake_runware: FakeRunware, fake_runbase: FakeRunbase
) -> AsyncIterator[RunbaseHarnesses]:
    factory = RunbaseHarnesses(tmp_path / "atelier.sqlite3", session, fake_runware, fake_runbase)
    try:
        yield factory
    finally:
        await factory.close_all()


async def admit_on_runbase(harness: Harness, **changes: object) -> str:
    """Admit a request (GPT Image 1 unless told) on a Runbase-only harness; return the job id."""
    changes.setdefault("model", ModelName.GPT_IMAGE_1)
    admission = await harness.service.admit(make_request(**changes))  # type: ignore[arg-type]
    job_id = admission.job_id
    assert job_id is not None
    job = await harness.job(job_id)
    assert job.provider == "runbase"
    return job_id


async def settled(harness: Harness, job_id: str) -> int | None:
    entry = (await harness.entries(job_id)).get(EntryKind.SETTLE)
    return None if entry is None else entry.amount


async def test_count_three_is_three_runs_charged_the_exact_sum(runbase_harnesses: RunbaseHarnesses) -> None:
    harness = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(harness, count=3, model=ModelName.GPT_IMAGE_1_5, quality=Quality.HIGH)
    await harness.service.resume()
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    fake = runbase_harnesses.runbase
    job = await harness.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert len(fake.creates) == 3
    assert all(create.json["input"]["quality"] == "high" for create in fake.creates)
    assert job.cost == 3 * 160_000 == fake.total_charged_micros == await settled(harness, job_id)
    [delivered] = harness.delivery.delivered
    assert len(delivered.images) == 3 and delivered.summary.cost == 480_000
    runs = await RunRepository(harness.db).for_job(job_id)
    assert [run.state for run in runs] == [RunState.SUCCEEDED] * 3
    assert len({run.run_id for run in runs}) == 3


async def test_a_failed_run_is_not_charged_and_the_member_sees_how_many_were_made(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    fake = runbase_harnesses.runbase
    harness = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(harness, count=2)
    fake.fail_next(Fault.FAIL_RUN)
    await harness.service.resume()
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    job = await harness.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert len(fake.creates) == 2 and fake.total_charged_micros == 50_000
    assert await settled(harness, job_id) == 50_000
    [delivered] = harness.delivery.delivered
    assert delivered.summary.image_count == 1 and delivered.summary.count == 2


async def test_a_create_whose_answer_is_dropped_is_never_resent_and_is_charged(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    fake = runbase_harnesses.runbase
    harness = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(harness)
    fake.fail_next(Fault.DROP_AFTER_CREATE, endpoint="create")
    await harness.service.resume()
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    job = await harness.job(job_id)
    assert job.state is JobState.FAILED
    assert len(fake.creates) == 1 and fake.total_charged_micros == 50_000
    charged = await settled(harness, job_id)
    assert charged == fake.total_charged_micros == 50_000  # the lost run's share of the estimate, exactly once
    [(failed_id, message)] = harness.delivery.failures
    assert failed_id == job_id and "not sent again" in message and "Charged" in message
    [run] = await RunRepository(harness.db).for_job(job_id)
    assert run.state is RunState.LOST and run.run_id is None


async def test_a_stop_between_create_and_storing_the_run_id_never_creates_again(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    fake = runbase_harnesses.runbase
    first = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(first)
    fake.fail_next(Fault.SLOW_AFTER_CREATE, endpoint="create", delay=30)
    await first.service.resume()
    await eventually(lambda: len(fake.creates) == 1)
    await runbase_harnesses.crash(first)  # the run exists on Runbase; its id was never stored

    second = await runbase_harnesses.open()
    await asyncio.wait_for(second.service.wait_idle(), 20)
    job = await second.job(job_id)
    assert job.state is JobState.FAILED
    assert len(fake.creates) == 1
    charged = await settled(second, job_id)
    assert charged == fake.total_charged_micros == 50_000  # the lost run's share of the estimate, exactly once
    assert [job_id] == [failed for failed, _ in second.delivery.failures]


async def test_a_run_with_a_stored_id_is_polled_after_a_restart(runbase_harnesses: RunbaseHarnesses) -> None:
    fake = runbase_harnesses.runbase
    first = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(first)
    await first.service.resume()
    runs = RunRepository(first.db)
    await eventually(lambda: _created(runs, job_id))
    await runbase_harnesses.crash(first)

    second = await runbase_harnesses.open()
    await asyncio.wait_for(second.service.wait_idle(), 20)
    job = await second.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert len(fake.creates) == 1 and job.cost == 50_000 == await settled(second, job_id)


async def test_a_create_still_waiting_for_its_turn_when_the_bot_stops_is_made_after_the_restart(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    """Only one request per minute on this key: the second run's create waits in the limiter, unsent and unstored.
    After a stop there, the next start creates it (it was never sent), and polls the first by its id: two images,
    two creates, charged exactly their cost."""
    fake = runbase_harnesses.runbase
    first = await runbase_harnesses.open(start=False, limiter=fast_limiter(limit=1, window=60.0))
    job_id = await admit_on_runbase(first, count=2)
    await first.service.resume()
    runs = RunRepository(first.db)
    await eventually(lambda: _created(runs, job_id))
    await asyncio.sleep(0.2)
    assert len(fake.creates) == 1 and len(await runs.for_job(job_id)) == 1
    await runbase_harnesses.crash(first)

    second = await runbase_harnesses.open()
    await asyncio.wait_for(second.service.wait_idle(), 20)
    job = await second.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert len(fake.creates) == 2 and job.cost == 100_000 == fake.total_charged_micros == await settled(second, job_id)
    [delivered] = second.delivery.delivered
    assert len(delivered.images) == 2


async def _created(runs: RunRepository, job_id: str) -> bool:
    return any(run.run_id is not None for run in await runs.for_job(job_id))


async def test_an_empty_runbase_balance_charges_nothing(runbase_harnesses: RunbaseHarnesses) -> None:
    fake = runbase_harnesses.runbase
    harness = await runbase_harnesses.open(start=False)
    job_id = await admit_on_runbase(harness, count=2)
    fake.fail_next(Fault.ERROR, code="insufficient_balance", endpoint="create", times=2)
    await harness.service.resume()
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    job = await harness.job(job_id)
    assert job.state is JobState.FAILED and "balance is too low" in (job.error or "")
    assert fake.total_charged_micros == 0
    assert set(await harness.entries(job_id)) == {EntryKind.HOLD, EntryKind.RELEASE}


async def test_runware_402_moves_the_job_to_runbase_charged_runbase_cost_once(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    """Runware's empty balance certainly took nothing: Runbase serves the job, and only Runbase's cost is charged."""
    harness = await runbase_harnesses.open(keys=BOTH)
    harness.fake.fail_next(RunwareFault.INSUFFICIENT_CREDITS)
    admission = await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_1, count=2))
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    fake = runbase_harnesses.runbase
    job = await harness.job(admission.job_id)
    assert job.state is JobState.SUCCEEDED and job.provider == "runbase"
    assert len(fake.creates) == 2 and fake.total_charged_micros == 100_000
    assert job.cost == 100_000 == await settled(harness, job.id)
    assert job.estimate == 100_000  # recomputed on Runbase's route
    [delivered] = harness.delivery.delivered
    assert delivered.summary.provider == "runbase" and delivered.summary.cost == 100_000


async def test_runware_answer_lost_after_sending_never_fails_over(runbase_harnesses: RunbaseHarnesses) -> None:
    """Runware got the task but its answer came too late: the task is found on Runware, Runbase is never asked."""
    harness = await runbase_harnesses.open(keys=BOTH)
    harness.fake.fail_next(RunwareFault.ACCEPT_THEN_DROP)
    admission = await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_1))
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 30)

    job = await harness.job(admission.job_id)
    assert job.state is JobState.SUCCEEDED and job.provider == "runware"
    assert runbase_harnesses.runbase.requests == []
    assert len(harness.fake.tasks_submitted()) == 1
    assert await harness.charged() == job.cost


async def test_a_failover_that_no_longer_fits_the_budget_is_refused_and_nothing_charged(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    """Runbase's GPT Image 1 costs more than Runware's here; with the allowance just above Runware's estimate the
    move does not fit: the job ends, nothing is charged, the member is told why."""
    config = make_config()
    config = config.model_copy(update={"budget": config.budget.model_copy(update={"default_allowance": 45_000})})
    harness = await runbase_harnesses.open(config, keys=BOTH)
    harness.fake.fail_next(RunwareFault.INSUFFICIENT_CREDITS)
    admission = await harness.service.admit(make_request(model=ModelName.GPT_IMAGE_1))
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 20)

    job = await harness.job(admission.job_id)
    assert job.state is JobState.FAILED and job.provider == "runware"
    assert runbase_harnesses.runbase.creates == []
    assert set(await harness.entries(job.id)) == {EntryKind.HOLD, EntryKind.RELEASE}
    [(_, message)] = harness.delivery.failures
    assert "Runbase could take over" in message and "no longer fits your budget" in message


async def test_a_failover_to_a_dearer_route_holds_its_estimate_so_concurrent_requests_cannot_overspend(
    runbase_harnesses: RunbaseHarnesses,
) -> None:
    """Runbase's GPT Image 1 costs more than Runware's estimate. Runware refuses the job (402), it moves to Runbase
    and the difference is held at once; then concurrent requests fill the rest of the allowance: they get only what
    is left beside the new estimate, nothing is ever spent beyond the allowance, and the job's settle records no
    overrun (it ends exactly the re-reserved estimate)."""
    allowance = 168_000  # 4 x Runware's $0.042: a hold left at it would let a third request in
    config = make_config()
    config = config.model_copy(update={"budget": config.budget.model_copy(update={"default_allowance": allowance})})
    harness = await runbase_harnesses.open(config, keys=BOTH)
    runbase = runbase_harnesses.runbase
    harness.fake.fail_next(RunwareFault.INSUFFICIENT_CREDITS)
    admission = await harness.service.admit(make_request("the moved one", model=ModelName.GPT_IMAGE_1))
    assert admission.job_id is not None
    first_estimate = admission.estimate
    job_id = admission.job_id

    async def moved() -> bool:
        return (await harness.job(job_id)).provider == "runbase"

    await eventually(moved, within=20)
    moved_estimate = (await harness.job(job_id)).estimate
    assert moved_estimate > first_estimate  # the dearer route: the case a hold left at the old estimate got wrong

    async def request(number: int) -> str | None:
        try:
            other = await harness.service.admit(make_request(f"a fox number {number}", model=ModelName.GPT_IMAGE_1))
        except BudgetExceededError:
            return None
        return other.job_id

    others = await asyncio.gather(*(request(number) for number in range(8)))
    accepted = [other for other in others if other is not None]
    # Holds of the others beside the moved job's re-reserved estimate fit the allowance; a hold left at the first
    # estimate would have let one more in.
    assert len(accepted) == (allowance - moved_estimate) // first_estimate
    assert (allowance - first_estimate) // first_estimate > len(accepted)
    await asyncio.wait_for(harness.service.wait_idle(), 30)

    job = await harness.job(job_id)
    assert job.state is JobState.SUCCEEDED and job.provider == "runbase"
    entries = await harness.entries(job_id)
    assert entries[EntryKind.ADJUST].amount == moved_estimate - first_estimate
    settle = entries[EntryKind.SETTLE]
    assert (settle.amount, settle.released, settle.overrun) == (job.cost, moved_estimate, 0)
    assert runbase.total_charged_micros == job.cost
    overruns = await harness.db.run(
        lambda conn: conn.execute("SELECT COALESCE(SUM(overrun), 0) FROM ledger").fetchone()[0], write=False
    )
    assert overruns == 0
    assert await harness.charged() <= allowance
    status = await harness.ledger.status(GUILD, ALICE, [])
    assert status.reserved == 0 and status.spent == await harness.charged() <= allowance
