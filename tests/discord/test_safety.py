"""Safety channels end to end: a result Runware flags is held in the mod-log, never in the channel, charged once."""

from __future__ import annotations

import asyncio

from bot.money import format_usd
from fakes.discord import FakeMessage
from tests.discord.conftest import Atelier
from tests.discord.helpers import has_images, idle, job_id_of, nothing_spent, settled_total, task_for, text_input_id


async def _safety_channel(atelier: Atelier) -> int:
    fake, world = atelier.fake, atelier.world
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await atelier.answer("settings modlog", user_id=world.admin_id, channel=modlog.id)
    answer = await atelier.answer("settings safety", user_id=world.admin_id, channel=world.channel_id, mode="on")
    assert "Safety check" in answer.content
    atelier.runware.flagged_words = {"forbidden fruit"}
    return modlog.id


def _quarantined(atelier: Atelier, modlog_id: int) -> list[FakeMessage]:
    return [m for m in atelier.fake.channel_messages(modlog_id) if any("publish" in c for c in m.button_custom_ids())]


async def test_a_flagged_result_is_held_in_the_mod_log_and_approving_posts_it(atelier: Atelier) -> None:
    """Flagged: not in the channel, in the mod-log as spoilers, charged once, the requester told; Approve posts it."""
    world = atelier.world
    modlog_id = await _safety_channel(atelier)
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="the forbidden fruit, still life")
    told = await interaction.wait_message(lambda m: "held for a moderator's review" in m.content)
    await idle(atelier)
    assert task_for(atelier, "the forbidden fruit, still life")["safety"] == {"checkContent": True}
    assert not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))
    (entry,) = _quarantined(atelier, modlog_id)
    assert entry.attachments and all(a.filename.startswith("SPOILER_") for a in entry.attachments)
    count, total = await settled_total(atelier)
    assert count == 1 and total > 0

    publish = next(c for c in entry.button_custom_ids() if c.startswith("atelier:mod:publish:"))
    click = await atelier.fake.click_button(entry, publish, user_id=world.admin_id)
    await click.wait_message(lambda m: "Posted" in m.content)
    posted = [m for m in atelier.fake.channel_messages(world.channel_id) if has_images(m)]
    assert len(posted) == 1 and (posted[0].id == told.id or f"<@{world.member_id}>" in posted[0].content)
    assert await settled_total(atelier) == (count, total)  # charged once, not again
    await atelier.fake.wait_until(lambda: "Approved by" in entry.content, timeout=5.0, what="the decision shown")


async def test_an_unflagged_result_in_a_safety_channel_is_posted_and_logged(atelier: Atelier) -> None:
    """Checked but not flagged: posted as usual, and the mod-log gets its entry with Delete, which removes it."""
    world = atelier.world
    modlog_id = await _safety_channel(atelier)
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a pear, still life")
    result = await interaction.wait_message(has_images)
    await idle(atelier)
    assert task_for(atelier, "a pear, still life")["safety"] == {"checkContent": True}
    assert _quarantined(atelier, modlog_id) == []
    logged = [m for m in atelier.fake.channel_messages(modlog_id) if any("delete" in c for c in m.button_custom_ids())]
    assert len(logged) == 1 and "a pear, still life" in str(logged[0].embeds[0])
    delete = next(c for c in logged[0].button_custom_ids() if c.startswith("atelier:mod:delete:"))
    refused = await atelier.fake.click_button(logged[0], delete, user_id=world.other_member_id)
    assert (await refused.wait_message()).ephemeral and not result.deleted
    click = await atelier.fake.click_button(logged[0], delete, user_id=world.admin_id)
    await click.wait_message(lambda m: "Deleted" in m.content)
    assert result.deleted


async def test_a_safety_channel_without_a_mod_log_refuses_before_anything_is_spent(atelier: Atelier) -> None:
    """Safety on but no mod-log: a flagged result would be paid for and seen by nobody, so the request is refused
    (naming the mod-log) with no task sent and nothing reserved or charged."""
    world = atelier.world
    answer = await atelier.answer("settings safety", user_id=world.admin_id, channel=world.channel_id, mode="on")
    assert "Safety check" in answer.content
    atelier.runware.flagged_words = {"forbidden fruit"}

    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a forbidden fruit")
    refusal = await interaction.wait_message(lambda m: m.ephemeral)

    assert "mod-log" in refusal.content
    await nothing_spent(atelier, world.member_id, nothing_sent=True)


