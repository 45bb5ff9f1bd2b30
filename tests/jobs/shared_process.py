"""One bot "process" on a shared PostgreSQL database: its own `Database` handle, `NotifyBus`, `SharedScheduler` and job
service against the fake Runware, wired as `bot.app` wires them for PostgreSQL.

Run as a program (`python -m tests.jobs.shared_process URL RUNWARE_URL KEY COUNT`), it is a real process the tests
can SIGKILL: it opens the same stack, admits COUNT requests (members 1..COUNT), prints `submitted` once every job's
task is on Runware, then waits to be killed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import aiohttp

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import ProviderName
from bot.jobs.concurrency import AdaptiveLimit, provider_lanes
from bot.jobs.options import ServerOptions
from bot.jobs.service import GenerationService
from bot.jobs.shared import SharedScheduler, cache_drops, share_caches, shared_scheduler
from bot.moderation.approvals import ModerationRules
from bot.moderation.policy import Policy
from bot.runware.client import RunwareClient
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.notify import NotifyBus
from tests.jobs.conftest import RecordingDelivery, make_config, make_request

LEASE_SECONDS = 1.0
"""Short leases, so a killed process's jobs are taken over within a test."""


@dataclass
class Process:
    """What one bot process on the shared database has."""

    db: Database
    bus: NotifyBus
    ledger: Ledger
    budgets: Budgets
    client: RunwareClient
    scheduler: SharedScheduler
    service: GenerationService
    delivery: RecordingDelivery
    options: ServerOptions
    policy: Policy
    moderation: ModerationRules
    limit: AdaptiveLimit

    async def close(self) -> None:
        """Stop gracefully: running jobs interrupted, every lease given back, then the bus and the database closed."""
        await self.service.stop(grace=0)
        await self.bus.stop()
        await self.db.close()


async def open_process(
    url: str,
    session: aiohttp.ClientSession,
    runware_url: str,
    key: str,
    config: AppConfig | None = None,
    *,
    lease_seconds: float = LEASE_SECONDS,
    start: bool = True,
) -> Process:
    """Open one process's stack on the database at `url` (and resume, i.e. start claiming, with `start`)."""
    config = config or make_config()
    db = await Database.open(url)
    bus = NotifyBus(url)
    budgets = Budgets(db, config)
    ledger = Ledger(db, budgets)
    lanes = provider_lanes(config.limits)
    limit = lanes[ProviderName.RUNWARE.value]
    client = RunwareClient(
        session,
        api_key=key,
        api_url=runware_url,
        config=config.runware,
        retry_base_delay=0.005,
        retry_max_delay=0.02,
        load=limit,
    )
    scheduler = shared_scheduler(db, config.limits, lanes, bus, lease_seconds=lease_seconds)
    delivery = RecordingDelivery()
    options = ServerOptions(db, config)
    policy = Policy(db)
    moderation = ModerationRules(db)
    share_caches(bus, drops=cache_drops(options, policy, moderation))
    service = GenerationService(
        db,
        client,
        session,
        ledger,
        Pricing(config),
        config,
        scheduler,
        delivery=delivery,
        server_options=options,
        policy=policy,
        rules=moderation,
    )
    await bus.start()
    process = Process(
        db, bus, ledger, budgets, client, scheduler, service, delivery, options, policy, moderation, limit
    )
    if start:
        await service.resume()
    return process


async def _main(url: str, runware_url: str, key: str, count: int) -> None:
    async with aiohttp.ClientSession() as session:
        process = await open_process(url, session, runware_url, key)
        job_ids = []
        for member in range(1, count + 1):
            admission = await process.service.admit(make_request(member_id=member, prompt=f"a fox number {member}"))
            assert admission.job_id is not None
            job_ids.append(admission.job_id)
        jobs = JobRepository(process.db)
        while not all([await jobs.acknowledged_at(job_id) is not None for job_id in job_ids]):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # every task POSTed and acknowledged by Runware
        print("submitted", " ".join(job_ids), flush=True)
        await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
