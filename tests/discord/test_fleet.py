"""Issue 12's must-show properties across real bot processes: three `python -m bot` processes on shards 0/3, 1/3 and
2/3 of the fake Discord, the fake Runware, one throwaway PostgreSQL database.

These tests are the suite's most expensive (each starts a fleet): each keeps its counts as small as the property still
shows, and the job lease short (`[limits] job_lease_seconds`), so a killed process's jobs move on in seconds.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import psycopg
import pytest

from fakes.discord import FakeDiscord, FakeInteraction
from fakes.runware import FakeRunware
from tests.discord.conftest import assert_discord_rules_kept
from tests.discord.processes import BotProcess, Fleet, fleet
from tests.discord.test_shards import sharded_worlds

__all__ = ["fleet"]

pytestmark = pytest.mark.slow

SHORT_LEASE = {"limits.job_lease_seconds": "2"}
"""A killed process's jobs are claimed by another within about two seconds (renewed every 0.67 s while it lives)."""


async def start_three(fleet: Fleet, fake: FakeDiscord) -> list[BotProcess]:
    """Start the processes on shards 0/3, 1/3 and 2/3 at once; return them once each runs its job service."""
    bots = [await fleet.start(f"{shard}-{shard}/3") for shard in range(3)]
    for shard, bot in enumerate(bots):
        await fake.wait_ready(timeout=60.0, shard=shard)
        await bot.wait_line("Job service started", timeout=60.0)
    return bots


def has_images(interaction: FakeInteraction) -> int:
    """How many of the interaction's messages carry images."""
    return sum(1 for message in interaction.messages() if message.attachments)


def ledger_rows(fleet: Fleet) -> list[tuple[str, str, int]]:
    """Every ledger entry of a job: (job id, kind, amount), in order."""
    with psycopg.connect(fleet.database_url) as conn:
        rows = conn.execute("SELECT job_id, kind, amount FROM ledger WHERE job_id IS NOT NULL ORDER BY id").fetchall()
    return [(str(job), str(kind), int(amount)) for job, kind, amount in rows]


def assert_ledger_balanced(fleet: Fleet, runware: FakeRunware, jobs: int) -> None:
    """Every job's hold ended by exactly one settle (none open, none released), and the settles sum to what the fake
    Runware billed."""
    rows = ledger_rows(fleet)
    kinds = Counter((job, kind) for job, kind, _ in rows)
    held = {job for job, kind, _ in rows if kind == "hold"}
    assert len(held) == jobs, rows
    assert all(kinds[job, "settle"] == 1 and kinds[job, "release"] == 0 for job in held), rows
    assert sum(amount for _, kind, amount in rows if kind == "settle") == runware.total_cost_micros > 0


async def test_a_process_killed_while_its_jobs_run_has_them_finished_by_another_paid_and_posted_once(
    fleet: Fleet, fake_discord: FakeDiscord, fake_runware: FakeRunware
) -> None:
    """Four /imagine from shard 0's guild run on Runware (3 s each); the process holding most of them is SIGKILLed:
    once their 2-second leases run out the other processes resume them by their stored task ids, so every request is
    posted once (one image message each, four in the channel), every task submitted once and paid once (the fake's
    counters), and the ledger balanced (each hold settled once, the settles summing to the fake's costs)."""
    fake, runware = fake_discord, fake_runware
    worlds = sharded_worlds(fake, 3)
    world = worlds[0]
    fleet.configure(SHORT_LEASE)
    bots = await start_three(fleet, fake)
    runware.latency = 3.0

    members = [world.member_ids[0], world.member_ids[0], world.member_ids[1], world.admin_id]
    interactions = [
        await fake.invoke_slash(
            "imagine",
            user_id=member,
            guild_id=world.guild_id,
            channel_id=world.channel_id,
            options={"prompt": f"a kite over the harbour, take {number}"},
        )
        for number, member in enumerate(members)
    ]
    await fake.wait_until(lambda: len(runware.tasks_submitted()) == 4, timeout=20.0, what="four tasks on Runware")
    with psycopg.connect(fleet.database_url) as conn:
        owners = Counter(
            str(owner).split("-")[0]
            for (owner,) in conn.execute("SELECT lease_owner FROM jobs WHERE lease_owner IS NOT NULL").fetchall()
        )
    pids = {str(bot.process.pid): bot for bot in bots}
    assert owners and set(owners) <= set(pids), (owners, pids)
    pid, running = owners.most_common(1)[0]
    victim = pids[pid]
    assert runware.paid_tasks == [], "the kill must come while the tasks still run"
    assert await fleet.kill(victim) == -9

    await fake.wait_until(
        lambda: all(has_images(interaction) for interaction in interactions), timeout=30.0, what="four results posted"
    )
    survivors = [bot for bot in bots if bot is not victim]
    await fake.wait_until(
        lambda: sum(bot.count(" delivered ") for bot in survivors) >= running,
        timeout=10.0,
        what="the killed process's jobs delivered by the others",
    )
    assert victim.count(" delivered ") == 0
    await asyncio.sleep(1.0)  # a second delivery, if any, would come within a lease
    assert [has_images(interaction) for interaction in interactions] == [1, 1, 1, 1]
    assert len([m for m in fake.channel_messages(world.channel_id) if m.attachments]) == 4
    uuids = [task["taskUUID"] for task in runware.tasks_submitted()]
    assert len(set(uuids)) == 4 and all(runware.submissions_of(uuid) == 1 for uuid in uuids)
    assert sorted(runware.paid_tasks) == sorted(uuids)
    for _ in range(100):  # the settle is written just after the post
        if len([row for row in ledger_rows(fleet) if row[1] == "settle"]) == 4:
            break
        await asyncio.sleep(0.05)
    assert_ledger_balanced(fleet, runware, jobs=4)
    assert_discord_rules_kept(fake)
