"""`/imagine` and `/edit` end to end (fake Discord + fake Runware): what reaches Runware, what is posted, what is
charged, and how every refusal reaches only the requester with nothing spent."""

from __future__ import annotations

import asyncio
import base64
import gc
import itertools
import tracemalloc
from datetime import timedelta
from typing import Any

import aiohttp.payload
import pytest

from bot.billing.budgets import MemberOverride
from bot.catalog import MODEL_SPECS, ModelName, Size
from bot.clock import utc_now
from bot.discord.posting import ATTACH_FILES_MISSING, EMBED_LINKS_MISSING
from bot.discord.statuses import CANCELLED_IN_CHANNEL, HANDED_OVER, posting_text
from bot.money import format_usd
from bot.storage.rows import JobState
from cogs.generation.answers import DUPLICATE
from fakes.discord import FakeDiscordUsageError, FakeInteraction, FakeMessage, Permission
from fakes.runware import Fault
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import (
    animated_gif,
    failure_of,
    idle,
    image_size,
    inference_tasks,
    job_id_of,
    jpeg,
    nothing_spent,
    pixel,
    png,
    refused,
    result_of,
    settled_total,
    status,
    task_for,
)

CASES = [
    # model, size, quality, background, format
    ("gpt-image-1", "1024x1024", "low", "opaque", "jpg"),
    ("gpt-image-1", "1536x1024", "medium", "auto", "png"),
    ("gpt-image-1", "1024x1536", "high", "transparent", "webp"),
    ("gpt-image-1-mini", "1024x1024", "medium", "transparent", "png"),
    ("gpt-image-1-mini", "1536x1024", "high", "opaque", "webp"),
    ("gpt-image-1-mini", "1024x1536", "low", "auto", "jpg"),
    ("gpt-image-1.5", "1024x1024", "high", "auto", "webp"),
    ("gpt-image-1.5", "1536x1024", "low", "transparent", "png"),
    ("gpt-image-1.5", "1024x1536", "medium", "opaque", "jpg"),
]
"""Every model with every size, and every quality, background and format along the way."""

MAGIC = {"png": b"\x89PNG", "jpg": b"\xff\xd8\xff", "webp": b"RIFF"}


async def test_imagine_sends_each_model_and_size_and_posts_what_runware_made(atelier: Atelier) -> None:
    """Each model x size reaches Runware with the right AIR id, size, quality, background and format; the posted
    files decode to the requested size, and the card shows the cost Runware reported."""
    world = atelier.world
    await atelier.bot.services.budgets.set_member(world.guild_id, world.member_id, MemberOverride.unlimited())
    atelier.runware.cost_override = 0.0123  # not any table price: the card must show what Runware reported

    async def run(index: int, case: tuple[str, str, str, str, str]) -> None:
        model, size, quality, background, fmt = case
        prompt = f"case {index}: a lighthouse at dusk"
        interaction = await atelier.slash(
            "imagine",
            user_id=world.member_id,
            prompt=prompt,
            model=model,
            size=size,
            quality=quality,
            background=background,
            format=fmt,
        )
        message = await result_of(interaction)

        task = task_for(atelier, prompt)
        width, height = (int(part) for part in size.split("x"))
        assert task["model"] == MODEL_SPECS[ModelName(model)].air
        assert (task["width"], task["height"]) == (width, height)
        assert task["providerSettings"] == {"openai": {"quality": quality, "background": background}}
        assert task["outputFormat"] == fmt.upper()
        assert task["deliveryMethod"] == "async" and task["includeCost"] is True
        assert len(message.attachments) == 1
        assert message.attachments[0].data.startswith(MAGIC[fmt])
        assert image_size(message.attachments[0].data) == (width, height)
        fields = embed_fields(message)
        assert fields["Cost"] == "$0.0123"
        assert fields["Model"] == MODEL_SPECS[ModelName(model)].label
        assert fields["Size"].startswith(size) and fields["Quality"] == quality
        assert fields["Requested by"] == f"<@{world.member_id}>"
        assert fields["Remaining budget"] == "unlimited"
        assert prompt in message.embeds[0]["description"]
        job_id = job_id_of(message)
        assert message.button_custom_ids() == [f"atelier:{action}:{job_id}" for action in ("reroll", "edit", "delete")]

    await asyncio.gather(*(run(index, case) for index, case in enumerate(CASES)))
    await idle(atelier)

    assert len(inference_tasks(atelier)) == len(CASES)
    assert await settled_total(atelier) == (len(CASES), len(CASES) * 12_300)


