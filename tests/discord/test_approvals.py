"""Approval channels end to end: held -> approved / rejected / expired, moderators only, never an overspend.

The real bot against the fake Discord and the fake Runware: an admin sets a mod-log and an approval channel with
`/settings`, members ask with `/imagine`, moderators click the mod-log's buttons.
"""

from __future__ import annotations

import asyncio

import pytest

from bot.billing.pricing import Pricing
from bot.catalog import ModelName, Quality, Size
from bot.jobs.approvals import AlreadyDecidedError
from fakes.discord import FakeChannel, FakeInteraction, FakeMessage
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import idle, inference_tasks, result_of, settled_total, status


async def moderated(atelier: Atelier, *, mode: str = "all", modlog: bool = True) -> FakeChannel:
    """Give the server a mod-log channel (announced to the bot) and make the world's channel an approval channel."""
    fake, world = atelier.fake, atelier.world
    channel = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    if modlog:
        answer = await atelier.answer("settings modlog", user_id=world.admin_id, channel=channel.id)
        assert "Mod-log channel is now" in answer.content and "⚠️" not in answer.content
    answer = await atelier.answer("settings approval", user_id=world.admin_id, channel=world.channel_id, mode=mode)
    assert f"Approval in <#{world.channel_id}>: **{mode}**" in answer.content
    return channel


async def ask(atelier: Atelier, prompt: str, user_id: int | None = None) -> FakeInteraction:
    """`/imagine prompt` as the member, waiting for its first answer."""
    return await atelier.slash("imagine", user_id=user_id or atelier.world.member_id, prompt=prompt)


async def held_entry(atelier: Atelier, modlog: FakeChannel, count: int = 1) -> FakeMessage:
    """The newest held-request entry in the mod-log (waiting until `count` exist)."""

    def entries() -> list[FakeMessage]:
        return [
            m for m in atelier.fake.channel_messages(modlog.id) if any("approve" in c for c in m.button_custom_ids())
        ]

    await atelier.fake.wait_until(lambda: len(entries()) >= count, timeout=10.0, what="a held request in the mod-log")
    return entries()[-1]


def button(message: FakeMessage, action: str) -> str:
    """The custom id of a mod-log button (`approve`, `reject`, `publish`, `discard`, `delete`)."""
    return next(c for c in message.button_custom_ids() if c.startswith(f"atelier:mod:{action}:"))


def job_id_in(message: FakeMessage) -> str:
    """The job id of a mod-log card (footer `Job <id>`)."""
    return str(message.embeds[0]["footer"]["text"].split()[1])


async def test_held_then_approved_is_delivered_and_charged_once(atelier: Atelier) -> None:
    """A request in an approval channel waits (estimate reserved, nothing sent); Approve queues it and it is posted."""
    world = atelier.world
    modlog = await moderated(atelier)
    interaction = await ask(atelier, "a lighthouse in fog")
    waiting = await interaction.wait_message(lambda m: "Waiting for a moderator" in m.content)
    entry = await held_entry(atelier, modlog)
    job_id = job_id_in(entry)
    job = await atelier.bot.services.jobs.get(job_id)
    assert job is not None and job.state.value == "awaiting_approval"
    budget = await status(atelier, world.member_id)
    assert budget.reserved == job.estimate and budget.spent == 0
    assert inference_tasks(atelier) == []
    assert f"<@{world.member_id}>" in str(entry.embeds[0]) and "a lighthouse in fog" in str(entry.embeds[0])

    click = await atelier.fake.click_button(entry, button(entry, "approve"), user_id=world.admin_id)
    await click.wait_message(lambda m: "Approved" in m.content)
    result = await result_of(interaction)
    assert result.id == waiting.id  # the requester's own message moved on to the result
    await idle(atelier)
    assert (await settled_total(atelier))[0] == 1
    budget = await status(atelier, world.member_id)
    assert budget.reserved == 0 and budget.spent > 0
    await atelier.fake.wait_until(lambda: "Approved by" in entry.content, timeout=5.0, what="the decision shown")
    assert entry.button_custom_ids() == []
    generated = [m for m in atelier.fake.channel_messages(modlog.id) if m.embeds and "Generated" in str(m.embeds[0])]
    assert len(generated) == 1 and job_id in str(generated[0].embeds[0])
    # A second decision (another moderator, late, from a stale client) changes nothing.
    with pytest.raises(AlreadyDecidedError):
        await atelier.bot.services.generation.approvals.reject(job_id, world.owner_id, "too late")
    await idle(atelier)
    assert (await settled_total(atelier))[0] == 1
    assert (await status(atelier, world.member_id)).reserved == 0


