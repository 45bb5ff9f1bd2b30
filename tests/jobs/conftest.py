"""Fixtures for the job service: a real migrated SQLite file, the real Runware client against the fake server over
HTTP, a real ledger, and a recording `Delivery` standing in for Discord (the edge)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import Background, ModelName, OutputFormat, ProviderName, Quality, Routing, Size
from bot.images import FittedImage
from bot.jobs.concurrency import AdaptiveLimit, lane_scheduler, provider_lanes
from bot.jobs.delivery import ResultSummary
from bot.jobs.options import ServerOptions
from bot.jobs.requests import DeliveryTarget, GenerationRequest
from bot.jobs.scheduler import Scheduler
from bot.jobs.service import GenerationService
from bot.runware.client import RunwareClient
from bot.settings import AppConfig, RunwareConfig, load_app_config
from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import EntryKind, Job, JobState, LedgerEntry
from fakes.config_file import project_config
from fakes.runware import FakeRunware

GUILD = 1001
CHANNEL = 2002
ALICE = 3003
BOB = 4004
MINI_MEDIUM_SQUARE = 11_000
"""Price of one gpt-image-1-mini, medium, 1024x1024 image in the config (and on the fake)."""

FAST_RUNWARE = RunwareConfig(
    request_timeout_seconds=2.0,
    task_timeout_seconds=5.0,
    poll_initial_delay_seconds=0.01,
    poll_max_interval_seconds=0.05,
    max_retries=2,
)


def make_config(**limits: Any) -> AppConfig:
    """The project's config with fast Runware timings and the given `[limits]` changes."""
    base = load_app_config(project_config())
    return base.model_copy(update={"runware": FAST_RUNWARE, "limits": base.limits.model_copy(update=limits)})


def make_request(prompt: str = "a red fox in the snow", **changes: Any) -> GenerationRequest:
    """A plain /imagine request from Alice with the config's defaults."""
    request = GenerationRequest(
        guild_id=GUILD,
        channel_id=CHANNEL,
        member_id=ALICE,
        role_ids=(),
        prompt=prompt,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        count=1,
        format=OutputFormat.PNG,
        delivery=DeliveryTarget(channel_id=CHANNEL, application_id=55, interaction_token="tok", token_expires_at=None),
    )
    return replace(request, **changes)


@dataclass
class Delivered:
    """One successful `deliver` call."""

    job: Job
    images: list[FittedImage]
    summary: ResultSummary
    message_id: int


@dataclass
class RecordingDelivery:
    """The Discord edge in tests: records every call; can be told to fail or to hold a delivery."""

    delivered: list[Delivered] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    progress_calls: list[tuple[str, int | None, float, JobState, float]] = field(default_factory=list)
    posting_calls: list[str] = field(default_factory=list)
    """Job ids of progress calls that said the images are being posted, in order."""
    error: BaseException | None = None
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    _ids: Any = field(default_factory=lambda: itertools.count(900_000))

    async def deliver(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> int | None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        message_id = next(self._ids)
        self.delivered.append(Delivered(job, list(images), summary, message_id))
        return message_id

    async def progress(
        self, job: Job, position: int | None, elapsed_seconds: float, state: JobState, *, posting: bool = False
    ) -> None:
        now = asyncio.get_running_loop().time()
        if posting:
            self.posting_calls.append(job.id)
            return
        self.progress_calls.append((job.id, position, elapsed_seconds, state, now))

    async def fail(self, job: Job, message: str) -> None:
        self.failures.append((job.id, message))


@dataclass
class Harness:
    """Everything one "process" of the bot has: database, ledger, client, scheduler, service, delivery."""

    db: Database
    budgets: Budgets
    ledger: Ledger
    client: RunwareClient
    scheduler: Scheduler
    service: GenerationService
    delivery: RecordingDelivery
    fake: FakeRunware
    settings: ServerOptions
    limit: AdaptiveLimit
    """The adaptive Runware concurrency, wired as `bot.app` wires it (the scheduler's Runware lane asks it, the client
    feeds it)."""

    async def entries(self, job_id: str) -> dict[EntryKind, LedgerEntry]:
        """The job's ledger entries by kind."""
        rows = await self.db.run(lambda conn: LedgerQueries(conn).entries_for_job(job_id), write=False)
        return {row.kind: row for row in rows}

    async def charged(self) -> int:
        """Sum of every charge in the ledger."""
        total = await self.db.run(
            lambda conn: conn.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'").fetchone()[
                0
            ],
            write=False,
        )
        return int(total)

    async def ledger_rows(self) -> int:
        """Number of ledger rows (0 when nothing ever moved)."""
        count = await self.db.run(lambda conn: conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0], write=False)
        return int(count)

    async def job_rows(self) -> int:
        """Number of stored jobs."""
        count = await self.db.run(lambda conn: conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0], write=False)
        return int(count)

    async def job(self, job_id: str) -> Job:
        """The stored job (which must exist)."""
        job = await self.service.get_job(job_id)
        assert job is not None
        return job


class HarnessFactory:
    """Builds harnesses on one database file; `open()` again after a hard stop to simulate a restart."""

    def __init__(self, path: Path | str, session: aiohttp.ClientSession, fake: FakeRunware, key: str) -> None:
        self.path = path
        self.session = session
        self.fake = fake
        self.key = key
        self.opened: list[Harness] = []

    async def open(
        self,
        config: AppConfig | None = None,
        *,
        start: bool = True,
        allowed_hosts: frozenset[str] = frozenset(),
        routing: Routing | None = None,
        retry_base_delay: float = 0.005,
        retry_max_delay: float = 0.02,
    ) -> Harness:
        config = config or make_config()
        db = await Database.open(self.path)
        budgets = Budgets(db, config)
        ledger = Ledger(db, budgets)
        lanes = provider_lanes(config.limits)
        limit = lanes[ProviderName.RUNWARE.value]
        client = RunwareClient(
            self.session,
            api_key=self.key,
            api_url=self.fake.url,
            config=config.runware,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            load=limit,
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
            allowed_hosts=allowed_hosts,
            routing=routing,
        )
        harness = Harness(db, budgets, ledger, client, scheduler, service, delivery, self.fake, settings, limit)
        self.opened.append(harness)
        if start:
            await service.resume()
        return harness

    async def crash(self, harness: Harness) -> None:
        """Stop a harness the hard way: running jobs are cancelled mid-flight, nothing is cleaned up."""
        await harness.service.stop(grace=0)
        await harness.db.close()
        self.opened.remove(harness)

    async def close_all(self) -> None:
        for harness in list(self.opened):
            await harness.service.stop(grace=0)
            await harness.db.close()
        self.opened.clear()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session per test."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture
async def harnesses(
    tmp_path: Path, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str
) -> AsyncIterator[HarnessFactory]:
    """A factory of harnesses sharing one database file and the fake Runware; all closed after the test."""
    factory = HarnessFactory(tmp_path / "atelier.sqlite3", session, fake_runware, runware_key)
    try:
        yield factory
    finally:
        await factory.close_all()


@pytest_asyncio.fixture
async def harness(harnesses: HarnessFactory) -> Harness:
    """A started harness with the default test config."""
    return await harnesses.open()


async def assert_nothing_happened(harness: Harness) -> None:
    """Nothing moved: no ledger row, no job row, no inference task on Runware."""
    assert await harness.ledger_rows() == 0
    assert await harness.job_rows() == 0
    assert harness.fake.tasks_submitted() == []


async def eventually(predicate: Any, *, within: float = 5.0, interval: float = 0.01) -> None:
    """Wait until `predicate()` (sync or async) is true, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(interval)