async def test_imagine_defaults_come_from_the_config_and_the_status_precedes_the_result(atelier: Atelier) -> None:
    """Options left out come from the config's [defaults]; the public placeholder shows the status, then the result."""
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="a red fox in the snow")
    message = await result_of(interaction)
    await idle(atelier)

    task = task_for(atelier, "a red fox in the snow")
    assert task["model"] == "openai:1@2" and (task["width"], task["height"]) == (1024, 1024)
    assert task["providerSettings"]["openai"] == {"quality": "medium", "background": "auto"}
    assert task["outputFormat"] == "PNG" and task["numberResults"] == 1
    assert not interaction.ephemeral and interaction.ack_type == 5
    assert message is interaction.original_message()
    contents = [edit.get("content") for edit in message.edits]
    assert any(text and "job `" in text for text in contents[:-1]), contents
    assert message.content == ""
    fields = embed_fields(message)
    assert fields["Cost"] == "$0.011" and fields["Remaining budget"].startswith("$0.989")


async def test_imagine_with_references_uploads_them_in_order(atelier: Atelier) -> None:
    """Reference attachments are fetched from Discord's CDN, checked, uploaded, and sent as inputs.referenceImages;
    an animated GIF is used by its first frame."""
    fake = atelier.fake
    first = fake.store_blob(png(60, 40, (255, 0, 0)), "first.png")
    second = fake.store_blob(jpeg(30, 50), "second.jpg")
    gif = fake.store_blob(animated_gif(40, 30), "moving.gif")

    interaction = await atelier.slash(
        "imagine",
        user_id=atelier.world.member_id,
        prompt="combine these three",
        reference=first,
        reference2=second,
        reference3=gif,
    )
    await result_of(interaction)

    references = task_for(atelier, "combine these three")["inputs"]["referenceImages"]
    assert len(references) == 3
    stored = [atelier.runware.image(uuid) for uuid in references]
    assert all(image is not None for image in stored)
    assert [image_size(image.data) for image in stored if image] == [(60, 40), (30, 50), (40, 30)]
    uploads = atelier.runware.tasks_submitted("imageUpload")
    assert len(uploads) == 3
    gif_upload = uploads[2]["image"]
    assert not gif_upload.startswith("data:image/gif")  # re-encoded from the first frame
    frame = base64.b64decode(gif_upload.split(",", 1)[1])
    assert image_size(frame) == (40, 30)
    red, _, blue = pixel(frame, 5, 5)
    assert red > 200 and blue < 50, "the first (red) frame is the one used"


async def test_edit_sends_the_uploaded_images_as_references(atelier: Atelier) -> None:
    """/edit image prompt image2 …: both uploads become inputs.referenceImages, with the chosen options."""
    fake = atelier.fake
    image = fake.store_blob(png(80, 80), "cat.png")
    image2 = fake.store_blob(png(40, 40, (0, 200, 0)), "hat.png")

    interaction = await atelier.slash(
        "edit",
        user_id=atelier.world.member_id,
        image=image,
        prompt="put the hat on the cat",
        image2=image2,
        size="1024x1536",
        model="gpt-image-1.5",
    )
    message = await result_of(interaction)

    task = task_for(atelier, "put the hat on the cat")
    assert len(task["inputs"]["referenceImages"]) == 2
    assert task["model"] == "openai:4@1" and (task["width"], task["height"]) == (1024, 1536)
    assert image_size(message.attachments[0].data) == (1024, 1536)


async def test_ten_concurrent_requests_with_room_for_four(atelier: Atelier) -> None:
    """10 concurrent /imagine from a member with room for 4: exactly 4 paid tasks, 6 clear private refusals, and the
    spend equals what the ledger holds and what Runware billed."""
    world = atelier.world
    price = 11_000  # gpt-image-1-mini, medium, 1024x1024
    await atelier.bot.services.budgets.set_member(world.guild_id, world.member_id, MemberOverride.of_amount(4 * price))

    interactions = await asyncio.gather(
        *(atelier.slash("imagine", user_id=world.member_id, prompt=f"a fox, take {n}") for n in range(10))
    )
    outcomes = await asyncio.gather(
        *(
            # The request that reaches 80% of the allowance also gets a private heads-up: not an outcome.
            interaction.wait_message(
                lambda m: bool(m.attachments) or (m.ephemeral and not m.content.startswith("⚠️")), timeout=15.0
            )
            for interaction in interactions
        )
    )
    await idle(atelier)

    posted = [message for message in outcomes if message.attachments]
    refused = [message for message in outcomes if message.ephemeral]
    assert (len(posted), len(refused)) == (4, 6)
    for message in refused:
        assert message.content.startswith("This needs about $0.011 but you have $0.00 left; your budget resets <t:")
    assert len(atelier.runware.paid_tasks) == 4
    assert len(inference_tasks(atelier)) == 4
    count, total = await settled_total(atelier)
    assert (count, total) == (4, atelier.runware.total_cost_micros) == (4, 4 * price)
    budget = await status(atelier, world.member_id)
    assert (budget.spent, budget.reserved, budget.remaining) == (4 * price, 0, 0)
    assert all(embed_fields(message)["Cost"] == "$0.011" for message in posted)


