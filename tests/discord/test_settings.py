"""`/settings defaults` and `/settings limits` end to end: admins set a server's own generation defaults and limits,
members' requests follow them (else the config file's), and everyone else is refused."""

from __future__ import annotations

from bot.jobs.options import TRANSPARENT_JPG
from fakes.discord import Permission
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import (
    idle,
    nothing_spent,
    png,
    refused,
    result_of,
    settled_total,
    task_for,
    text_input_id,
)

REFUSED = "You need the Manage Server permission to do this."
SERVER = "set by this server"
CONFIG = "config file"


async def _stored(atelier: Atelier) -> object:
    """The server's stored generation settings row (None if it has none)."""
    return await atelier.bot.services.server_options.stored(atelier.world.guild_id)


async def test_admin_sets_defaults_and_members_requests_use_them(atelier: Atelier) -> None:
    """`/settings defaults` shows the config file's values at first; after an admin sets some, /imagine without
    options and Edit image send exactly those to Runware (the rest from the config), and the Edit button keeps the
    result's model and size but takes the other defaults from the server."""
    fake, world = atelier.fake, atelier.world
    before = await atelier.answer("settings defaults", user_id=world.admin_id)
    assert before.embeds[0]["title"] == "Generation defaults"
    assert embed_fields(before) == {
        "model": f"**gpt-image-1-mini** · {CONFIG}",
        "size": f"**1024x1024** · {CONFIG}",
        "quality": f"**medium** · {CONFIG}",
        "background": f"**auto** · {CONFIG}",
        "format": f"**png** · {CONFIG}",
        "count": f"**1** · {CONFIG}",
    }

    changed = await atelier.answer(
        "settings defaults",
        user_id=world.admin_id,
        model="gpt-image-1.5",
        size="1536x1024",
        quality="low",
        format="webp",
    )

    assert changed.content == "Set model **gpt-image-1.5**, size **1536x1024**, quality **low**, format **webp**."
    fields = embed_fields(changed)
    assert fields["model"] == f"**gpt-image-1.5** · {SERVER}"
    assert fields["format"] == f"**webp** · {SERVER}"
    assert fields["background"] == f"**auto** · {CONFIG}"
    assert f"Last changed by <@{world.admin_id}> <t:" in changed.embeds[0]["description"]

    result = await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a quiet harbour"))
    await idle(atelier)
    task = task_for(atelier, "a quiet harbour")
    assert task["model"] == "openai:4@1" and (task["width"], task["height"]) == (1536, 1024)
    assert task["providerSettings"]["openai"] == {"quality": "low", "background": "auto"}
    assert task["outputFormat"] == "WEBP" and task["numberResults"] == 1
    assert result.attachments[0].data.startswith(b"RIFF")

    source = await fake.user_message(
        world.channel_id,
        user_id=world.other_member_id,
        content="my sketch",
        attachments=[fake.store_blob(png(64, 64), "sketch.png")],
    )
    opened = await fake.invoke_message_command("Edit image", source, user_id=world.member_id)
    await opened.wait_response()
    await result_of(await fake.submit_modal(opened, {text_input_id(opened): "ink it"}))
    edit_task = task_for(atelier, "ink it")
    assert edit_task["model"] == "openai:4@1" and (edit_task["width"], edit_task["height"]) == (1536, 1024)
    assert edit_task["outputFormat"] == "WEBP"

    await atelier.answer("settings defaults", user_id=world.admin_id, quality="high", format="png")
    original = await result_of(
        await atelier.slash("imagine", user_id=world.member_id, prompt="a lamp", model="gpt-image-1", size="1024x1536")
    )
    await idle(atelier)
    click = await fake.click_button(original, original.button_custom_ids()[1], user_id=world.member_id)
    await click.wait_response()
    await result_of(await fake.submit_modal(click, {text_input_id(click): "make it brass"}))
    await idle(atelier)
    button_task = task_for(atelier, "make it brass")
    assert button_task["model"] == "openai:1@1" and (button_task["width"], button_task["height"]) == (1024, 1536)
    assert button_task["providerSettings"]["openai"]["quality"] == "high" and button_task["outputFormat"] == "PNG"


async def test_a_servers_max_count_refuses_a_larger_count_with_nothing_spent(atelier: Atelier) -> None:
    """After `/settings limits max_count:2`, `/imagine count:3` is refused privately with the server's limit;
    nothing is reserved, charged or sent to Runware."""
    world = atelier.world
    answer = await atelier.answer("settings limits", user_id=world.admin_id, max_count=2)
    assert answer.content == "Set max_count **2**."
    assert embed_fields(answer)["max_count"].startswith(f"**2** · {SERVER}\n")

    message = await refused(atelier, "imagine", user_id=world.member_id, prompt="three foxes", count=3)

    assert message.content == "count must be between 1 and 2 on this server (got 3)."
    await nothing_spent(atelier, world.member_id, nothing_sent=True)


async def test_a_lowered_threshold_asks_for_confirmation_until_reset(atelier: Atelier) -> None:
    """With `/settings limits confirm_above:0.005` a $0.011 request asks for Confirm (naming the server's threshold)
    and spends nothing; after `reset:true` the config's $0.50 applies again and the same request just runs."""
    world = atelier.world
    await atelier.answer("settings limits", user_id=world.admin_id, confirm_above="$0.005")

    asked = await atelier.slash("imagine", user_id=world.member_id, prompt="a cheap fox")
    question = await asked.wait_message(lambda m: "confirm" in m.content)

    assert "about **$0.011**" in question.content and "confirmation threshold of $0.005" in question.content
    assert any(":confirm:" in custom_id for custom_id in question.button_custom_ids())
    await nothing_spent(atelier, world.member_id, nothing_sent=True)

    reset = await atelier.answer("settings limits", user_id=world.admin_id, reset=True)
    assert reset.content == "Cleared this server's limits."
    assert embed_fields(reset)["confirm_above"].startswith(f"**$0.50** · {CONFIG}\n")

    await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a cheap fox again"))
    await idle(atelier)
    assert await settled_total(atelier) == (1, 11_000)