async def test_held_then_rejected_releases_and_tells_the_requester(atelier: Atelier) -> None:
    """Reject (with a reason from the modal): nothing charged, the hold released, the requester told why."""
    world = atelier.world
    modlog = await moderated(atelier)
    interaction = await ask(atelier, "a dragon over the city")
    entry = await held_entry(atelier, modlog)
    opened = await atelier.fake.click_button(entry, button(entry, "reject"), user_id=world.admin_id)
    await opened.wait_response()
    assert opened.modal is not None
    field = next(
        c["custom_id"]
        for row in opened.modal["components"]
        for c in [row.get("component") or {}, *(row.get("components") or [])]
        if c.get("type") == 4
    )
    submitted = await atelier.fake.submit_modal(opened, {field: "off-topic for this class"})
    await submitted.wait_message(lambda m: "Rejected" in m.content)
    told = await interaction.wait_message(lambda m: "rejected" in m.content)
    assert "off-topic for this class" in told.content and "Nothing was charged" in told.content
    budget = await status(atelier, world.member_id)
    assert (budget.reserved, budget.spent) == (0, 0)
    assert await settled_total(atelier) == (0, 0)
    assert inference_tasks(atelier) == []


async def test_an_ordinary_members_click_changes_nothing(atelier: Atelier) -> None:
    """A member without Manage Messages, Manage Server or the moderator role is refused privately; still held."""
    world = atelier.world
    modlog = await moderated(atelier)
    await ask(atelier, "a quiet harbour")
    entry = await held_entry(atelier, modlog)
    click = await atelier.fake.click_button(entry, button(entry, "approve"), user_id=world.other_member_id)
    refusal = await click.wait_message()
    assert refusal.ephemeral and "Only moderators" in refusal.content
    job = await atelier.bot.services.jobs.get(job_id_in(entry))
    assert job is not None and job.state.value == "awaiting_approval"
    assert inference_tasks(atelier) == []
    # With the moderator role, the same member may decide.
    role = atelier.fake.add_role(world.guild_id, name="Mods")
    atelier.fake.member(world.guild_id, world.other_member_id).roles.append(role.id)
    await atelier.fake.announce_guild(world.guild_id)
    await atelier.answer("settings moderators", user_id=world.admin_id, role=role.id)
    click = await atelier.fake.click_button(entry, button(entry, "approve"), user_id=world.other_member_id)
    await click.wait_message(lambda m: "Approved" in m.content)
    await idle(atelier)
    assert len(inference_tasks(atelier)) == 1


async def test_without_a_mod_log_a_request_is_refused_with_nothing_reserved(atelier: Atelier) -> None:
    """No mod-log channel: the request is refused with that reason rather than held where nobody sees it."""
    world = atelier.world
    await moderated(atelier, modlog=False)
    interaction = await ask(atelier, "a red kite")
    refusal = await interaction.wait_message(lambda m: m.ephemeral)
    assert "mod-log" in refusal.content
    budget = await status(atelier, world.member_id)
    assert (budget.reserved, budget.spent) == (0, 0)


