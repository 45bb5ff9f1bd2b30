"""Editing images already in the channel, end to end: the **Edit image** message command and reply editing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from cogs.generation.edit import EMPTY_REPLY, NEEDS_MESSAGE_CONTENT, SWITCH_ON_IN_PORTAL, SWITCHED_OFF_IN_CONFIG
from cogs.generation.references import embed_picture_addresses, message_images
from fakes.discord import FakeMessage, Intent, RecordedRequest
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import (
    idle,
    image_size,
    inference_tasks,
    jpeg,
    png,
    result_of,
    settled_total,
    task_for,
    text_input_id,
)

QUEUED = "⏳"


async def _reply_to(atelier: Atelier, message: FakeMessage) -> FakeMessage:
    """The bot's reply to `message` in the world's channel, once it is there."""
    fake = atelier.fake
    return await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(atelier.world.channel_id) if m.referenced is message), None),
        timeout=10.0,
        what=f"the bot's reply to message {message.id}",
    )


def _typing(atelier: Atelier) -> list[RecordedRequest]:
    """Every typing indicator the bot sent."""
    return [r for r in atelier.fake.requests if r.method == "POST" and r.path.endswith("/typing")]


LINKED = "https://pictures.example/sketches/linked.png"
BANNER = "https://art.example/banner.jpg"
TENOR = "https://media.tenor.com/abc/AAAAe/cat.png"
PROXIED = "https://images-ext-1.discordapp.net/external/sig/https/media.tenor.com/abc/AAAAe/cat.png"
SIZES = [(64, 64), (32, 48), (40, 24)]
"""The attachment, the linked picture and the rich embed's image, in that order."""


async def _post_images(atelier: Atelier) -> FakeMessage:
    """A member's message with an image attachment, a link to a picture on another site (which Discord previews as
    an `image` embed with the picture in its thumbnail) and a rich embed with an image, as Discord stores them:
    the embeds' `url` is the outside address, their `proxy_url` Discord's cached copy on its media proxy."""
    fake, world = atelier.fake, atelier.world
    preview = {"type": "image", "url": LINKED, "thumbnail": fake.external_image(LINKED, png(32, 48, (10, 250, 10)))}
    rich = {
        "type": "rich",
        "title": "Banner of the week",
        "image": fake.external_image(BANNER, jpeg(40, 24)),
    }
    return await fake.user_message(
        world.channel_id,
        user_id=world.other_member_id,
        content=f"my drawings {LINKED}",
        attachments=[fake.store_blob(png(64, 64, (250, 10, 10)), "sketch.png")],
        embeds=[preview, rich],
    )


def _proxy_downloads(atelier: Atelier) -> list[str]:
    """Paths fetched from the fake's media proxy (the stand-in for images-ext-1.discordapp.net)."""
    return [path for path in atelier.fake.cdn_hits if path.startswith("/external/")]


async def test_edit_image_uses_attachments_and_embed_images_as_references(atelier: Atelier) -> None:
    """Edit image opens a modal at once; on submit the message's attachment, its link preview's picture and its
    rich embed's image (both fetched from Discord's media proxy, never from the other sites) are sent as
    inputs.referenceImages, and the result links back to the edited message."""
    fake, world = atelier.fake, atelier.world
    source = await _post_images(atelier)

    opened = await fake.invoke_message_command("Edit image", source, user_id=world.member_id)
    await opened.wait_response()
    assert opened.ack_type == 9, "the modal is the acknowledgement"
    labels = [component for component in opened.modal["components"] if component["type"] == 18]
    assert labels and labels[0]["component"]["max_length"] == 4000

    submitted = await fake.submit_modal(opened, {text_input_id(opened): "paint both in watercolour"})
    message = await result_of(submitted)

    references = task_for(atelier, "paint both in watercolour")["inputs"]["referenceImages"]
    sizes = [image_size(atelier.runware.image(uuid).data) for uuid in references]  # type: ignore[union-attr]
    assert sizes == SIZES
    assert len(_proxy_downloads(atelier)) == 2
    link = embed_fields(message)["Edit of"]
    assert f"/{world.channel_id}/{source.id})" in link


