"""Held requests end to end, the harder cases: `/queue`, the requester cancelling, a lost mod-log post, the sweep.

The real bot against the fake Discord and the fake Runware, as in `test_approvals` (whose helpers these use).
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.jobs.approvals import ALREADY_DECIDED, AlreadyDecidedError
from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, inference_tasks, nothing_spent, result_of, settled_total, status
from tests.discord.test_approvals import ask, button, held_entry, job_id_in, moderated


async def test_queue_shows_a_held_request_as_waiting_for_approval(atelier: Atelier) -> None:
    """`/queue` lists a held request (worded "waiting for approval", with its Cancel button) beside queued ones."""
    world = atelier.world
    modlog = await moderated(atelier)
    await ask(atelier, "a lantern on a jetty")
    job_id = job_id_in(await held_entry(atelier, modlog))

    queue = await atelier.answer("queue", user_id=world.member_id)

    description = queue.embeds[0]["description"]
    assert f"`{job_id}` waiting for approval" in description and "a lantern on a jetty" in description
    assert queue.button_custom_ids() == [f"atelier:cancel:{job_id}"]


async def test_the_requester_cancelling_a_held_request_closes_its_mod_log_entry(atelier: Atelier) -> None:
    """Cancel (from `/queue`) on a held request: released, the mod-log entry says so without buttons, and a later
    Approve (a stale client) is told it was already decided and moves no money."""
    world = atelier.world
    modlog = await moderated(atelier)
    await ask(atelier, "a fox in snow")
    entry = await held_entry(atelier, modlog)
    job_id = job_id_in(entry)
    assert (await status(atelier, world.member_id)).reserved > 0

    queue = await atelier.answer("queue", user_id=world.member_id)
    await atelier.fake.click_button(queue, f"atelier:cancel:{job_id}", user_id=world.member_id)
    await atelier.fake.wait_until(lambda: "Cancelled job" in queue.content, what="the refreshed queue")

    await atelier.fake.wait_until(lambda: "Cancelled by" in entry.content, timeout=5.0, what="the mod-log entry")
    assert "the requester" in entry.content and entry.button_custom_ids() == []
    hold = await atelier.bot.services.generation.approvals.hold(job_id)
    assert hold is not None and hold.decision is not None
    with pytest.raises(AlreadyDecidedError, match="already decided"):
        await atelier.bot.services.generation.approvals.approve(job_id, world.admin_id)
    await idle(atelier)
    job = await atelier.bot.services.jobs.get(job_id)
    assert job is not None and job.state.value == "cancelled"
    await nothing_spent(atelier, world.member_id, nothing_sent=True)


async def test_a_held_request_whose_mod_log_post_was_lost_is_announced_at_start(atelier: Atelier) -> None:
    """The bot stopped after holding a request but before its mod-log message was recorded: the next start posts
    it to the mod-log again, and approving that entry delivers it."""
    world = atelier.world
    modlog = await moderated(atelier)
    interaction = await ask(atelier, "a bell tower at dusk")
    first = await held_entry(atelier, modlog)
    job_id = job_id_in(first)
    await atelier.stop()
    with sqlite3.connect(atelier.database) as conn:  # the state such a crash leaves: the hold, no message
        conn.execute("UPDATE moderation_holds SET channel_id = NULL, message_id = NULL WHERE job_id = ?", (job_id,))
    await atelier.start()

    again = await held_entry(atelier, modlog, count=2)
    assert again.id != first.id and job_id_in(again) == job_id
    click = await atelier.fake.click_button(again, button(again, "approve"), user_id=world.admin_id)
    await click.wait_message(lambda m: "Approved" in m.content)
    await result_of(interaction)
    await idle(atelier)
    assert (await settled_total(atelier))[0] == 1


async def test_the_sweep_expires_a_held_request_while_the_bot_runs(atelier: Atelier) -> None:
    """No restart: the running sweep expires an undecided request at its deadline and releases its hold."""
    world = atelier.world
    await atelier.restart(moderation__approval_timeout_hours="0.0005")  # 1.8 s
    approvals = atelier.bot.services.generation.approvals
    approvals.sweep_seconds = 0.2
    await approvals.stop()
    approvals.start()
    modlog = await moderated(atelier)
    interaction = await ask(atelier, "a kite over dunes")
    entry = await held_entry(atelier, modlog)
    assert (await status(atelier, world.member_id)).reserved > 0

    await atelier.fake.wait_until(lambda: "Expired" in entry.content, timeout=10.0, what="the expiry shown")
    told = await interaction.wait_message(lambda m: "expired" in m.content)
    assert "Nothing was charged" in told.content and entry.button_custom_ids() == []
    await nothing_spent(atelier, world.member_id, nothing_sent=True)


async def test_expiry_racing_an_approve_click_makes_one_decision(atelier: Atelier) -> None:
    """The deadline passes and a moderator clicks Approve as the sweep runs: exactly one wins, money moves once."""
    world = atelier.world
    await atelier.restart(moderation__approval_timeout_hours="0.0005")  # 1.8 s
    approvals = atelier.bot.services.generation.approvals
    await approvals.stop()  # the sweep runs below, at the same moment as the click
    modlog = await moderated(atelier)
    await ask(atelier, "a tram in the rain")
    entry = await held_entry(atelier, modlog)
    job_id = job_id_in(entry)
    await asyncio.sleep(2.0)

    click = await atelier.fake.click_button(entry, button(entry, "approve"), user_id=world.admin_id)
    expired = await approvals.sweep()
    answer = await click.wait_message()
    await idle(atelier)

    job = await atelier.bot.services.jobs.get(job_id)
    assert job is not None
    budget = await status(atelier, world.member_id)
    assert budget.reserved == 0
    if expired == [job_id]:
        assert ALREADY_DECIDED in answer.content and job.state.value == "cancelled"
        await nothing_spent(atelier, world.member_id, nothing_sent=True)
    else:
        assert expired == [] and "Approved" in answer.content and job.state.value == "succeeded"
        assert (await settled_total(atelier))[0] == 1 and len(inference_tasks(atelier)) == 1
    assert await approvals.sweep() == []  # nothing left to expire


async def test_an_ordinary_members_reject_changes_nothing(atelier: Atelier) -> None:
    """Reject by a member who is not a moderator: the reason modal opens (the acknowledgement), the submission is
    refused privately, and the request stays held with its estimate reserved."""
    world = atelier.world
    modlog = await moderated(atelier)
    interaction = await ask(atelier, "a heron at dawn")
    entry = await held_entry(atelier, modlog)
    reserved = (await status(atelier, world.member_id)).reserved

    opened = await atelier.fake.click_button(entry, button(entry, "reject"), user_id=world.other_member_id)
    await opened.wait_response()
    assert opened.modal is not None
    field = next(
        c["custom_id"]
        for row in opened.modal["components"]
        for c in [row.get("component") or {}, *(row.get("components") or [])]
        if c.get("type") == 4
    )
    submitted = await atelier.fake.submit_modal(opened, {field: "I do not like it"})
    refusal = await submitted.wait_message()

    assert refusal.ephemeral and "Only moderators" in refusal.content
    job = await atelier.bot.services.jobs.get(job_id_in(entry))
    assert job is not None and job.state.value == "awaiting_approval"
    assert (await status(atelier, world.member_id)).reserved == reserved
    assert "reject" in " ".join(entry.button_custom_ids())
    assert not any("rejected" in m.content for m in interaction.messages())


async def test_a_mod_log_the_bot_cannot_post_in_is_named_to_the_admin(atelier: Atelier) -> None:
    """`/settings modlog` on a channel where the bot may not send: the admin is told at once, and a request in an
    approval channel is then refused with that reason, nothing reserved."""
    fake, world = atelier.fake, atelier.world
    send_messages = 1 << 11
    closed = fake.add_channel(
        world.guild_id,
        name="locked-log",
        permission_overwrites=[{"id": world.bot_role_id, "type": 0, "deny": send_messages}],
    )
    await fake.announce_guild(world.guild_id)
    answer = await atelier.answer("settings modlog", user_id=world.admin_id, channel=closed.id)
    assert "⚠️" in answer.content and "cannot send messages" in answer.content
    answer = await atelier.answer("settings approval", user_id=world.admin_id, channel=world.channel_id, mode="all")
    assert "⚠️" in answer.content and "cannot send messages" in answer.content

    interaction = await ask(atelier, "a mill by a stream")
    refusal = await interaction.wait_message(lambda m: m.ephemeral)
    assert "cannot send messages" in refusal.content and f"<#{closed.id}>" in refusal.content
    await nothing_spent(atelier, world.member_id, nothing_sent=True)


async def test_a_deleted_mod_log_channel_refuses_held_requests_with_the_reason(atelier: Atelier) -> None:
    """The mod-log channel is deleted after it was set (here while the bot was down): `/settings approval` warns, and
    a request there is refused naming the missing channel rather than held where nobody can see it."""
    fake, world = atelier.fake, atelier.world
    modlog = await moderated(atelier)
    del fake.guild(world.guild_id).channels[modlog.id]
    await atelier.restart()  # the fake sends no CHANNEL_DELETE: the bot learns the server's channels at its start
    assert atelier.bot.get_channel(modlog.id) is None

    answer = await atelier.answer("settings approval", user_id=world.admin_id, channel=world.channel_id, mode="all")
    assert "⚠️" in answer.content and "no longer exists" in answer.content
    interaction = await ask(atelier, "a barn owl")
    refusal = await interaction.wait_message(lambda m: m.ephemeral)
    assert "no longer exists" in refusal.content
    await nothing_spent(atelier, world.member_id, nothing_sent=True)