async def _flagged(atelier: Atelier, prompt: str) -> tuple[int, FakeMessage, FakeMessage]:
    """A safety channel and one flagged request in it: (mod-log id, the requester's "held" message, the entry)."""
    modlog_id = await _safety_channel(atelier)
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt=prompt)
    told = await interaction.wait_message(lambda m: "held for a moderator's review" in m.content)
    await idle(atelier)
    (entry,) = _quarantined(atelier, modlog_id)
    return modlog_id, told, entry


def _button(entry: FakeMessage, action: str) -> str:
    return next(c for c in entry.button_custom_ids() if c.startswith(f"atelier:mod:{action}:"))


async def test_a_failed_post_leaves_the_flagged_result_undecided_and_the_moderator_can_retry(atelier: Atelier) -> None:
    """Approve, but Discord refuses the post: the moderator is told privately, nothing is decided and the buttons
    stay; the next Approve posts it (once) and records the approval."""
    world = atelier.world
    _modlog_id, told, entry = await _flagged(atelier, "forbidden fruit in a bowl")
    charged = await settled_total(atelier)
    requester = atelier.fake.interactions[told.interaction_id or 0]
    atelier.fake.plan_error("PATCH", rf"^/webhooks/\d+/{requester.token}/messages/@original$", 400)

    click = await atelier.fake.click_button(entry, _button(entry, "publish"), user_id=world.admin_id)
    answer = await click.wait_message()

    assert answer.ephemeral and "could not be posted" in answer.content and "try again" in answer.content
    hold = await atelier.bot.services.generation.approvals.hold(job_id_of(entry))
    assert hold is not None and hold.decision is None
    assert _button(entry, "publish") and not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))

    again = await atelier.fake.click_button(entry, _button(entry, "publish"), user_id=world.admin_id)
    await again.wait_message(lambda m: "Posted" in m.content)
    posted = [m for m in atelier.fake.channel_messages(world.channel_id) if has_images(m)]
    assert len(posted) == 1 and (posted[0].id == told.id or f"<@{world.member_id}>" in posted[0].content)
    await atelier.fake.wait_until(lambda: "Approved by" in entry.content, timeout=5.0, what="the decision shown")
    assert await settled_total(atelier) == charged


async def test_a_published_flagged_result_is_logged_and_delete_removes_it(atelier: Atelier) -> None:
    """Approving a flagged result posts it and logs it as a generation, whose Delete removes the posted result."""
    world = atelier.world
    modlog_id, _told, entry = await _flagged(atelier, "forbidden fruit on a plate")
    click = await atelier.fake.click_button(entry, _button(entry, "publish"), user_id=world.admin_id)
    await click.wait_message(lambda m: "Posted" in m.content)
    (posted,) = [m for m in atelier.fake.channel_messages(world.channel_id) if has_images(m)]

    def logged() -> list[FakeMessage]:
        entries = atelier.fake.channel_messages(modlog_id)
        return [m for m in entries if any("delete" in c for c in m.button_custom_ids())]

    await atelier.fake.wait_until(logged, timeout=5.0, what="the Generated entry")
    (generated,) = logged()
    assert "Generated" in str(generated.embeds[0]) and job_id_of(entry) in str(generated.embeds[0])
    delete = await atelier.fake.click_button(generated, _button(generated, "delete"), user_id=world.admin_id)
    await delete.wait_message(lambda m: "Deleted" in m.content)
    assert posted.deleted


async def test_discarding_a_flagged_result_tells_the_requester_it_was_charged(atelier: Atelier) -> None:
    """Reject: the result is not posted, and the requester is told so together with what it cost them."""
    world = atelier.world
    _modlog_id, told, entry = await _flagged(atelier, "forbidden fruit, sketch")
    _count, total = await settled_total(atelier)
    opened = await atelier.fake.click_button(entry, _button(entry, "discard"), user_id=world.admin_id)
    await opened.wait_response()
    submitted = await atelier.fake.submit_modal(opened, {text_input_id(opened): "not for this class"})
    await submitted.wait_message(lambda m: "will not be posted" in m.content)

    await atelier.fake.wait_until(lambda: "will not be posted" in told.content, timeout=5.0, what="the requester told")
    assert "not for this class" in told.content
    assert "charged" in told.content and format_usd(total) in told.content
    assert not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))
    assert (await settled_total(atelier))[1] == total