async def test_edit_image_on_a_message_without_images_says_so(atelier: Atelier) -> None:
    """A message with no images gets a private explanation instead of a modal; nothing is spent."""
    fake, world = atelier.fake, atelier.world
    plain = await fake.user_message(world.channel_id, user_id=world.other_member_id, content="just words")

    interaction = await fake.invoke_message_command("Edit image", plain, user_id=world.member_id)
    message = await interaction.wait_message()

    assert message.ephemeral and message.content.startswith("That message has no images")
    assert inference_tasks(atelier) == []


async def test_reply_mention_edits_the_replied_to_images_with_message_content(atelier: Atelier) -> None:
    """With the portal's Message Content switch on (application flags `1 << 19`) and the default config
    (`reply_editing = "auto"`), a reply mentioning the bot edits the images of another member's message (attachment,
    link preview, rich embed image); the result is a reply to the member that mentions them."""
    atelier.fake.application_flags = 1 << 19
    await atelier.restart()
    fake, world = atelier.fake, atelier.world
    source = await _post_images(atelier)
    assert source.author.id == world.other_member_id

    reply = await fake.user_message(
        world.channel_id,
        user_id=world.member_id,
        content=f"<@{fake.bot_user.id}> turn them into a comic strip",
        reply_to=source,
    )
    result = await _reply_to(atelier, reply)
    await idle(atelier)

    assert result.attachments, result.content
    assert result.content == f"<@{world.member_id}>"
    references = task_for(atelier, "turn them into a comic strip")["inputs"]["referenceImages"]
    assert [image_size(atelier.runware.image(uuid).data) for uuid in references] == SIZES  # type: ignore[union-attr]
    assert len(_proxy_downloads(atelier)) == 2
    assert embed_fields(result)["Requested by"] == f"<@{world.member_id}>"
    assert f"/{source.id})" in embed_fields(result)["Edit of"]


async def test_reply_without_message_content_explains_how_to_switch_it_on(atelier: Atelier) -> None:
    """With the portal's switch off and the default config, the bot starts normally without the intent; the
    replied-to images are invisible, so the reply is answered with the switch to turn on, and nothing is spent."""
    fake, world = atelier.fake, atelier.world
    fake.privileged_intents = Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES
    await atelier.restart()
    assert fake.gateway_closes == [] and not fake.identifies[-1]["intents"] & Intent.MESSAGE_CONTENT
    source = await _post_images(atelier)

    reply = await fake.user_message(
        world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}> make it blue", reply_to=source
    )
    answer = await _reply_to(atelier, reply)

    assert answer.content == NEEDS_MESSAGE_CONTENT.format(how=SWITCH_ON_IN_PORTAL)
    assert "Message Content Intent" in answer.content and "restart the bot" in answer.content
    assert "Edit image" in answer.content
    assert inference_tasks(atelier) == [] and atelier.runware.tasks_submitted("imageUpload") == []


async def test_reply_editing_switched_off_in_the_config_says_so(atelier: Atelier) -> None:
    """`reply_editing = false` never asks for the intent even though the portal allows it; a reply says the config
    switched it off and how to turn it back on."""
    fake, world = atelier.fake, atelier.world
    await atelier.restart(discord__reply_editing="false")
    source = await _post_images(atelier)

    reply = await fake.user_message(
        world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}> make it red", reply_to=source
    )
    answer = await _reply_to(atelier, reply)

    assert answer.content == NEEDS_MESSAGE_CONTENT.format(how=SWITCHED_OFF_IN_CONFIG)
    assert "reply_editing = false" in answer.content and 'reply_editing = "auto"' in answer.content
    assert inference_tasks(atelier) == []