async def test_confirmation_above_the_threshold(atelier: Atelier) -> None:
    """Above the confirmation threshold the estimate is shown with Confirm/Cancel; nothing is spent before Confirm,
    only the requester can answer, Cancel drops it, Confirm runs it in the same message."""
    await atelier.restart(limits__confirm_above='"0.01"')
    world = atelier.world

    cancelled = await atelier.slash("imagine", user_id=world.member_id, prompt="an expensive fox")
    question = await cancelled.wait_message(lambda m: "confirm" in m.content)
    assert "$0.011" in question.content and not question.ephemeral
    assert inference_tasks(atelier) == []
    abort_id = next(custom_id for custom_id in question.button_custom_ids() if ":abort:" in custom_id)
    await atelier.fake.click_button(question, abort_id, user_id=world.member_id)
    await atelier.fake.wait_until(lambda: "Cancelled" in question.content, what="the cancellation")
    await nothing_spent(atelier, world.member_id)

    confirmed = await atelier.slash("imagine", user_id=world.member_id, prompt="a confirmed fox")
    question = await confirmed.wait_message(lambda m: "confirm" in m.content)
    confirm_id = next(custom_id for custom_id in question.button_custom_ids() if ":confirm:" in custom_id)
    stranger = await atelier.fake.click_button(question, confirm_id, user_id=world.other_member_id)
    refusal = await stranger.wait_message()
    assert refusal.ephemeral and "Only <@" in refusal.content
    assert inference_tasks(atelier) == []

    click = await atelier.fake.click_button(question, confirm_id, user_id=world.member_id)
    await atelier.fake.wait_until(lambda: bool(question.attachments), what="the result in the question's message")
    assert click.ack_type == 7
    assert len(inference_tasks(atelier)) == 1
    await idle(atelier)
    assert await settled_total(atelier) == (1, 11_000)


async def test_bad_input_is_refused_privately_and_costs_nothing(atelier: Atelier) -> None:
    """A text file, a 30 MB attachment, a corrupt PNG, too high a count, too long a prompt: each refused with a
    specific private sentence before anything is reserved or sent to Runware."""
    await atelier.restart(limits__max_count="2", limits__max_prompt_chars="100")
    fake, world = atelier.fake, atelier.world
    text_file = fake.store_blob(b"just some notes, not an image\n", "notes.txt")
    huge = fake.store_blob(png() + b"\0" * (30 * 1024 * 1024), "huge.png")
    corrupt = fake.store_blob(png(300, 300)[:120], "broken.png")

    cases = [
        ({"reference": text_file}, "The file is not an image (PNG, JPEG, WEBP or GIF expected)."),
        ({"reference": huge}, "That attachment is 30.0 MB; the limit is 25 MB."),
        ({"reference": corrupt}, "The image is corrupt or truncated and cannot be decoded."),
        ({"count": 3}, "count must be between 1 and 2 on this server (got 3)."),
        ({"prompt": "x" * 150}, "The prompt has 150 characters; the limit is 100."),
    ]
    for options, sentence in cases:
        message = await refused(atelier, "imagine", user_id=world.member_id, **{"prompt": "a fox", **options})
        assert message.content == sentence, options

    assert not any(path.endswith("/huge.png") for path in fake.cdn_hits), "the 30 MB file was never downloaded"
    assert inference_tasks(atelier) == [] and atelier.runware.tasks_submitted("imageUpload") == []
    await nothing_spent(atelier, world.member_id)
    # The public placeholders were removed: nothing is left in the channel but the private refusals.
    assert [m for m in fake.channel_messages(world.channel_id) if not m.ephemeral and not m.deleted] == []


async def test_a_33000_character_prompt_cannot_even_be_sent(atelier: Atelier) -> None:
    """Discord caps a slash command's text option at 6000 characters, and /imagine declares it: a 33,000-character
    prompt is refused by Discord itself (the fake enforces the synced definition); nothing reaches the bot."""
    prompt_option = next(
        option
        for command in atelier.fake.commands[None]
        if command["name"] == "imagine"
        for option in command["options"]
        if option["name"] == "prompt"
    )
    assert prompt_option["max_length"] == 6000 and prompt_option["required"] is True

    with pytest.raises(FakeDiscordUsageError, match=r"1\.\.6000"):
        await atelier.fake.invoke_slash("imagine", user_id=atelier.world.member_id, options={"prompt": "x" * 33_000})
    assert inference_tasks(atelier) == []


