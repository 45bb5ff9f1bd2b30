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

from bot.billing.pricing import Pricing
from bot.money import format_usd
from bot.settings import load_app_config
from fakes.discord import FakeDiscord, FakeInteraction, FakeMessage, World
from fakes.runware import FakeRunware
from tests.discord.conftest import assert_discord_rules_kept
from tests.discord.processes import BotProcess, Fleet, fleet
from tests.discord.test_shards import sharded_worlds

__all__ = ["fleet"]

pytestmark = pytest.mark.slow

SHORT_LEASE = {"limits.job_lease_seconds": "2"}
"""A killed process's jobs are claimed by another within about two seconds (renewed every 0.67 s while it lives)."""

REFUSAL = "This needs about "
"""How a budget refusal starts (`bot.discord.tree.budget_refusal`)."""


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
    """Four /imagine from shard 0's guild run on Runware (2 s each); the process holding most of them is SIGKILLed:
    once their 2-second leases run out the other processes resume them by their stored task ids, so every request is
    posted once (one image message each, four in the channel), every task submitted once and paid once (the fake's
    counters), and the ledger balanced (each hold settled once, the settles summing to the fake's costs)."""
    fake, runware = fake_discord, fake_runware
    worlds = sharded_worlds(fake, 3)
    world = worlds[0]
    fleet.configure(SHORT_LEASE)
    bots = await start_three(fleet, fake)
    runware.latency = 2.0

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
    await asyncio.sleep(0.5)  # a second delivery, if any, would have come with the first
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


async def burst(fake: FakeDiscord, world: World, members: list[int], count: int, tag: str) -> list[FakeMessage]:
    """`count` /imagine at once in the world's channel, from `members` in turn, dealt to shards 0, 1, 2 in turn (the
    fake's `via_shard` override); return each request's outcome: its result, or its refusal (the 80% heads-up an
    admitted request may get first is neither)."""
    interactions: list[FakeInteraction] = await asyncio.gather(
        *(
            fake.invoke_slash(
                "imagine",
                user_id=members[n % len(members)],
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                options={"prompt": f"a paper boat, {tag} {n}"},
                via_shard=n % 3,
            )
            for n in range(count)
        )
    )
    return list(
        await asyncio.gather(
            *(
                interaction.wait_message(lambda m: bool(m.attachments) or m.content.startswith(REFUSAL), timeout=30.0)
                for interaction in interactions
            )
        )
    )


async def test_thirty_requests_spread_over_three_processes_never_pass_an_allowance_a_team_budget_or_a_cap(
    fleet: Fleet, fake_discord: FakeDiscord, fake_runware: FakeRunware
) -> None:
    """Room for exactly 4 requests, 30 at once dealt over the three processes: exactly 4 are paid and posted, 26
    refused with an ephemeral sentence naming the budget that is full -- for a member's allowance, for a team budget
    (three members in its channel) and for a server cap (three members), each in its own server.

    Strict sharding gives each guild's interactions to one process, which would make this a one-process race. So the
    requests go through the fake's `via_shard` override, one in three to each process, as during a reshard or a
    rolling restart when a guild's interactions reach processes that do not hold its shard; the reservation is the
    only thing that keeps them apart (one budget lock per server in PostgreSQL). No member budget spans servers, so
    no other way spreads one member's requests over the processes."""
    fake, runware = fake_discord, fake_runware
    worlds = sharded_worlds(fake, 3)
    price = Pricing(load_app_config(fleet.config)).estimate("gpt-image-1-mini", "medium", "1024x1024", 1, 20, 0)
    room = format_usd(4 * price).removeprefix("$")
    bots = await start_three(fleet, fake)

    member_world, pool_world, cap_world = worlds
    setups = [
        ("budget member", member_world, {"member": member_world.member_ids[0], "value": room}),
        ("budget channel", pool_world, {"channel": pool_world.channel_id, "amount": room}),
        ("budget cap", cap_world, {"amount": room}),
    ]
    for command, world, options in setups:
        answer = await fake.invoke_slash(
            command, user_id=world.admin_id, guild_id=world.guild_id, channel_id=world.channel_id, options=options
        )
        await answer.wait_message(lambda m: "now" in m.content, timeout=20.0)

    cases = [
        (member_world, [member_world.member_ids[0]], "you have"),
        (pool_world, [*pool_world.member_ids, pool_world.admin_id], "the team budget of"),
        (cap_world, [*cap_world.member_ids, cap_world.admin_id], "the server has only"),
    ]
    for world, members, sentence in cases:
        outcomes = await burst(fake, world, members, 30, sentence)
        posted = [m for m in outcomes if m.attachments]
        refusals = [m for m in outcomes if not m.attachments]
        assert len(posted) == 4, sorted({(m.ephemeral, m.content[:80]) for m in outcomes})
        assert len(refusals) == 26 and all(m.ephemeral and sentence in m.content for m in refusals), refusals[0]
    # Each process decided a third of every burst (admitted or refused it itself).
    assert [bot.count(" admitted for member ") + bot.count("imagine refused (") for bot in bots] == [30, 30, 30]
    await fake.wait_until(lambda: len(runware.paid_tasks) == 12, timeout=20.0, what="12 paid tasks")
    for _ in range(100):  # the settle is written just after the post
        if len([row for row in ledger_rows(fleet) if row[1] == "settle"]) == 12:
            break
        await asyncio.sleep(0.05)
    assert_ledger_balanced(fleet, runware, jobs=12)
    assert_discord_rules_kept(fake)


