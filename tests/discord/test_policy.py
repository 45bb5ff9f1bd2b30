"""Channel and role rules and the blocklist end to end: refused requests fetch, reserve and send nothing; allowed
ones are served, through a category's rule and a thread's parent channel; a blocklisted prompt is refused on every
entry point (slash, Edit image, a reply, the Reroll and Edit buttons of an earlier result) in any case or width."""

from __future__ import annotations

from bot.moderation.policy import NO_ALLOWED_ROLE, NOT_IN_THIS_CHANNEL
from fakes.discord import FakeInteraction, FakeMessage
from tests.discord.conftest import Atelier
from tests.discord.helpers import (
    idle,
    inference_tasks,
    job_id_of,
    png,
    refused,
    result_of,
    settled_total,
    status,
    text_input_id,
)


async def _imagine_in(atelier: Atelier, channel_id: int, prompt: str, user_id: int | None = None) -> FakeInteraction:
    world = atelier.world
    return await atelier.fake.invoke_slash(
        "imagine",
        user_id=user_id or world.member_id,
        guild_id=world.guild_id,
        channel_id=channel_id,
        options={"prompt": prompt},
    )


async def _refusal(interaction: FakeInteraction) -> FakeMessage:
    message = await interaction.wait_message(lambda m: m.ephemeral or bool(m.attachments))
    assert message.ephemeral, f"not refused: {message.content!r}"
    return message


async def _holds_nothing(atelier: Atelier, member_id: int) -> None:
    budget = await status(atelier, member_id)
    assert budget.reserved == 0


async def test_channel_rules_cover_categories_and_threads_and_refuse_elsewhere(atelier: Atelier) -> None:
    """With a category and another channel allowed: a channel in the category and a thread under the allowed channel
    are served; the server's other channel, and a channel of the category that is denied on its own, are refused
    privately before anything is fetched, reserved or sent."""
    fake, world = atelier.fake, atelier.world
    studio = fake.add_category(world.guild_id, name="studio")
    renders = fake.add_channel(world.guild_id, name="renders", parent_id=studio.id)
    notices = fake.add_channel(world.guild_id, name="notices", parent_id=studio.id)
    team = fake.add_channel(world.guild_id, name="team")
    thread = fake.add_thread(team.id, name="week 1", owner_id=world.member_id)
    await fake.announce_guild(world.guild_id)
    admin = world.admin_id
    for action, channel in (("allow", studio.id), ("allow", team.id), ("deny", notices.id)):
        answer = await atelier.answer("settings channels", user_id=admin, action=action, channel=channel)
        assert f"<#{channel}>" in answer.content
    shown = await atelier.answer("settings channels", user_id=admin, action="show")
    assert shown.embeds[0]["description"] == f"Only in <#{studio.id}>, <#{team.id}>; never in <#{notices.id}>."

    elsewhere = await refused(atelier, "imagine", user_id=world.member_id, prompt="a fox in general")
    assert elsewhere.content == NOT_IN_THIS_CHANNEL
    denied = await _refusal(await _imagine_in(atelier, notices.id, "a fox in notices"))
    assert denied.content == NOT_IN_THIS_CHANNEL
    assert inference_tasks(atelier) == [] and atelier.runware.tasks_submitted("imageUpload") == []
    await _holds_nothing(atelier, world.member_id)
    assert await settled_total(atelier) == (0, 0)

    in_category = await result_of(await _imagine_in(atelier, renders.id, "a fox in renders"))
    in_thread = await result_of(await _imagine_in(atelier, thread.id, "a fox in the thread"))
    await idle(atelier)
    assert in_category.channel_id == renders.id and in_thread.channel_id == thread.id
    assert len(inference_tasks(atelier)) == 2

    await atelier.answer("settings channels", user_id=admin, action="clear")
    await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a fox anywhere"))
    await idle(atelier)
    assert len(inference_tasks(atelier)) == 3


async def test_role_rules_let_only_allowed_roles_generate_admins_included(atelier: Atelier) -> None:
    """With the Artists role allowed, the artist is served; a member without it, and an admin (Manage Server is not
    an exemption), are refused with nothing reserved or sent. A denied role beats an allowed one."""
    fake, world = atelier.fake, atelier.world
    await atelier.answer("settings roles", user_id=world.admin_id, action="allow", role=world.artist_role_id)

    for member in (world.other_member_id, world.admin_id):
        refusal = await refused(atelier, "imagine", user_id=member, prompt="a heron")
        assert refusal.content == NO_ALLOWED_ROLE
        await _holds_nothing(atelier, member)
    assert inference_tasks(atelier) == []

    await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a heron"))
    await idle(atelier)
    assert len(inference_tasks(atelier)) == 1

    banned = fake.add_role(world.guild_id, name="Banned from art")
    both = fake.add_member(world.guild_id, name="both", roles=[world.artist_role_id, banned.id])
    await fake.announce_guild(world.guild_id)
    denied = await atelier.answer("settings roles", user_id=world.admin_id, action="deny", role=banned.id)
    assert denied.content == f"<@&{banned.id}> is now **denied**."
    refusal = await refused(atelier, "imagine", user_id=both.user.id, prompt="a crane")
    assert "One of your roles" in refusal.content
    assert len(inference_tasks(atelier)) == 1