@pytest.mark.parametrize(
    ("fault", "sentence"),
    [
        (Fault.CONTENT_POLICY, "Runware refused this request under its content policy. Nothing was charged."),
        (
            Fault.INSUFFICIENT_CREDITS,
            "The bot owner's Runware account is out of credits, so no images can be generated right now. "
            "Nothing was charged to your budget.",
        ),
        (
            Fault.TASK_TIMEOUT,
            "The image took too long to generate and was abandoned. Please try again. Nothing was charged.",
        ),
    ],
)
async def test_runware_failures_are_explained_and_cost_nothing(atelier: Atelier, fault: Fault, sentence: str) -> None:
    """A content-policy refusal, an empty owner account, a provider timeout: the status says which, nothing is
    charged and the hold is released."""
    atelier.runware.fail_next(fault, task_type="imageInference")
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="a fox that fails")

    message = await failure_of(interaction)
    await idle(atelier)

    assert message.content == f"❌ <@{atelier.world.member_id}> {sentence}"
    assert message.attachments == [] and message.components == []
    await nothing_spent(atelier, atelier.world.member_id)


@pytest.mark.parametrize(
    ("denied", "sentence"),
    [(Permission.ATTACH_FILES, ATTACH_FILES_MISSING), (Permission.EMBED_LINKS, EMBED_LINKS_MISSING)],
)
async def test_missing_channel_permissions_are_refused_before_spending(
    atelier: Atelier, denied: Permission, sentence: str
) -> None:
    """In a channel where the bot cannot attach files or embed links, /imagine is refused privately, for free."""
    fake, world = atelier.fake, atelier.world
    channel = fake.add_channel(
        world.guild_id, name="no-uploads", permission_overwrites=[{"id": world.bot_role_id, "deny": int(denied)}]
    )
    await fake.announce_guild(world.guild_id)

    interaction = await fake.invoke_slash(
        "imagine", user_id=world.member_id, guild_id=world.guild_id, channel_id=channel.id, options={"prompt": "x y"}
    )
    message = await interaction.wait_message(lambda m: m.ephemeral)

    assert message.content == sentence
    assert inference_tasks(atelier) == []
    await nothing_spent(atelier, world.member_id)


async def test_exhausted_budget_is_refused_with_the_numbers(atelier: Atelier) -> None:
    """A member with no budget left is told how much is needed, how much is left, and when it resets."""
    world = atelier.world
    await atelier.bot.services.budgets.set_member(world.guild_id, world.member_id, MemberOverride.of_amount(0))

    message = await refused(atelier, "imagine", user_id=world.member_id, prompt="a fox")

    assert message.content.startswith("This needs about $0.011 but you have $0.00 left; your budget resets <t:")
    assert inference_tasks(atelier) == []
    await nothing_spent(atelier, world.member_id)


async def test_a_job_outliving_its_token_is_delivered_as_a_channel_reply(atelier: Atelier) -> None:
    """A job still running when the 15-minute token runs out is posted as a reply in the channel that mentions the
    requester (Discord answers 401/50027 to the old token; the bot falls back and never retries it)."""
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 0.6
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a slow fox")
    placeholder = interaction.original_message()
    assert placeholder is not None
    await fake.wait_until(lambda: inference_tasks(atelier), what="the Runware submission")
    fake.advance_time(15 * 60 + 1)

    reply = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(world.channel_id) if m.attachments), None),
        timeout=10.0,
        what="the result in the channel",
    )
    await idle(atelier)

    assert reply.interaction_id is None and reply.referenced is placeholder
    assert reply.content == f"<@{world.member_id}>"
    assert [user.id for user in reply.mentions] == [world.member_id]
    assert embed_fields(reply)["Cost"] == "$0.011"
    assert reply.button_custom_ids()[0].startswith("atelier:reroll:")
    expired = [error for error in fake.errors if error.code == 50027]
    assert len(expired) == 1, "the dead token is tried once, then never again"
    for error in expired:
        fake.errors.remove(error)
    assert await settled_total(atelier) == (1, 11_000)


async def test_a_token_about_to_expire_is_not_used(atelier: Atelier) -> None:
    """When the bot's own clock says fewer than 60 s are left on the token, it replies in the channel at once
    instead of trying the token."""
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 0.3
    cog = atelier.bot.get_cog("RequestFlow")  # the extension's own module object: the bot loaded it, not this test
    assert cog is not None
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a fox at the deadline")
    await fake.wait_until(lambda: inference_tasks(atelier), what="the Runware submission")
    cog.delivery.clock = lambda: utc_now() + timedelta(minutes=14, seconds=30)
    fake.advance_time(14 * 60 + 30)

    reply = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(world.channel_id) if m.attachments), None),
        timeout=10.0,
        what="the result in the channel",
    )

    assert reply.referenced is interaction.original_message()
    assert [error for error in fake.errors if error.code == 50027] == []
    assert format_usd(11_000) in embed_fields(reply)["Cost"]
    assert Size.SQUARE.value in embed_fields(reply)["Size"]


