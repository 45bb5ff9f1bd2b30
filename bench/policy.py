"""Policy cost in admission: `GenerationService.admit` p50/p99 in a server without rules and in one with many.

Run from the repository root, after `pip install -e '.[test]'` there: `python bench/policy.py` (options: --requests,
--channels, --roles, --entries, --prompt-chars). One database in a temporary directory, two servers: one with no
policy, one with `--channels` channel rules (the request's channel allowed through its category, so every place is
looked up), `--roles` role rules, a blocklist of `--entries` entries, and moderation rules: a mod-log, an approval
rule on the category that holds only requests over $100 (so none is held, but every request looks it up) and a
safety rule on the channel (so every request also asks the mod-log whether it could take a flagged result). The
service is built with those `ModerationRules` (`rules=`) and a mod-log that answers as the Discord one does, from the
server's cached mod-log setting (Discord's permission check, from the gateway's cache, is left out). Requests
alternate between the two servers so both see the same queue and database; each is a full admission (policy, place
rules, validation, de-duplication, estimate, reserve and job row in one transaction, queue) of a distinct prompt
that passes. The worker is not started: jobs stay queued, nothing reaches Runware. The checks alone (the policy and
the place rules, from their caches) are timed too, on the same prompts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import string
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import aiohttp
from _checkout import ROOT, require_this_checkout

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.images import FittedImage
from bot.jobs.delivery import ResultSummary
from bot.jobs.options import ServerOptions
from bot.jobs.requests import DeliveryTarget, GenerationRequest
from bot.jobs.scheduler import Scheduler
from bot.jobs.service import GenerationService
from bot.moderation.approvals import ApprovalMode, ModerationRules
from bot.moderation.errors import PromptBlockedError
from bot.moderation.policy import Policy
from bot.runware.client import RunwareClient
from bot.settings import load_app_config
from bot.storage.database import Database
from bot.storage.moderation import HoldRow
from bot.storage.rows import Job, JobState

PLAIN_GUILD = 1_100_000_000_000_000_001
RULED_GUILD = 1_100_000_000_000_000_002
CATEGORY = 3_300_000_000_000_000_000
CHANNEL = 3_300_000_000_000_000_001
ROLE = 2_200_000_000_000_000_001
ADMIN = 4_400_000_000_000_000_001
MODLOG = 3_300_000_000_000_000_009
NEVER_HELD_ABOVE = 100_000_000
"""$100 in micro-dollars: the approval rule's threshold, above any request here."""
WORDS = "a painting of the quiet harbour at dusk with small boats and warm lights in the windows".split()  # noqa: SIM905