async def test_one_members_batch_of_twenty_does_not_hold_back_another_members_request_through_another_process(
    fleet: Fleet, fake_discord: FakeDiscord, fake_runware: FakeRunware
) -> None:
    """With a global limit of 2 (each task 3 s on Runware), a member sends 20 requests through shard 0's process;
    while the first two run, another member's single request arrives through shard 1's process. It starts on Runware
    as soon as the first slots free (third or fourth of all tasks, less than one more slot's wait after the first
    task's end), not after the batch: the turns are kept in the database, across processes."""
    fake, runware = fake_discord, fake_runware
    worlds = sharded_worlds(fake, 3)
    fleet.configure({"limits.global_concurrency": "2", "limits.per_member_concurrency": "2"})
    bots = await start_three(fleet, fake)
    runware.latency = 3.0  # room for the single request to be admitted under a loaded machine

    batch_world, single_world = worlds[0], worlds[1]
    await asyncio.gather(
        *(
            fake.invoke_slash(
                "imagine",
                user_id=batch_world.member_id,
                guild_id=batch_world.guild_id,
                channel_id=batch_world.channel_id,
                options={"prompt": f"a row of lanterns, number {n}"},
            )
            for n in range(20)
        )
    )
    await fake.wait_until(lambda: len(runware.tasks_submitted()) >= 2, timeout=20.0, what="the batch's first two")
    await fake.wait_until(lambda: bots[0].count(" admitted for member ") == 20, timeout=20.0, what="the batch queued")
    single = await fake.invoke_slash(
        "imagine",
        user_id=single_world.member_id,
        guild_id=single_world.guild_id,
        channel_id=single_world.channel_id,
        options={"prompt": "one small lantern"},
    )
    await bots[1].wait_line(" admitted for member ", timeout=10.0)
    await single.wait_message(lambda m: bool(m.attachments), timeout=20.0)

    submitted = runware.tasks_submitted()
    prompts = [task["positivePrompt"] for task in submitted]
    # The batch's first two end together and free both slots at once: the single takes one of them (third or fourth
    # task, whichever process's submission reaches Runware first), never a later wave.
    lone_index = prompts.index("one small lantern")
    assert lone_index in (2, 3), prompts[:5]
    first, lone = runware.task(submitted[0]["taskUUID"]), runware.task(submitted[lone_index]["taskUUID"])
    assert first is not None and lone is not None
    waited_past_the_slot = lone.submitted_at - first.deadline
    assert waited_past_the_slot < runware.latency, f"started {waited_past_the_slot:.2f} s after the first slot freed"
    # The batch's first two held the slots; how many more of it started before the single's result was posted
    # depends on the machine's load, so it is not counted.
    assert all(prompt.startswith("a row of lanterns") for prompt in prompts[:2])