async def test_progress_shows_the_queue_position_then_the_elapsed_time(atelier: Atelier) -> None:
    """While a job waits its status shows its place in the queue; once it runs, the elapsed time (one edit per
    `progress_edit_seconds` at most); the result then replaces the status in the same message."""
    await atelier.restart(limits__per_member_concurrency="1", limits__progress_edit_seconds="1")
    world = atelier.world
    atelier.runware.latency = 1.6
    first = await atelier.slash("imagine", user_id=world.member_id, prompt="the first slow fox")
    second = await atelier.slash("imagine", user_id=world.member_id, prompt="the second slow fox")

    results = [await result_of(first), await result_of(second)]
    await idle(atelier)

    waiting = results[1]
    contents = [edit["content"] for edit in waiting.edits if edit.get("content")]
    assert contents[0].startswith("⏳ Queued: position 1 · estimate ~$0.011 · job `")
    assert any(text.startswith("🎨 Generating… (") for text in contents), contents
    assert waiting.attachments and waiting.content == ""
    for interaction in (first, second):
        # The status shown at admission, then the progress edits: never two within one interval of each other.
        # (The bot spaces them by at least 1 s on its clock; they arrive here with a little jitter.)
        statuses = [r for r in interaction.responses if r.kind == "edit" and r.ok and not r.files]
        assert len(statuses) >= (2 if interaction is second else 1), statuses  # the waiting one: queued, then running
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(statuses)]
        assert all(gap >= 0.8 for gap in gaps), f"progress edits {gaps} s apart; at most one per second is allowed"
        results_posted = [r for r in interaction.responses if r.kind == "edit" and r.files]
        assert len(results_posted) == 1 and results_posted[0].at > statuses[-1].at


async def test_thinking_stays_until_status_after_seconds_so_a_quick_job_gets_one_edit(atelier: Atelier) -> None:
    """With `status_after_seconds` (2 s by default) "thinking…" stays that long: a job done sooner gets a single edit,
    its result; a job still running then gets its status with the Cancel button, then the result in place."""
    await atelier.restart(limits__status_after_seconds="1.5", limits__progress_edit_seconds="10")
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 0.1
    quick = await atelier.slash("imagine", user_id=world.member_id, prompt="a quick fox")
    await result_of(quick)
    edits = [r for r in quick.responses if r.kind == "edit"]
    assert len(edits) == 1 and edits[0].files, f"the result is the only edit of a quick job: {edits}"

    atelier.runware.latency = 3.0
    slow = await atelier.slash("imagine", user_id=world.member_id, prompt="a slow fox")
    placeholder = slow.original_message()
    assert placeholder is not None
    await fake.wait_until(lambda: placeholder.button_custom_ids() != [], what="the slow job's Cancel button")
    statuses = [r for r in slow.responses if r.kind == "edit" and r.ok and not r.files]
    assert slow.dispatched_at is not None and len(statuses) == 1
    assert statuses[0].at - slow.dispatched_at >= 1.4, "the status waits for status_after_seconds"
    assert placeholder.content.startswith("🎨 Generating… (")
    message = await result_of(slow)
    await idle(atelier)
    assert message is placeholder and message.attachments and message.components
    assert [r for r in slow.responses if r.kind == "edit" and not r.files] == statuses, "no status after it"
    assert await settled_total(atelier) == (2, 2 * 11_000)


async def test_permission_lost_before_delivery_fails_the_job_without_charge(atelier: Atelier) -> None:
    """If the bot loses Attach Files while the job runs, the job fails with that reason and nothing is charged."""
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 0.5
    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a fox nobody will see")
    await fake.wait_until(lambda: inference_tasks(atelier), what="the Runware submission")
    channel = fake.channel(world.channel_id)
    channel.permission_overwrites.append(
        {"id": world.bot_role_id, "type": 0, "allow": 0, "deny": int(Permission.ATTACH_FILES)}
    )
    await fake.announce_guild(world.guild_id)

    message = await failure_of(interaction)
    await idle(atelier)

    assert message.content == f"❌ <@{world.member_id}> {ATTACH_FILES_MISSING}"
    await nothing_spent(atelier, world.member_id)