class NoDelivery:
    """The Discord edge, unused: the worker never runs here."""

    async def deliver(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> int | None:
        """Never called."""
        return None

    async def progress(
        self, job: Job, position: int | None, elapsed_seconds: float, state: JobState, *, posting: bool = False
    ) -> None:
        """Never called."""

    async def fail(self, job: Job, message: str) -> None:
        """Never called."""


class BenchModLog:
    """A mod-log that answers `problem` as `bot.discord.modlog.DiscordModLog` does: from the server's cached setting."""

    def __init__(self, rules: ModerationRules) -> None:
        self._rules = rules

    async def problem(self, guild_id: int) -> str | None:
        """None when the server has a mod-log channel (the bench's ruled server has one)."""
        if (await self._rules.settings(guild_id)).modlog_channel_id is None:
            return "no mod-log"
        return None

    async def held(self, job: Job, expires_at: datetime) -> tuple[int, int]:
        """Never called: no request is held."""
        raise AssertionError("no request is held in the bench")

    async def quarantined(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> tuple[int, int]:
        """Never called: the worker does not run."""
        raise AssertionError("nothing is generated in the bench")

    async def generated(self, job: Job, summary: ResultSummary, message_id: int | None) -> None:
        """Never called: the worker does not run."""

    async def refused(self, error: PromptBlockedError) -> None:
        """Never called: every prompt passes."""

    async def decided(self, job: Job, hold: HoldRow) -> None:
        """Never called: no request is held."""

    async def unsure(self, job: Job, charge: int, reason: str) -> None:
        """Never called: the worker does not run."""


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def prompt(number: int, chars: int) -> str:
    words = [WORDS[(number + i) % len(WORDS)] for i in range(chars // 5)]
    return f"{' '.join(words)[: chars - 8]} #{number}"


def request(guild: int, member: int, text: str) -> GenerationRequest:
    return GenerationRequest(
        guild_id=guild,
        channel_id=CHANNEL,
        member_id=member,
        role_ids=(ROLE,),
        prompt=text,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.LOW,
        background=Background.AUTO,
        count=1,
        format=OutputFormat.PNG,
        delivery=DeliveryTarget(channel_id=CHANNEL, channel_parents=(CATEGORY,)),
    )


async def make_moderation(rules: ModerationRules) -> None:
    await rules.set_modlog(RULED_GUILD, ADMIN, MODLOG)
    await rules.set_approval(RULED_GUILD, ADMIN, CATEGORY, ApprovalMode.OVER, NEVER_HELD_ABOVE)
    await rules.set_safety(RULED_GUILD, ADMIN, CHANNEL, True)


async def make_rules(policy: Policy, channels: int, roles: int, entries: int) -> None:
    await policy.set_channel(RULED_GUILD, CATEGORY, True, actor_id=ADMIN)
    for n in range(channels - 1):
        await policy.set_channel(RULED_GUILD, CATEGORY + 100 + n, n % 5 != 0, actor_id=ADMIN)
    await policy.set_role(RULED_GUILD, ROLE, True, actor_id=ADMIN)
    for n in range(roles - 1):
        await policy.set_role(RULED_GUILD, ROLE + 100 + n, n % 5 != 0, actor_id=ADMIN)
    rng = random.Random(7)
    added = 0
    while added < entries:
        length = rng.randint(4, 11)
        words = [
            "".join(rng.choice(string.ascii_lowercase) for _ in range(length)) for _ in range(rng.choice((1, 1, 2)))
        ]
        entry = " ".join(words)
        if any(word in WORDS for word in words):
            continue
        await policy.add_block(RULED_GUILD, entry, actor_id=ADMIN)
        added += 1


async def run(args: argparse.Namespace, folder: Path) -> dict[str, list[float]]:
    config = load_app_config(ROOT / "config" / "atelier.toml")
    async with await Database.open(folder / "bench.sqlite3") as db, aiohttp.ClientSession() as session:
        budgets = Budgets(db, config)
        for guild in (PLAIN_GUILD, RULED_GUILD):
            await budgets.set_default(guild, 1_000_000_000, actor_id=ADMIN)
        policy = Policy(db)
        await make_rules(policy, args.channels, args.roles, args.entries)
        moderation = ModerationRules(db)
        await make_moderation(moderation)
        service = GenerationService(
            db,
            RunwareClient(session, api_key="bench", api_url="http://127.0.0.1:9/v1", config=config.runware),
            session,
            Ledger(db, budgets),
            Pricing(config),
            config,
            Scheduler(config.limits.global_concurrency, config.limits.per_member_concurrency),
            server_options=ServerOptions(db, config),
            delivery=NoDelivery(),
            policy=policy,
            rules=moderation,
            modlog=BenchModLog(moderation),
        )
        samples: dict[str, list[float]] = {"without": [], "with": [], "check": []}
        warm_up = args.requests // 10
        for number in range(warm_up + args.requests):
            for name, guild in (("without", PLAIN_GUILD), ("with", RULED_GUILD)):
                wanted = request(guild, 10_000 + number, prompt(number, args.prompt_chars))
                started = time.perf_counter()
                admission = await service.admit(wanted)
                elapsed = (time.perf_counter() - started) * 1000
                assert admission.job_id is not None and not admission.duplicate
                if number >= warm_up:
                    samples[name].append(elapsed)
            started = time.perf_counter()
            await policy.check(
                guild_id=RULED_GUILD, member_id=1, role_ids=(ROLE,), places=(CHANNEL, CATEGORY), prompt=wanted.prompt
            )
            place = await moderation.rules(RULED_GUILD, (CHANNEL, CATEGORY))
            assert place.safety and not place.holds(1_000_000)
            if number >= warm_up:
                samples["check"].append((time.perf_counter() - started) * 1000)
        return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured admissions per server (default 2000)")
    parser.add_argument("--channels", type=int, default=50, help="channel rules in the ruled server (default 50)")
    parser.add_argument("--roles", type=int, default=20, help="role rules in the ruled server (default 20)")
    parser.add_argument("--entries", type=int, default=200, help="blocklist entries (default 200)")
    parser.add_argument("--prompt-chars", type=int, default=200, help="characters per prompt (default 200)")
    args = parser.parse_args()
    require_this_checkout()
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
        f"{args.requests} admissions per server after {args.requests // 10} warm-up, "
        f"{args.channels} channel rules, {args.roles} role rules, {args.entries} blocklist entries, "
        "an approval and a safety rule, "
        f"{args.prompt_chars}-character prompts"
    )
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        samples = await run(args, Path(tmp))
    print(f"{'':<28} {'p50 ms':>8} {'p99 ms':>8}")
    for name, label in (
        ("without", "admit, no policy"),
        ("with", "admit, with the policy"),
        ("check", "checks alone"),
    ):
        values = samples[name]
        print(f"{label:<28} {statistics.median(values):>8.3f} {percentile(values, 0.99):>8.3f}")
    added = statistics.median(samples["with"]) - statistics.median(samples["without"])
    print(f"{'added at p50':<28} {added:>8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
