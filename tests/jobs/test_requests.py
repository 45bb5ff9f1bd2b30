"""Requests as plain values: option defaults, fingerprints, and the delivery target stored with a job."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.discord.tokens import token_fresh
from bot.errors import InvalidRequestError
from bot.jobs.options import resolve_defaults
from bot.jobs.requests import DeliveryTarget, ReferenceSource
from bot.settings import DefaultsConfig
from bot.storage.rows import OptionDefaults
from tests.jobs.conftest import CHANNEL, Harness, make_request

CONFIG = DefaultsConfig(model=ModelName.GPT_IMAGE_1_MINI, quality=Quality.MEDIUM, format=OutputFormat.JPG, count=1)


def test_the_members_choice_beats_the_server_default_which_beats_the_config() -> None:
    """Member > server > config, option by option."""
    server = OptionDefaults(model=ModelName.GPT_IMAGE_1, size=Size.PORTRAIT, count=2)
    options = resolve_defaults(CONFIG, server, model="gpt-image-1.5", quality=None)
    assert options.model is ModelName.GPT_IMAGE_1_5
    assert options.size is Size.PORTRAIT and options.count == 2
    assert options.quality is Quality.MEDIUM and options.format is OutputFormat.JPG


def test_a_transparent_background_turns_a_defaulted_jpg_into_png_but_not_a_chosen_one() -> None:
    """jpg has no alpha: a default gives way; the member's explicit jpg is kept (the model rule then refuses it)."""
    assert resolve_defaults(CONFIG, background="transparent").format is OutputFormat.PNG
    assert resolve_defaults(CONFIG, background=Background.TRANSPARENT, format="jpg").format is OutputFormat.JPG


def test_an_explicit_jpg_turns_a_defaulted_transparent_background_into_auto() -> None:
    """The member asked for jpg and not for transparency: the default background gives way, not the member's format."""
    server = OptionDefaults(background=Background.TRANSPARENT)
    options = resolve_defaults(CONFIG, server, format="jpg")
    assert (options.format, options.background) == (OutputFormat.JPG, Background.AUTO)


def test_between_server_and_config_the_weaker_default_gives_way() -> None:
    """A server's transparent beats the config's jpg (format becomes png); a server's jpg beats the config's
    transparent (background becomes auto)."""
    transparent = resolve_defaults(CONFIG, OptionDefaults(background=Background.TRANSPARENT))
    assert (transparent.background, transparent.format) == (Background.TRANSPARENT, OutputFormat.PNG)
    jpg = resolve_defaults(
        CONFIG.model_copy(update={"background": Background.TRANSPARENT, "format": OutputFormat.PNG}),
        OptionDefaults(format=OutputFormat.JPG),
    )
    assert (jpg.background, jpg.format) == (Background.AUTO, OutputFormat.JPG)


def test_a_defaulted_count_is_held_to_the_limit_but_a_chosen_one_is_not() -> None:
    """Defaults never make a request the server refuses; the member's own count is left for admission to judge."""
    server = OptionDefaults(count=4)
    assert resolve_defaults(CONFIG, server, max_count=2).count == 2
    assert resolve_defaults(CONFIG, server, count=3, max_count=2).count == 3
    assert resolve_defaults(CONFIG, server).count == 4


def test_an_option_that_is_not_offered_is_refused() -> None:
    """Unknown values name the option and the choices."""
    with pytest.raises(InvalidRequestError, match="size '999x999' is not offered"):
        resolve_defaults(CONFIG, size="999x999")


def test_fingerprints_ignore_delivery_confirmation_and_signed_cdn_queries() -> None:
    """Same member, options and attachments: same fingerprint, whatever the token or the CDN signature."""
    first = make_request(
        references=(ReferenceSource.from_url("https://cdn.discordapp.com/attachments/1/2/a.png?ex=1"),)
    )
    second = replace(
        first,
        confirmed=True,
        delivery=DeliveryTarget(channel_id=9, interaction_token="other"),
        references=(ReferenceSource.from_url("https://cdn.discordapp.com/attachments/1/2/a.png?ex=2&hm=3"),),
    )
    assert first.fingerprint() == second.fingerprint()
    assert first.fingerprint() != replace(first, count=2).fingerprint()
    assert first.fingerprint() != replace(first, member_id=first.member_id + 1).fingerprint()
    assert first.fingerprint() != replace(first, references=()).fingerprint()


def test_a_reference_has_exactly_one_source() -> None:
    """url, data or image_uuid: one of them."""
    with pytest.raises(ValueError):
        ReferenceSource()
    with pytest.raises(ValueError):
        ReferenceSource(url="https://cdn.discordapp.com/x.png", image_uuid="abc")


async def test_the_delivery_target_is_stored_with_the_job(harness: Harness) -> None:
    """Token, expiry, reply target and attachment limit survive in the job row (for a restart)."""
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    target = DeliveryTarget(
        channel_id=CHANNEL,
        application_id=77,
        interaction_token="secret-token",
        token_expires_at=expires,
        reply_to_message_id=555,
        attachment_size_limit=8 * 1024 * 1024,
    )
    admission = await harness.service.admit(make_request(delivery=target))
    assert admission.job_id is not None
    job = await harness.job(admission.job_id)
    assert DeliveryTarget.from_job(job) == target
    # The Discord edge's freshness rule (a minute's margin) reads the stored expiry.
    assert token_fresh(target, datetime.now(UTC)) and not token_fresh(target, expires)
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert "secret-token" not in str(job.extras)