@pytest.mark.parametrize(
    ("limit", "downscaled"),
    [pytest.param(1024 * 1024, False, id="re-encoded"), pytest.param(60_000, True, id="downscaled")],
)
async def test_a_result_over_the_upload_limit_is_made_to_fit(atelier: Atelier, limit: int, downscaled: bool) -> None:
    """A result larger than the interaction's attachment_size_limit is re-encoded (and only if that is not enough,
    downscaled) and posted: Discord never answers 413, and the member is charged as usual."""
    fake, world = atelier.fake, atelier.world
    fake.attachment_size_limit = limit  # what the interaction says, and what the fake enforces per file
    atelier.runware.photo_like = True  # a 1024x1024 PNG of about 1.5 MB, like real GPT Image output

    interaction = await atelier.slash("imagine", user_id=world.member_id, prompt="a grainy photo of a harbour")
    message = await result_of(interaction, timeout=20.0)
    await idle(atelier)

    assert interaction.payload["attachment_size_limit"] == limit
    made = atelier.runware.image(atelier.runware.downloads[0])
    assert made is not None and len(made.data) > 1024 * 1024
    [posted] = message.attachments
    assert len(posted.data) <= limit
    width, height = image_size(posted.data)
    if downscaled:
        assert width == height < 1024
    else:
        assert (width, height) == (1024, 1024)
    assert posted.data.startswith(MAGIC["jpg"]) and posted.filename.endswith(".jpg")
    assert [error for error in fake.errors if error.status == 413] == []
    assert await settled_total(atelier) == (1, 11_000)


async def test_imagine_count_4_posts_four_images_and_charges_the_reported_total_once(atelier: Atelier) -> None:
    """/imagine count:4 posts four files, each decoding to the requested size, under one card that shows the total
    Runware reported; the ledger charges that total once."""
    world = atelier.world
    atelier.runware.cost_override = 0.0123

    interaction = await atelier.slash(
        "imagine", user_id=world.member_id, prompt="four foxes", count=4, size="1536x1024"
    )
    message = await result_of(interaction)
    await idle(atelier)

    assert task_for(atelier, "four foxes")["numberResults"] == 4
    assert len(message.attachments) == 4
    assert [image_size(blob.data) for blob in message.attachments] == [(1536, 1024)] * 4
    assert len({blob.data for blob in message.attachments}) == 4, "four different images"
    assert atelier.runware.total_cost_micros == 4 * 12_300
    assert embed_fields(message)["Cost"] == format_usd(4 * 12_300) == "$0.0492"
    assert await settled_total(atelier) == (1, 4 * 12_300)
    budget = await status(atelier, world.member_id)
    assert (budget.spent, budget.reserved) == (4 * 12_300, 0)


async def test_identical_requests_in_the_duplicate_window_collapse_into_one_job(atelier: Atelier) -> None:
    """Two identical /imagine from one member at once make one job: one Runware task, one charge; the second is
    told privately that the first (named by its job id) is on its way, and its public placeholder goes."""
    world = atelier.world

    interactions = await asyncio.gather(
        *(atelier.slash("imagine", user_id=world.member_id, prompt="one fox, asked twice") for _ in range(2))
    )
    outcomes = await asyncio.gather(
        *(interaction.wait_message(lambda m: bool(m.attachments) or m.ephemeral) for interaction in interactions)
    )
    await idle(atelier)

    [posted] = [message for message in outcomes if message.attachments]
    [answer] = [message for message in outcomes if message.ephemeral]
    assert answer.content == DUPLICATE.format(job_id=job_id_of(posted))
    placeholder = interactions[outcomes.index(answer)].original_message()
    assert placeholder is not None and placeholder.deleted
    assert len(inference_tasks(atelier)) == 1 and len(atelier.runware.paid_tasks) == 1
    assert await settled_total(atelier) == (1, 11_000)


HANDOVER_DUE = timedelta(minutes=13, seconds=40)
"""How far to move the delivery's clock for a status to be due for handover: 80 s left, 20 s before the cutoff."""


async def for_handovers(atelier: Atelier, *, latency: float, progress_edit_seconds: str = "1") -> Any:
    """Restart with a progress edit every `progress_edit_seconds`, have the bot look for statuses to hand over every
    0.1 s, and make Runware take `latency` s; return the RequestFlow cog (the extension the bot loaded, not a module
    this test imported)."""
    await atelier.restart(limits__progress_edit_seconds=progress_edit_seconds)
    cog = atelier.bot.get_cog("RequestFlow")
    assert cog is not None
    cog.delivery.handover_check_seconds = 0.1
    atelier.runware.latency = latency
    return cog


async def started(atelier: Atelier, prompt: str) -> tuple[FakeInteraction, FakeMessage, str]:
    """Run `/imagine` as the member and wait for its status's Cancel button: (interaction, status, job id)."""
    interaction = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt=prompt)
    message = interaction.original_message()
    assert message is not None
    await atelier.fake.wait_until(lambda: message.button_custom_ids() != [], what="the Cancel button")
    [cancel] = message.button_custom_ids()
    assert cancel.startswith("atelier:cancel:"), cancel
    return interaction, message, cancel.rsplit(":", 1)[1]