async def answer(fake: FakeDiscord, world: World, command: str, **options: object) -> FakeMessage:
    """Run an admin's `/command` in the world's channel; return its first answer."""
    interaction = await fake.invoke_slash(
        command, user_id=world.admin_id, guild_id=world.guild_id, channel_id=world.channel_id, options=options
    )
    return await interaction.wait_message(timeout=20.0)


async def flagged(fake: FakeDiscord, world: World, prompt: str, *, via_shard: int) -> None:
    """Run a flagged /imagine through shard `via_shard`'s process; return once the requester is told it is held."""
    interaction = await fake.invoke_slash(
        "imagine",
        user_id=world.member_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        options={"prompt": prompt},
        via_shard=via_shard,
    )
    await interaction.wait_message(lambda m: "held for a moderator's review" in m.content, timeout=30.0)


async def test_flagged_results_reach_the_mod_log_from_any_process_and_a_left_over_one_is_posted_once_at_start(
    fleet: Fleet, fake_discord: FakeDiscord, fake_runware: FakeRunware
) -> None:
    """Safety channels across processes. With shard 0's process gone, a flagged result is run by a process that does
    not serve the server: it posts it to the mod-log over REST all the same. A second one whose mod-log post failed
    waits for the next start, when every process looks for such results. Five processes start at once: three on
    shard 0 (as in a rolling restart, when new processes overlap the old ones on the same range) and the processes of
    shards 1 and 2, which do not serve the server and leave it alone. One of the three claims the post in the database
    and posts it with its buttons: two entries in the mod-log, nothing in the channel, each charged once."""
    fake, runware = fake_discord, fake_runware
    world = sharded_worlds(fake, 3)[0]
    bots = await start_three(fleet, fake)
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await answer(fake, world, "settings modlog", channel=modlog.id)
    assert "Safety check" in (await answer(fake, world, "settings safety", channel=world.channel_id, mode="on")).content
    runware.flagged_words = {"forbidden fruit"}
    await fleet.kill(bots[0])

    def entries() -> list[FakeMessage]:
        return [m for m in fake.channel_messages(modlog.id) if m.attachments]

    await flagged(fake, world, "the forbidden fruit, still life", via_shard=1)
    await fake.wait_until(lambda: len(entries()) == 1, timeout=10.0, what="the entry posted by another shard's process")
    fake.plan_error("POST", rf"^/channels/{modlog.id}/messages$", 503)
    await flagged(fake, world, "the forbidden fruit, after dark", via_shard=2)
    await fake.wait_until(lambda: len([r for r in ledger_rows(fleet) if r[1] == "settle"]) == 2, what="the charges")
    for bot in bots[1:]:
        await fleet.kill(bot)
    assert len(entries()) == 1

    restarted = [await fleet.start(shards) for shards in ("0-0/3", "0-0/3", "0-0/3", "1-1/3", "2-2/3")]
    for bot in restarted:
        await bot.wait_line("Job service started", timeout=60.0)
    await fake.wait_until(lambda: len(entries()) == 2, timeout=10.0, what="the left-over entry")
    await asyncio.sleep(1.0)  # a second post, if any, would come by now
    assert len(entries()) == 2, "\n".join(bot.log for bot in restarted)
    assert all(any("publish" in custom_id for custom_id in entry.button_custom_ids()) for entry in entries())
    assert [bot.count("posted to the mod-log (its first post had failed)") for bot in restarted[:3]].count(1) == 1
    assert all(bot.count("flagged result") == 0 for bot in restarted[3:]), "other shards must not try"
    assert not any(m.attachments for m in fake.channel_messages(world.channel_id))
    assert_ledger_balanced(fleet, runware, jobs=2)