async def test_plain_reply_ping_is_not_a_request(atelier: Atelier) -> None:
    """Replying to a result with Discord's default reply ping, without writing the mention, starts nothing; nor
    does a mention that is not a reply. Neither gets any sign of life (typing, reaction, answer)."""
    fake, world = atelier.fake, atelier.world
    first = await atelier.slash("imagine", user_id=world.member_id, prompt="a quiet harbour")
    result = await result_of(first)
    await idle(atelier)
    typing_before = len(_typing(atelier))

    ping = await fake.user_message(world.channel_id, user_id=world.member_id, content="nice!", reply_to=result)
    hello = await fake.user_message(world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}> hello")
    # The bot handles messages in order, so once it has answered this (empty) request, it has seen the two above.
    marker = await fake.user_message(
        world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}>", reply_to=result
    )
    answer = await _reply_to(atelier, marker)
    await idle(atelier)

    assert answer.content == EMPTY_REPLY
    assert len(inference_tasks(atelier)) == 1
    assert len(_typing(atelier)) == typing_before + 1, "only the marker was treated as a request"
    assert [m for m in fake.channel_messages(world.channel_id) if m.referenced is ping or m.referenced is hello] == []
    assert ping.reactions == [] and hello.reactions == []


async def test_reply_to_a_result_reuses_its_images_model_and_size(atelier: Atelier) -> None:
    """A reply to one of the bot's results works without Message Content: the result's images (by Runware id)
    are the references, and its model and size are kept."""
    fake, world = atelier.fake, atelier.world
    first = await atelier.slash(
        "imagine", user_id=world.member_id, prompt="a castle", model="gpt-image-1", size="1536x1024"
    )
    result = await result_of(first)
    await idle(atelier)
    parent = task_for(atelier, "a castle")

    reply = await fake.user_message(
        world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}> add a dragon", reply_to=result
    )
    edited = await _reply_to(atelier, reply)
    await idle(atelier)

    task = task_for(atelier, "add a dragon")
    assert task["model"] == parent["model"] == "openai:1@1"
    assert (task["width"], task["height"]) == (1536, 1024)
    assert len(task["inputs"]["referenceImages"]) == 1
    assert atelier.runware.tasks_submitted("imageUpload") == [], "a result is referenced, never re-uploaded"
    assert image_size(edited.attachments[0].data) == (1536, 1024)
    assert f"/{result.id})" in embed_fields(edited)["Edit of"]
    assert QUEUED in [reaction for reaction in reply.reactions]


async def test_reply_above_the_threshold_asks_first_and_the_click_carries_the_result(atelier: Atelier) -> None:
    """A reply edit above the confirmation threshold is answered with Confirm/Cancel; after Confirm, the question
    becomes the job's status and then its result (through the click's interaction token)."""
    await atelier.restart(limits__confirm_above='"0.01"')
    fake, world = atelier.fake, atelier.world
    first = await atelier.slash("imagine", user_id=world.member_id, prompt="a garden")
    question_to_start = await first.wait_message(lambda m: "confirm" in m.content)
    confirm_id = next(c for c in question_to_start.button_custom_ids() if ":confirm:" in c)
    await fake.click_button(question_to_start, confirm_id, user_id=world.member_id)
    await fake.wait_until(lambda: bool(question_to_start.attachments), what="the first result")
    await idle(atelier)

    reply = await fake.user_message(
        world.channel_id,
        user_id=world.member_id,
        content=f"<@{fake.bot_user.id}> add a fountain",
        reply_to=question_to_start,
    )
    question = await _reply_to(atelier, reply)
    assert "$0.011" in question.content and len(inference_tasks(atelier)) == 1
    click = await fake.click_button(
        question, next(c for c in question.button_custom_ids() if ":confirm:" in c), user_id=world.member_id
    )
    await fake.wait_until(lambda: bool(question.attachments), timeout=10.0, what="the result in the question")
    await idle(atelier)

    assert click.ack_type == 7
    assert task_for(atelier, "add a fountain")["inputs"]["referenceImages"]
    assert embed_fields(question)["Requested by"] == f"<@{world.member_id}>"