async def cancel_in_queue(atelier: Atelier, job_id: str) -> FakeMessage:
    """Cancel the job with its button in the member's `/queue` and wait until the queue says so; return the queue."""
    queue = await atelier.answer("queue", user_id=atelier.world.member_id)
    await atelier.fake.click_button(queue, f"atelier:cancel:{job_id}", user_id=atelier.world.member_id)
    await atelier.fake.wait_until(lambda: "Cancelled job" in queue.content, what="the cancellation in /queue")
    return queue


async def test_a_status_is_handed_over_before_its_token_stops_working(atelier: Atelier) -> None:
    """Shortly before the token stops being used, the status loses its Cancel button (it could not be removed
    later) and says the result will come as a reply in the channel and /queue can still cancel it; no later progress
    edit brings the button back, and the result is that reply."""
    fake, world = atelier.fake, atelier.world
    cog = await for_handovers(atelier, latency=2.5)  # progress edits are due (every second) after the handover
    _, status, job_id = await started(atelier, "a fox that takes its time")

    cog.delivery.clock = lambda: utc_now() + HANDOVER_DUE
    await fake.wait_until(lambda: not status.components, what="the status handed over")
    assert status.content == HANDED_OVER.format(job_id=job_id)
    assert "reply in this channel" in status.content and "`/queue`" in status.content
    queue = await atelier.answer("queue", user_id=world.member_id)
    assert f"atelier:cancel:{job_id}" in queue.button_custom_ids(), "/queue can still cancel it"

    reply = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(world.channel_id) if m.attachments), None),
        timeout=10.0,
        what="the result in the channel",
    )
    await idle(atelier)

    assert reply.referenced is status and reply.content == f"<@{world.member_id}>"
    assert status.components == [] and status.content == HANDED_OVER.format(job_id=job_id)
    handed_over = HANDED_OVER.format(job_id=job_id)
    contents = [edit.get("content") for edit in status.edits]
    assert contents[contents.index(handed_over) :] == [handed_over], f"no edit after the handover: {contents}"
    assert status.attachments == [], "the result is the reply, as the status said"
    assert [error for error in fake.errors if error.code == 50027] == []
    assert await settled_total(atelier) == (1, 11_000)


