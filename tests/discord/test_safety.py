"""Safety channels end to end: a result Runware flags is held in the mod-log, never in the channel, charged once."""

from __future__ import annotations

from fakes.discord import FakeMessage
from tests.discord.conftest import Atelier
from tests.discord.helpers import has_images, idle, nothing_spent, settled_total, task_for


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