async def _reply_to(atelier: Atelier, message: FakeMessage) -> FakeMessage:
    fake = atelier.fake
    return await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(atelier.world.channel_id) if m.referenced is message), None),
        timeout=10.0,
        what=f"the bot's reply to message {message.id}",
    )


async def test_a_blocklisted_prompt_is_refused_on_every_entry_point(atelier: Atelier) -> None:
    """After `forbidden` and `red dragon` are added: /imagine in full width or mixed case, Edit image, a reply to a
    result, and the Reroll and Edit buttons of a result made before the entry existed are all refused, naming the
    entry, with nothing uploaded, sent or reserved; each refusal is logged to the mod-log (who, where, prompt, entry);
    `test` says the same, and a clean prompt still passes."""
    fake, world = atelier.fake, atelier.world
    member = world.member_id
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await atelier.answer("settings modlog", user_id=world.admin_id, channel=modlog.id)
    earlier = await result_of(await atelier.slash("imagine", user_id=member, prompt="a forbidden garden"))
    await idle(atelier)
    source = await fake.user_message(
        world.channel_id, user_id=world.other_member_id, content="sketch", attachments=[fake.store_blob(png(), "s.png")]
    )
    for entry in ("forbidden", "Red  Dragon"):
        added = await atelier.answer("settings blocklist", user_id=world.admin_id, action="add", text=entry)
        assert added.content.startswith("Added")
    tested = await atelier.answer("settings blocklist", user_id=world.admin_id, action="test", text="A RED-DRAGON")
    assert tested.content == "⛔ That prompt is refused: it contains “Red Dragon”."
    sent, uploads = len(inference_tasks(atelier)), len(atelier.runware.tasks_submitted("imageUpload"))

    slash = await refused(atelier, "imagine", user_id=member, prompt="ＦＯＲＢＩＤＤＥＮ fruit")
    mixed = await refused(atelier, "imagine", user_id=member, prompt="A Forbidden City at dusk")
    opened = await fake.invoke_message_command("Edit image", source, user_id=member)
    await opened.wait_response()
    menu = await _refusal(await fake.submit_modal(opened, {text_input_id(opened): "paint a red dragon on it"}))
    reply = await fake.user_message(
        world.channel_id, user_id=member, content=f"<@{fake.bot_user.id}> make it FORBIDDEN", reply_to=earlier
    )
    replied = await _reply_to(atelier, reply)
    reroll = await _refusal(await fake.click_button(earlier, f"atelier:reroll:{job_id_of(earlier)}", user_id=member))
    click = await fake.click_button(earlier, f"atelier:edit:{job_id_of(earlier)}", user_id=member)
    await click.wait_response()
    edit = await _refusal(await fake.submit_modal(click, {text_input_id(click): "add a red_dragon"}))

    for message, entry in (
        (slash, "forbidden"),
        (mixed, "forbidden"),
        (menu, "Red Dragon"),
        (replied, "forbidden"),
        (reroll, "forbidden"),
        (edit, "Red Dragon"),
    ):
        assert f"“{entry}”" in message.content and "does not allow" in message.content, message.content
        assert not message.attachments
    assert len(inference_tasks(atelier)) == sent
    assert len(atelier.runware.tasks_submitted("imageUpload")) == uploads
    await _holds_nothing(atelier, member)
    assert (await settled_total(atelier))[0] == 1
    logged = [
        str(m.embeds[0])
        for m in fake.channel_messages(modlog.id)
        if m.embeds and "Refused by the blocklist" in str(m.embeds[0])
    ]
    assert len(logged) == 6
    assert sum("ＦＯＲＢＩＤＤＥＮ fruit" in card for card in logged) == 1
    assert all(f"<@{member}>" in card and f"<#{world.channel_id}>" in card for card in logged)

    await result_of(await atelier.slash("imagine", user_id=member, prompt="a forbiddance of dragons"))
    await idle(atelier)
    assert len(inference_tasks(atelier)) == sent + 1


async def test_blocklist_show_remove_and_bad_entries(atelier: Atelier) -> None:
    """`show` lists entries as written; the same entry in another case or width is refused as a duplicate; `remove`
    takes any spelling; an entry without letters is refused; prompts pass again once the entry is gone."""
    admin = atelier.world.admin_id
    await atelier.answer("settings blocklist", user_id=admin, action="add", text="Forbidden")
    duplicate = await atelier.answer("settings blocklist", user_id=admin, action="add", text="ＦＯＲＢＩＤＤＥＮ")
    assert duplicate.content == "“Forbidden” is already on the blocklist."
    empty = await atelier.answer("settings blocklist", user_id=admin, action="add", text="!!!")
    assert "at least one letter or digit" in empty.content
    shown = await atelier.answer("settings blocklist", user_id=admin, action="show")
    assert shown.embeds[0]["title"] == "Blocklist (1)" and shown.embeds[0]["description"] == "“Forbidden”"
    removed = await atelier.answer("settings blocklist", user_id=admin, action="remove", text="FORBIDDEN")
    assert removed.content == "Removed “Forbidden”."
    passes = await atelier.answer("settings blocklist", user_id=admin, action="test", text="forbidden fruit")
    assert passes.content == "✅ That prompt passes."