async def test_an_undecided_request_expires_also_across_a_restart(atelier: Atelier) -> None:
    """Nobody decides before the deadline while the bot is down: the next start expires it and releases the hold."""
    world = atelier.world
    await atelier.restart(moderation__approval_timeout_hours="0.0005")  # 1.8 s
    modlog = await moderated(atelier)
    await ask(atelier, "a moth at the window")
    entry = await held_entry(atelier, modlog)
    job_id = job_id_in(entry)
    await atelier.stop()
    await asyncio.sleep(2.2)
    await atelier.start()
    await atelier.fake.wait_until(lambda: "Expired" in entry.content, timeout=10.0, what="the expiry shown")
    job = await atelier.bot.services.jobs.get(job_id)
    assert job is not None and job.state.value == "cancelled"
    budget = await status(atelier, world.member_id)
    assert (budget.reserved, budget.spent) == (0, 0)
    assert inference_tasks(atelier) == []
    assert entry.button_custom_ids() == []


async def test_ten_concurrent_requests_against_room_for_four_hold_at_most_four(atelier: Atelier) -> None:
    """Ten requests at once in an approval channel, budget for four: four held, six refused, never an overspend."""
    world = atelier.world
    app = atelier.settings().app
    estimate = Pricing(app).estimate(
        ModelName(app.defaults.model), Quality(app.defaults.quality), Size(app.defaults.size), 1, 12, 0
    )
    await atelier.restart(budget__default_allowance=f'"{(4 * estimate + estimate // 2) / 1_000_000:.6f}"')
    modlog = await moderated(atelier)
    interactions = await asyncio.gather(*(ask(atelier, f"a study #{n:02d}") for n in range(10)))
    answers = await asyncio.gather(
        *(i.wait_message(lambda m: m.ephemeral or "Waiting for a moderator" in m.content) for i in interactions)
    )
    held = [m for m in answers if not m.ephemeral]
    assert len(held) == 4
    budget = await status(atelier, world.member_id)
    assert budget.reserved == 4 * estimate and budget.reserved <= (budget.allowance or 0)
    await held_entry(atelier, modlog, count=4)
    entries = [
        m for m in atelier.fake.channel_messages(modlog.id) if any("approve" in c for c in m.button_custom_ids())
    ]
    assert len(entries) == 4


async def test_two_moderators_clicking_at_once_make_one_decision(atelier: Atelier) -> None:
    """Approve and Reject clicked together by two moderators: exactly one wins, the other is told nothing changed."""
    world = atelier.world
    modlog = await moderated(atelier)
    await ask(atelier, "a heron in reeds")
    entry = await held_entry(atelier, modlog)
    job_id = job_id_in(entry)
    approvals = atelier.bot.services.generation.approvals
    outcomes = await asyncio.gather(
        approvals.approve(job_id, world.admin_id),
        approvals.reject(job_id, world.owner_id, None),
        approvals.approve(job_id, world.owner_id),
        return_exceptions=True,
    )
    assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1
    assert all(isinstance(o, AlreadyDecidedError) for o in outcomes if isinstance(o, BaseException))
    await idle(atelier)
    hold = await approvals.hold(job_id)
    assert hold is not None and hold.decision in ("approved", "rejected")


async def test_settings_show_lists_the_mod_log_moderators_and_moderated_channels(atelier: Atelier) -> None:
    """`/settings show` has the mod-log, the moderator role and every approval and safety channel on the same page."""
    world = atelier.world
    modlog = await moderated(atelier, mode="all")
    await atelier.answer("settings moderators", user_id=world.admin_id, role=world.artist_role_id)
    safe = atelier.fake.add_channel(world.guild_id, name="renders")
    await atelier.fake.announce_guild(world.guild_id)
    await atelier.answer("settings safety", user_id=world.admin_id, channel=safe.id, mode="on")

    fields = embed_fields(await atelier.answer("settings show", user_id=world.admin_id))

    assert fields["Mod-log"].startswith(f"**<#{modlog.id}>**")
    assert f"<@&{world.artist_role_id}>" in fields["Mod-log"]
    assert fields["Approval channels"] == f"<#{world.channel_id}>: all"
    assert fields["Safety channels"] == f"<#{safe.id}>: on"