async def test_reset_restores_the_config_files_defaults(atelier: Atelier) -> None:
    """`/settings defaults reset:true` clears the server's defaults: requests use the config file's again."""
    world = atelier.world
    await atelier.answer("settings defaults", user_id=world.admin_id, model="gpt-image-1", quality="high", count=2)

    reset = await atelier.answer("settings defaults", user_id=world.admin_id, reset=True)

    assert reset.content == "Cleared this server's defaults."
    assert all(value.endswith(CONFIG) for value in embed_fields(reset).values())
    await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a plain fox"))
    task = task_for(atelier, "a plain fox")
    assert task["model"] == "openai:1@2" and task["numberResults"] == 1
    assert task["providerSettings"]["openai"]["quality"] == "medium"


async def test_settings_are_hidden_by_default_but_the_bot_checks_permissions_itself(atelier: Atelier) -> None:
    """The group asks Discord to hide it from non-admins; when a server lifts that, the bot still refuses members
    and moderators, showing and changing alike, and nothing is stored."""
    world = atelier.world
    group = next(command for command in atelier.fake.commands[None] if command["name"] == "settings")
    assert group["default_member_permissions"] == str(int(Permission.MANAGE_GUILD))
    names = {option["name"] for option in group["options"]}
    assert names == {
        "defaults",
        "limits",
        "show",
        "channels",
        "roles",
        "blocklist",
        "audit",
        "modlog",
        "moderators",
        "approval",
        "safety",
    }
    moderators = atelier.fake.add_role(world.guild_id, name="Moderators", permissions=int(Permission.MANAGE_MESSAGES))
    moderator = atelier.fake.add_member(world.guild_id, name="moderator", roles=[moderators.id])

    # The fake delivers /settings to anyone, as Discord does once a server opens the command to @everyone.
    attempts = [
        await atelier.answer("settings defaults", user_id=world.member_id, model="gpt-image-1"),
        await atelier.answer("settings defaults", user_id=world.member_id),
        await atelier.answer("settings limits", user_id=moderator.user.id, max_count=1),
        await atelier.answer("settings limits", user_id=world.other_member_id, reset=True),
    ]

    assert [message.content for message in attempts] == [REFUSED] * len(attempts)
    assert all(not message.embeds for message in attempts)
    assert await _stored(atelier) is None


async def test_bad_values_are_refused_clearly_and_change_nothing(atelier: Atelier) -> None:
    """A count above the bot-wide limit (as max_count or default count), transparent with jpg, a negative, absurd
    or malformed threshold: each gets a specific private sentence, and the server's settings stay as they were."""
    await atelier.restart(limits__max_count="3")
    admin = atelier.world.admin_id
    await atelier.answer("settings defaults", user_id=admin, format="jpg")
    before = await _stored(atelier)
    cases: list[tuple[str, dict[str, object], str]] = [
        ("settings limits", {"max_count": 4}, "This bot allows at most 3 images per request"),
        ("settings defaults", {"count": 4}, "The default count can be at most 3"),
        ("settings defaults", {"background": "transparent"}, TRANSPARENT_JPG),
        ("settings defaults", {"background": "transparent", "format": "jpg", "model": "gpt-image-1"}, TRANSPARENT_JPG),
        ("settings limits", {"confirm_above": "-1"}, "`-1` is negative; use an amount of 0 or more."),
        ("settings limits", {"confirm_above": "2000000"}, "`2000000` can't be used: amount too large"),
        ("settings limits", {"confirm_above": "lots", "max_count": 1}, "`lots` is not a dollar amount"),
    ]

    for command, options, sentence in cases:
        message = await atelier.answer(command, user_id=admin, **options)
        assert sentence in message.content, (options, message.content)
        assert not message.embeds, options

    assert await _stored(atelier) == before
    limits = await atelier.answer("settings limits", user_id=admin)
    assert embed_fields(limits)["max_count"] == f"**3** · {CONFIG}\nImages per request; this bot allows at most 3."


async def test_settings_show_has_everything_and_says_whether_reply_editing_is_on(atelier: Atelier) -> None:
    """`/settings show`: the defaults and limits on one page, and reply editing: on when the portal allows the
    Message Content intent (default config), else off with the portal's switch to turn on."""
    world = atelier.world
    on = await atelier.answer("settings show", user_id=world.admin_id)
    fields = embed_fields(on)
    assert {"model", "size", "count", "max_count", "confirm_above"} <= set(fields)
    assert fields["Reply editing"].startswith("**on** · `reply_editing = auto`")

    atelier.fake.application_flags = 0
    await atelier.restart()
    off = embed_fields(await atelier.answer("settings show", user_id=world.admin_id))["Reply editing"]
    assert off.startswith("**off** · `reply_editing = auto`")
    assert 'Switch on "Message Content Intent" in the Discord developer portal' in off

    await atelier.restart(discord__reply_editing="false")
    config_off = embed_fields(await atelier.answer("settings show", user_id=world.admin_id))["Reply editing"]
    assert config_off.startswith("**off** · `reply_editing = false`")
    assert 'Set `reply_editing = "auto"`' in config_off
