"""A stream of ledger operations on one file, run as a subprocess so that the crash test can SIGKILL it mid-stream.

Usage: python -m tests.billing.crash_worker DATABASE SEED. Prints the number of finished job lifecycles as it goes.
Like the bot, it reconciles first, then runs 16 concurrent lifecycles: reserve (with the job row, or now and then
without one), submit, then succeed and settle, fail and release, or stay in flight; plus top-up grants.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.clock import utc_now
from bot.settings import load_app_config
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.rows import JobState, NewJob
from tests.job_writes import JobWrites

ROOT = Path(__file__).resolve().parents[2]
GUILD = 5
MEMBERS = (101, 102, 103, 104)


async def main(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    config = load_app_config(ROOT / "config" / "atelier.toml")
    async with await Database.open(path) as db:
        budgets = Budgets(db, config)
        ledger = Ledger(db, budgets)
        await ledger.reconcile()
        await budgets.set_cap(GUILD, 1_000_000_000)
        finished = 0

        async def move(job_id: str, state: JobState, error: str | None = None) -> None:
            await db.run(lambda conn: JobQueries(conn).update_state(job_id, state, utc_now(), error=error))

        async def set_cost(job_id: str, cost: int) -> None:
            await db.run(lambda conn: JobWrites(conn).set_cost(job_id, cost, utc_now()))

        async def lifecycle() -> None:
            nonlocal finished
            while True:
                member = rng.choice(MEMBERS)
                estimate = rng.choice([11_000, 15_000, 52_000, 220_165])
                job = NewJob(
                    member_id=member,
                    guild_id=GUILD,
                    channel_id=9,
                    model=ModelName.GPT_IMAGE_1_MINI,
                    size=Size.SQUARE,
                    quality=Quality.MEDIUM,
                    background=Background.AUTO,
                    format=OutputFormat.PNG,
                    count=1,
                    prompt="crash test",
                    estimate=estimate,
                )
                orphan = rng.random() < 0.1
                try:
                    await ledger.reserve(job.id, GUILD, member, [], estimate, job=None if orphan else job)
                except BudgetExceededError as refused:
                    assert refused.scope == "member", refused
                    await ledger.grant(GUILD, member, 500_000, "top-up")
                    continue
                if orphan:
                    continue
                await move(job.id, JobState.SUBMITTED)
                await asyncio.sleep(rng.random() / 1000)
                roll = rng.random()
                if roll < 0.6:
                    cost = estimate - rng.randrange(0, 5_000) if rng.random() < 0.9 else estimate + 7_000
                    await set_cost(job.id, cost)
                    await move(job.id, JobState.SUCCEEDED)
                    await ledger.settle(job.id, cost)
                elif roll < 0.85:
                    await move(job.id, JobState.FAILED, error="task failed")
                    await ledger.release(job.id)
                finished += 1
                if finished % 25 == 0:
                    print(finished, flush=True)

        await asyncio.gather(*(lifecycle() for _ in range(16)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