async def test_approving_posts_the_mod_log_copy_when_runware_no_longer_serves_the_images(atelier: Atelier) -> None:
    """Runware's result URLs are gone by the time a moderator approves: the mod-log message's own files are posted."""
    world = atelier.world
    _modlog_id, _told, entry = await _flagged(atelier, "forbidden fruit at noon")
    atelier.runware._book.images.clear()  # Runware's URLs expire

    click = await atelier.fake.click_button(entry, _button(entry, "publish"), user_id=world.admin_id)
    await click.wait_message(lambda m: "Posted" in m.content)

    (posted,) = [m for m in atelier.fake.channel_messages(world.channel_id) if has_images(m)]
    assert len(posted.attachments) == len(entry.attachments)


async def test_a_flagged_result_whose_mod_log_post_failed_is_posted_there_after_a_restart(atelier: Atelier) -> None:
    """The mod-log is unreachable when the result is flagged: the requester is told it is held, nothing reaches the
    channel; after a restart the result is posted to the mod-log with its buttons (charged once), and Approve works."""
    world = atelier.world
    modlog_id = await _safety_channel(atelier)
    atelier.fake.plan_error("POST", rf"^/channels/{modlog_id}/messages$", 503)
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="forbidden fruit, lost post")
    await interaction.wait_message(lambda m: "held for a moderator's review" in m.content)
    await idle(atelier)
    assert _quarantined(atelier, modlog_id) == []
    assert not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))
    charged = await settled_total(atelier)
    assert charged[0] == 1

    await atelier.restart()
    await atelier.fake.wait_until(lambda: _quarantined(atelier, modlog_id), timeout=10.0, what="the re-posted entry")
    (entry,) = _quarantined(atelier, modlog_id)
    assert entry.attachments and all(a.filename.startswith("SPOILER_") for a in entry.attachments)
    approvals = atelier.bot.services.generation.approvals
    for _ in range(200):  # the message id is recorded just after the post
        hold = await approvals.hold(job_id_of(entry))
        if hold is not None and hold.message_id is not None:
            break
        await asyncio.sleep(0.025)
    assert hold is not None and hold.message_id == entry.id and hold.decision is None
    assert not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))

    click = await atelier.fake.click_button(entry, _button(entry, "publish"), user_id=world.admin_id)
    await click.wait_message(lambda m: "Posted" in m.content)
    assert len([m for m in atelier.fake.channel_messages(world.channel_id) if has_images(m)]) == 1
    await atelier.restart()  # posted once: a second start finds nothing left to post
    await idle(atelier)
    flagged_posts = [m for m in atelier.fake.channel_messages(modlog_id) if m.attachments]
    assert [m.id for m in flagged_posts] == [entry.id]
    assert await settled_total(atelier) == charged


async def test_a_flagged_result_whose_mod_log_post_failed_is_posted_by_the_next_sweep(atelier: Atelier) -> None:
    """The mod-log answers 503 once when the result is flagged: without a restart, the next sweep posts it there with
    its buttons (once, however often the sweep runs), and the result is charged once."""
    world = atelier.world
    modlog_id = await _safety_channel(atelier)
    atelier.fake.plan_error("POST", rf"^/channels/{modlog_id}/messages$", 503)
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="forbidden fruit, swept post")
    await interaction.wait_message(lambda m: "held for a moderator's review" in m.content)
    await idle(atelier)
    assert _quarantined(atelier, modlog_id) == []
    charged = await settled_total(atelier)

    approvals = atelier.bot.services.generation.approvals
    assert await approvals.sweep() == []  # nothing expired; the flagged result is posted
    await approvals.sweep()  # posted once, however often the sweep runs
    (entry,) = _quarantined(atelier, modlog_id)
    assert entry.attachments and all(a.filename.startswith("SPOILER_") for a in entry.attachments)
    hold = await approvals.hold(job_id_of(entry))
    assert hold is not None and hold.message_id == entry.id and hold.decision is None
    assert not any(has_images(m) for m in atelier.fake.channel_messages(world.channel_id))
    assert await settled_total(atelier) == charged