async def test_a_job_cancelled_after_its_handover_says_so_in_the_channel(atelier: Atelier) -> None:
    """A status handed over to the channel promised a result there; once its token can no longer be used, cancelling
    the job in /queue replies to that status (mentioning no one) that it was cancelled and nothing was charged, and
    no result follows."""
    fake, world = atelier.fake, atelier.world
    cog = await for_handovers(atelier, latency=6.0)
    _, status_message, job_id = await started(atelier, "a fox that never comes")
    cog.delivery.clock = lambda: utc_now() + HANDOVER_DUE
    await fake.wait_until(lambda: not status_message.components, what="the status handed over")

    cog.delivery.clock = lambda: utc_now() + timedelta(minutes=14, seconds=10)  # the token is no longer used
    await cancel_in_queue(atelier, job_id)
    reply = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(world.channel_id) if m.referenced is status_message), None),
        what="the cancellation in the channel",
    )
    await idle(atelier)

    assert reply.content == CANCELLED_IN_CHANNEL.format(job_id=job_id, who="its requester")
    assert "nothing was charged" in reply.content and reply.components == []
    [sent] = [r for r in fake.requests if r.method == "POST" and r.json and r.json.get("content") == reply.content]
    assert sent.json["allowed_mentions"] == {"parse": []}, "it pings no one (a reply pings its author only if asked)"
    assert status_message.content == HANDED_OVER.format(job_id=job_id), "the status could not be edited any more"
    job = await atelier.bot.services.generation.get_job(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    assert [m for m in fake.channel_messages(world.channel_id) if m.attachments] == []
    await nothing_spent(atelier, world.member_id)


async def test_a_job_being_posted_shows_so_without_its_cancel_button(atelier: Atelier) -> None:
    """Once a job's images are made it can no longer be cancelled: while it waits for its delivery turn its status
    says (once) that the images are being posted, and the Cancel button (which could only answer "too late") is
    taken off the message. Both jobs are then posted and charged once."""
    await atelier.restart(limits__delivery_concurrency="1", limits__progress_edit_seconds="1")
    fake, world = atelier.fake, atelier.world
    atelier.runware.latency = 1.0
    first = await atelier.slash("imagine", user_id=world.member_id, prompt="the fox posted first")
    second = await atelier.slash("imagine", user_id=world.member_id, prompt="the fox posted second")
    # The first job's edits wait out two rate limits, so it holds the only delivery slot while the second is made.
    # (5 s each: room, on a loaded machine, for the second job's status to reach "being posted" meanwhile.)
    fake.plan_429("PATCH", rf"/webhooks/\d+/{first.token}/messages/@original$", retry_after=5.0, times=2)
    second_status = second.original_message()
    assert second_status is not None
    await fake.wait_until(lambda: second_status.button_custom_ids() != [], what="the second job's Cancel button")
    job_id = second_status.button_custom_ids()[0].rsplit(":", 1)[1]

    await fake.wait_until(
        lambda: second_status.content == posting_text(job_id), timeout=15.0, what="the second job being posted"
    )
    assert second_status.components == []
    assert not second_status.attachments, "it is shown while the job waits for its turn, before its images"

    results = [await result_of(first, timeout=30.0), await result_of(second, timeout=30.0)]
    await idle(atelier)
    posting = [edit for edit in second_status.edits if edit.get("content") == posting_text(job_id)]
    assert len(posting) == 1, f"'being posted' is said once: {second_status.edits}"
    assert [len(message.attachments) for message in results] == [1, 1]
    assert len([r for r in fake.requests if r.status == 429 and first.token in r.path]) == 2
    assert await settled_total(atelier) == (2, 22_000)
    assert len(inference_tasks(atelier)) == 2 and len(atelier.runware.paid_tasks) == 2


async def test_one_jobs_held_up_status_does_not_delay_another_jobs_handover(atelier: Atelier) -> None:
    """Job A's progress edit waits out a rate limit (holding A's message) when both statuses are due for handover:
    B is handed over at once, A once its wait is over; each loses its Cancel button."""
    fake = atelier.fake
    cog = await for_handovers(atelier, latency=12.0)
    statuses = [await started(atelier, prompt) for prompt in ("fox A", "fox B")]
    (first, first_status, _), (_, second_status, _) = statuses

    start = len(fake.requests)
    fake.plan_429("PATCH", rf"/webhooks/\d+/{first.token}/messages/@original$", retry_after=4.0)
    await fake.wait_for_request(lambda r: r.status == 429 and first.token in r.path, after=start)
    cog.delivery.clock = lambda: utc_now() + HANDOVER_DUE
    await fake.wait_until(lambda: not second_status.components, timeout=3.0, what="B handed over")
    assert first_status.button_custom_ids() != [], "A's handover waits for its held-up edit, B's did not"
    await fake.wait_until(lambda: not first_status.components, timeout=10.0, what="A handed over")

    for _, message, job_id in statuses:
        assert message.content == HANDED_OVER.format(job_id=job_id)
    for _, _, job_id in statuses:  # cancel both rather than wait for Runware
        await cancel_in_queue(atelier, job_id)
    await idle(atelier)


async def test_a_handover_that_discord_refuses_is_tried_again(atelier: Atelier) -> None:
    """The handover edit fails (Discord answers 400): the job does not count as handed over, and a later round hands
    it over (its Cancel button goes) while the token still works."""
    fake = atelier.fake
    cog = await for_handovers(atelier, latency=6.0, progress_edit_seconds="60")  # the handover edits are the only ones
    interaction, status_message, job_id = await started(atelier, "a fox behind an outage")

    start = len(fake.requests)
    fake.plan_error("PATCH", rf"/webhooks/\d+/{interaction.token}/messages/@original$", 400)
    cog.delivery.clock = lambda: utc_now() + HANDOVER_DUE
    await fake.wait_until(lambda: not status_message.components, what="the status handed over")

    edits = [r.status for r in fake.requests[start:] if r.method == "PATCH" and interaction.token in r.path]
    assert edits == [400, 200]
    assert status_message.content == HANDED_OVER.format(job_id=job_id)
    await cancel_in_queue(atelier, job_id)  # rather than wait for Runware
    await fake.wait_until(lambda: "Cancelled" in status_message.content, what="the cancellation on the status")
    await idle(atelier)


async def test_posting_a_result_leaves_no_copy_of_its_images_behind(atelier: Atelier) -> None:
    """aiohttp copies each image once to upload it; those copies are freed when the post is done, not at some later
    garbage collection (with results of 1.5 MB, copies waiting for one made the bot's memory grow under load)."""
    atelier.runware.photo_like = True
    gc.disable()
    tracemalloc.start()
    try:
        interaction = await atelier.slash(
            "imagine", user_id=atelier.world.member_id, prompt="four grainy foxes", count=4
        )
        message = await result_of(interaction, timeout=20.0)
        await idle(atelier)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        gc.enable()

    assert len(message.attachments) == 4 and all(len(blob.data) > 1024 * 1024 for blob in message.attachments)
    upload_copies = snapshot.filter_traces([tracemalloc.Filter(True, aiohttp.payload.__file__)])
    assert sum(stat.size for stat in upload_copies.statistics("filename")) < 256 * 1024