async def test_a_confirmed_edit_runs_with_the_options_its_estimate_was_shown_for(atelier: Atelier) -> None:
    """An admin changing the server's defaults while an edit waits for Confirm does not change that edit: it runs
    with the options (and is held and charged the price) the member confirmed."""
    await atelier.restart(limits__confirm_above='"0.01"')
    fake, world = atelier.fake, atelier.world
    first = await atelier.slash("imagine", user_id=world.member_id, prompt="a pond")
    question_to_start = await first.wait_message(lambda m: "confirm" in m.content)
    confirm_id = next(c for c in question_to_start.button_custom_ids() if ":confirm:" in c)
    await fake.click_button(question_to_start, confirm_id, user_id=world.member_id)
    await fake.wait_until(lambda: bool(question_to_start.attachments), what="the first result")
    await idle(atelier)

    reply = await fake.user_message(
        world.channel_id,
        user_id=world.member_id,
        content=f"<@{fake.bot_user.id}> add ducks",
        reply_to=question_to_start,
    )
    question = await _reply_to(atelier, reply)
    assert "$0.011" in question.content
    await atelier.bot.services.server_options.change_defaults(
        world.guild_id, actor_id=world.admin_id, count=2, quality="high"
    )
    await fake.click_button(
        question, next(c for c in question.button_custom_ids() if ":confirm:" in c), user_id=world.member_id
    )
    await fake.wait_until(lambda: bool(question.attachments), timeout=10.0, what="the result in the question")
    await idle(atelier)

    task = task_for(atelier, "add ducks")
    assert (
        task.get("numberResults", 1) == 1
        and task["providerSettings"] == task_for(atelier, "a pond")["providerSettings"]
    )
    assert len(question.attachments) == 1
    assert await settled_total(atelier) == (2, 22_000), "each job charged the $0.011 shown"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(
            {"type": "gifv", "url": "https://tenor.com/view/cat", "thumbnail": {"url": TENOR, "proxy_url": PROXIED}},
            [PROXIED, TENOR],
            id="gifv-thumbnail",
        ),
        pytest.param({"type": "image", "url": LINKED, "thumbnail": {"url": LINKED}}, [LINKED], id="no-proxy-url"),
        pytest.param({"type": "rich", "image": {"url": BANNER, "proxy_url": PROXIED}}, [PROXIED, BANNER], id="rich"),
        pytest.param({"type": "rich", "thumbnail": {"url": BANNER, "proxy_url": PROXIED}}, [], id="rich-thumbnail"),
        pytest.param({"type": "article", "thumbnail": {"url": BANNER, "proxy_url": PROXIED}}, [], id="article"),
    ],
)
def test_an_embeds_picture_is_fetched_from_discords_copy(payload: dict[str, Any], expected: list[str]) -> None:
    """The picture of a rich embed is its image, of a picture or GIF preview its thumbnail (a page preview's or a
    rich embed's small corner thumbnail is not what the member means); Discord's `proxy_url` comes first."""
    assert embed_picture_addresses(discord.Embed.from_dict(payload)) == expected


def test_an_embed_showing_an_attachment_does_not_count_it_twice() -> None:
    """A bot's embed that shows its own attachment (`attachment://`) names it by its CDN and media addresses: the
    image is used once; an embed picture from elsewhere is still added."""
    cdn = "https://cdn.discordapp.com/attachments/1/2/card.png"
    media = "https://media.discordapp.net/attachments/1/2/card.png"
    attachment = discord.Attachment(
        data={
            "id": "2",
            "filename": "card.png",
            "size": 100,
            "url": f"{cdn}?ex=1&is=2&hm=3&",
            "proxy_url": f"{media}?ex=1&is=2&hm=3&",
            "content_type": "image/png",
            "width": 10,
            "height": 10,
        },
        state=SimpleNamespace(http=None),  # type: ignore[arg-type]  # nothing is downloaded here
    )
    embeds = [
        discord.Embed.from_dict({"type": "rich", "image": {"url": f"{cdn}?ex=9", "proxy_url": f"{media}?ex=9"}}),
        discord.Embed.from_dict({"type": "rich", "image": {"url": BANNER, "proxy_url": PROXIED}}),
    ]
    message = SimpleNamespace(attachments=[attachment], embeds=embeds)

    sources = message_images(message)  # type: ignore[arg-type]

    assert [source.url for source in sources] == [f"{cdn}?ex=1&is=2&hm=3&", PROXIED]
