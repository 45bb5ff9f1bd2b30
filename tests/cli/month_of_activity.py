"""A month of realistic activity in a fresh database, made through the real ledger, budgets and repositories.

Three servers with rules of every kind (periods, default and role allowances, member overrides, a cap, team pools),
channel and role rules, a blocklist, moderation settings and held requests, server defaults, the command-sync hash;
then 30 days of requests from 60 members: reserved with their job rows, some refused (and topped up by a grant), and
ending in every state: queued, submitted, moved to Runbase (an adjust), delivered and settled (some above the
estimate), failed or cancelled and released, rejected, awaiting approval; Runbase runs and images stored for some.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

from bot.billing.budgets import Budgets, MemberOverride
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.billing.pools import Pools
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.meta import MetaQueries
from bot.storage.moderation import ModerationQueries
from bot.storage.policy import PolicyQueries
from bot.storage.rows import JobResult, JobState, NewJob, OptionDefaults
from bot.storage.runs import RunQueries, RunState
from bot.storage.servers import ServerOptionsQueries

GUILDS = (900_000_000_000_000_001, 900_000_000_000_000_002, 900_000_000_000_000_003)
START = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ADMIN = 900_000_000_000_000_999


class MovingClock:
    """A clock the builder moves forward through the month."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def members(guild: int) -> list[int]:
    return [guild + 1_000 * (index + 1) for index in range(20)]


def channels(guild: int) -> list[int]:
    return [guild + 10 + index for index in range(4)]


async def build_month(db: Database, config: AppConfig, *, seed: int = 12, requests: int = 900) -> None:
    """Fill `db` with a month of activity (deterministic for a seed)."""
    rng = random.Random(seed)
    clock = MovingClock()
    budgets = Budgets(db, config, clock=clock)
    ledger = Ledger(db, budgets, clock=clock)
    pools = Pools(db, budgets, clock=clock)
    await _rules(db, budgets, pools, clock, rng)
    step = timedelta(days=30) / requests
    for number in range(requests):
        clock.now = START + step * number + timedelta(seconds=rng.randrange(60))
        await _request(db, ledger, clock, rng, number)


async def _rules(db: Database, budgets: Budgets, pools: Pools, clock: MovingClock, rng: random.Random) -> None:
    first, second, third = GUILDS
    await budgets.set_period(first, "month", actor_id=ADMIN)
    await budgets.set_period(second, "week", actor_id=ADMIN)
    await budgets.set_period(third, "day", actor_id=ADMIN)
    for guild in GUILDS:
        await budgets.set_default(guild, 1_000_000, actor_id=ADMIN)
        await budgets.set_role(guild, guild + 7, 5_000_000, actor_id=ADMIN)
        await pools.set(guild, channels(guild)[0], 3_000_000, actor_id=ADMIN)
        await pools.set(guild, channels(guild)[1], 1_500_000, actor_id=ADMIN)
    await budgets.set_cap(first, 40_000_000, actor_id=ADMIN)
    await budgets.set_member(first, members(first)[0], MemberOverride("unlimited"), actor_id=ADMIN)
    await budgets.set_member(first, members(first)[1], MemberOverride("blocked"), actor_id=ADMIN)
    await budgets.set_member(second, members(second)[2], MemberOverride("amount", 9_000_000), actor_id=ADMIN)
    at = clock()

    def settings(conn: sqlite3.Connection) -> None:
        for guild in GUILDS:
            policy = PolicyQueries(conn)
            policy.set_rule(guild, "channel", channels(guild)[3], False, at, ADMIN)
            policy.set_rule(guild, "role", guild + 7, True, at, ADMIN)
            policy.add_block(guild, "Forbidden Word", "forbidden word", at, ADMIN)
            moderation = ModerationQueries(conn)
            moderation.set_modlog(guild, guild + 50, at)
            moderation.set_moderator_role(guild, guild + 8, at)
            moderation.set_approval(guild, channels(guild)[2], "over", 100_000, at)
            moderation.set_safety(guild, channels(guild)[1], True, at)
            ServerOptionsQueries(conn).save_defaults(
                guild, OptionDefaults(model=ModelName.GPT_IMAGE_1_MINI, count=2), at, ADMIN
            )
        MetaQueries(conn).set("command_sync_hash", "abc123")

    await db.run(settings)


async def _request(db: Database, ledger: Ledger, clock: MovingClock, rng: random.Random, number: int) -> None:
    guild = rng.choice(GUILDS)
    member = rng.choice(members(guild))
    channel = rng.choice(channels(guild)[:3])
    roles = [guild + 7] if rng.random() < 0.2 else []
    estimate = rng.choice([11_000, 15_000, 52_000, 167_000, 220_165])
    held = channel == channels(guild)[2] and estimate > 100_000
    if number % 40 == 0:  # an admin's grant now and then, sometimes a deduction
        await ledger.grant(guild, member, rng.choice([250_000, 1_000_000, -50_000]), f"grant {number}", ADMIN)
    job = NewJob(
        member_id=member,
        guild_id=guild,
        channel_id=channel,
        model=rng.choice(list(ModelName)),
        size=rng.choice(list(Size)),
        quality=rng.choice(list(Quality)),
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt=f"request {number}: a fox, 100% 'quoted' \"text\"",
        estimate=estimate,
        state=JobState.AWAITING_APPROVAL if held else JobState.QUEUED,
        extras={"fingerprint": f"fp-{number}", "place": channel},
        id=f"job{number:05d}",
    )
    try:
        await ledger.reserve(job.id, guild, member, roles, estimate, job=job, places=[channel, guild + 99])
    except BudgetExceededError as refused:
        if refused.scope == "member" and rng.random() < 0.5:
            await ledger.grant(guild, member, 500_000, f"top-up after request {number}", ADMIN)
        return
    now = clock()
    if held:
        await db.run(lambda conn: ModerationQueries(conn).add_hold(job.id, guild, "approval", now))
        if rng.random() < 0.5:
            await _move(db, job.id, JobState.REJECTED, now)
            await ledger.release(job.id)
        return
    roll = rng.random()
    if roll < 0.05:
        return  # still queued
    await _move(db, job.id, JobState.SUBMITTED, now)
    if rng.random() < 0.1:
        await ledger.refit(job.id, roles, [channel, guild + 99], estimate + 4_000, "runbase")
        await db.run(lambda conn: _runs(conn, job.id, now))
    if roll < 0.1:
        return  # still running
    if roll < 0.8:
        cost = estimate - rng.randrange(0, 3_000) if rng.random() < 0.9 else estimate + 9_000
        results = [JobResult(0, f"uuid-{number}", f"https://im.example/{number}.png", cost, seed=number)]
        await db.run(lambda conn: JobQueries(conn).save_results(job.id, results, cost, now))
        await ledger.settle_delivered(job.id, cost, 700_000 + number)
    elif roll < 0.9:
        await _move(db, job.id, JobState.FAILED, now, error="task failed")
        await ledger.release(job.id)
    else:
        await _move(db, job.id, JobState.CANCELLED, now)
        await ledger.release(job.id)


async def _move(db: Database, job_id: str, state: JobState, at: datetime, error: str | None = None) -> None:
    await db.run(lambda conn: JobQueries(conn).update_state(job_id, state, at, error=error))


def _runs(conn: sqlite3.Connection, job_id: str, at: datetime) -> None:
    runs = RunQueries(conn)
    runs.begin(job_id, 0, at)
    runs.created(job_id, 0, f"run-{job_id}", 40_000, at)
    runs.end(job_id, 0, RunState.SUCCEEDED, at, cost=40_000, url="https://runs.example/x.png")
