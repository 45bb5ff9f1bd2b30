"""A server's generation settings: its own value beats the config file's, bad changes change nothing, and what a
member's request resolves to follows member, then server, then config."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.jobs.options import TRANSPARENT_JPG, ResolvedOptions, ServerLimits, ServerOptions, Source
from bot.settings import AppConfig, load_app_config
from bot.storage.database import Database
from bot.storage.servers import ServerOptionsRepository

CONFIG = load_app_config(Path(__file__).resolve().parents[2] / "config" / "atelier.toml")
GUILD = 111_111_111_111_111_111
OTHER_GUILD = 999_999_999_999_999_999
ADMIN = 666_666_666_666_666_666
AT = datetime(2025, 5, 2, 8, 0, tzinfo=UTC)
CONFIG_OPTIONS = ResolvedOptions(
    model=ModelName.GPT_IMAGE_1_MINI,
    size=Size.SQUARE,
    quality=Quality.MEDIUM,
    background=Background.AUTO,
    format=OutputFormat.PNG,
    count=1,
)
"""What config/atelier.toml's [defaults] give (checked by the first test)."""


def config_with(*, defaults: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> AppConfig:
    """The project's config with some [defaults] and [limits] changed."""
    return CONFIG.model_copy(
        update={
            "defaults": CONFIG.defaults.model_copy(update=defaults or {}),
            "limits": CONFIG.limits.model_copy(update=limits or {}),
        }
    )


@pytest.fixture
def settings(db: Database) -> ServerOptions:
    """The service on the project's config, with a fixed clock."""
    return ServerOptions(db, CONFIG, clock=lambda: AT)


async def test_a_server_without_settings_gets_the_config_files(settings: ServerOptions) -> None:
    """No row: every default and limit is the config file's, and says so."""
    effective = await settings.effective(GUILD)

    assert effective.stored is None
    assert effective.options == CONFIG_OPTIONS
    assert effective.limits == ServerLimits(CONFIG.limits.max_count, CONFIG.limits.confirm_above)
    assert effective.limits == ServerLimits(4, 500_000)
    assert {setting.source for setting in (effective.model, effective.count, effective.confirm_above)} == {
        Source.CONFIG
    }
    assert await settings.resolve(GUILD) == CONFIG_OPTIONS


async def test_server_defaults_beat_the_config_and_members_beat_both(settings: ServerOptions) -> None:
    """After an admin sets some defaults, those options come from the server, the rest from the config, and a
    member's own choice still wins; other servers are untouched."""
    changed = await settings.change_defaults(
        GUILD, actor_id=ADMIN, model="gpt-image-1.5", size=Size.LANDSCAPE, quality="LOW", count=2
    )

    assert changed.options == ResolvedOptions(
        ModelName.GPT_IMAGE_1_5, Size.LANDSCAPE, Quality.LOW, Background.AUTO, OutputFormat.PNG, 2
    )
    assert (changed.model.source, changed.format.source) == (Source.SERVER, Source.CONFIG)
    assert changed.stored is not None
    assert (changed.stored.defaults_changed_at, changed.stored.defaults_changed_by) == (AT, ADMIN)
    chosen = await settings.resolve(GUILD, model="gpt-image-1", count=1)
    assert (chosen.model, chosen.size, chosen.count) == (ModelName.GPT_IMAGE_1, Size.LANDSCAPE, 1)
    assert await settings.resolve(OTHER_GUILD) == CONFIG_OPTIONS


async def test_later_changes_keep_earlier_defaults_and_reset_clears_them(settings: ServerOptions) -> None:
    """Each change sets only what it names; reset clears all first, then sets what it names."""
    await settings.change_defaults(GUILD, actor_id=ADMIN, model="gpt-image-1", format="webp")
    kept = await settings.change_defaults(GUILD, actor_id=ADMIN, quality="high")
    assert (kept.model.value, kept.format.value, kept.quality.value) == ("gpt-image-1", "webp", "high")

    reset = await settings.change_defaults(GUILD, actor_id=ADMIN, reset=True)
    assert reset.options == CONFIG_OPTIONS
    assert reset.model.source is Source.CONFIG

    again = await settings.change_defaults(GUILD, actor_id=ADMIN, reset=True, size="1024x1536")
    assert again.options == ResolvedOptions(
        ModelName.GPT_IMAGE_1_MINI, Size.PORTRAIT, Quality.MEDIUM, Background.AUTO, OutputFormat.PNG, 1
    )


async def test_limits_are_the_servers_own_and_reset_restores_the_config(settings: ServerOptions) -> None:
    """max_count and confirm_above set by the server apply; reset gives back the config's."""
    changed = await settings.change_limits(GUILD, actor_id=ADMIN, max_count=2, confirm_above=5_000)
    assert changed.limits == ServerLimits(2, 5_000)
    assert await settings.limits(GUILD) == ServerLimits(2, 5_000)
    assert changed.stored is not None and changed.stored.limits_changed_by == ADMIN

    only_threshold = await settings.change_limits(GUILD, actor_id=ADMIN, confirm_above=0)
    assert only_threshold.limits == ServerLimits(2, 0)

    reset = await settings.change_limits(GUILD, actor_id=ADMIN, reset=True)
    assert reset.limits == ServerLimits(4, 500_000)
    assert (reset.max_count.source, reset.confirm_above.source) == (Source.CONFIG, Source.CONFIG)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "dall-e-3"}, "model 'dall-e-3' is not offered"),
        ({"size": "512x512"}, "size '512x512' is not offered"),
        ({"count": 0}, "count must be a whole number from 1 to 4"),
        ({"count": 5}, "count must be a whole number from 1 to 4"),
        ({"count": 3}, r"The default count can be at most 2, this server's limit of images per request \(got 3\)"),
        ({"background": "transparent", "format": "jpg"}, TRANSPARENT_JPG),
        ({"background": "transparent"}, TRANSPARENT_JPG),
    ],
)
async def test_bad_defaults_are_refused_and_change_nothing(
    db: Database, settings: ServerOptions, change: dict[str, Any], message: str
) -> None:
    """An unknown choice, a count outside 1-4 or above the server's limit, or transparent with jpg (also when one of
    them is already the server's): refused with a clear sentence; the stored row is as before."""
    await settings.change_limits(GUILD, actor_id=ADMIN, max_count=2)
    await settings.change_defaults(GUILD, actor_id=ADMIN, format="jpg", model="gpt-image-1")
    before = await ServerOptionsRepository(db).get(GUILD)

    with pytest.raises(InvalidRequestError, match=message):
        await settings.change_defaults(GUILD, actor_id=ADMIN + 1, quality="high", **change)

    assert await ServerOptionsRepository(db).get(GUILD) == before
    assert (await settings.effective(GUILD)).quality.value is Quality.MEDIUM


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_count": 4}, r"This bot allows at most 3 images per request .* \(got 4\)"),
        ({"max_count": 0}, "max_count must be a whole number from 1 to 4"),
        ({"max_count": 1}, "This server's default count is 2, above a limit of 1; lower it first"),
        ({"confirm_above": -1}, "The confirmation threshold must be between"),
        ({"confirm_above": 10**13}, "The confirmation threshold must be between"),
    ],
)
async def test_bad_limits_are_refused_and_change_nothing(db: Database, change: dict[str, Any], message: str) -> None:
    """A max_count above the bot's own (config) limit or below the server's default count, a negative or absurd
    threshold: refused, nothing stored changes."""
    settings = ServerOptions(db, config_with(limits={"max_count": 3}), clock=lambda: AT)
    await settings.change_defaults(GUILD, actor_id=ADMIN, count=2)
    before = await ServerOptionsRepository(db).get(GUILD)

    with pytest.raises(InvalidRequestError, match=message):
        await settings.change_limits(GUILD, actor_id=ADMIN + 1, **change)

    assert await ServerOptionsRepository(db).get(GUILD) == before
    assert (await settings.limits(GUILD)) == ServerLimits(3, 500_000)


async def test_no_change_writes_nothing(db: Database, settings: ServerOptions) -> None:
    """Changing nothing (no value, no reset) only reads: no row appears."""
    assert (await settings.change_defaults(GUILD, actor_id=ADMIN)).stored is None
    assert (await settings.change_limits(GUILD, actor_id=ADMIN)).stored is None
    assert await ServerOptionsRepository(db).get(GUILD) is None


async def test_a_lowered_config_ceiling_wins_over_a_stored_max_count(db: Database) -> None:
    """A server allowed 4 while the bot did; after the owner lowers `limits.max_count` to 2, the server gets 2, and
    its stored count default of 3 is used as 2 — each with a note saying why."""
    await ServerOptions(db, CONFIG).change_limits(GUILD, actor_id=ADMIN, max_count=4)
    await ServerOptions(db, CONFIG).change_defaults(GUILD, actor_id=ADMIN, count=3)

    lowered = await ServerOptions(db, config_with(limits={"max_count": 2})).effective(GUILD)

    assert (lowered.max_count.value, lowered.max_count.source) == (2, Source.SERVER)
    assert lowered.max_count.note == "set to 4, but the bot allows at most 2"
    assert (lowered.count.value, lowered.count.note) == (2, "set to 3, above the limit of 2 per request")


async def test_a_config_default_count_above_the_servers_limit_is_used_as_the_limit(db: Database) -> None:
    """Config default count 3, server max_count 2: a request without count asks for 2; a chosen 3 stays 3 (and
    admission refuses it with the limit)."""
    settings = ServerOptions(db, config_with(defaults={"count": 3}))
    effective = await settings.change_limits(GUILD, actor_id=ADMIN, max_count=2)

    assert (effective.count.value, effective.count.source) == (2, Source.CONFIG)
    assert (await settings.resolve(GUILD)).count == 2
    assert (await settings.resolve(GUILD, count=3)).count == 3


async def test_transparent_and_jpg_from_different_sources_resolve_by_precedence(db: Database) -> None:
    """The weaker source gives way: a server's jpg beats the config's transparent (background becomes auto), a
    server's transparent beats the config's jpg (format becomes png); the defaults show why."""
    transparent_config = ServerOptions(db, config_with(defaults={"background": Background.TRANSPARENT}))
    jpg = await transparent_config.change_defaults(GUILD, actor_id=ADMIN, format="jpg")
    assert (jpg.format.value, jpg.background.value) == (OutputFormat.JPG, Background.AUTO)
    assert jpg.background.note == "set to transparent, which jpg cannot show, so auto is used"

    jpg_config = ServerOptions(db, config_with(defaults={"format": OutputFormat.JPG}))
    transparent = await jpg_config.change_defaults(GUILD, actor_id=ADMIN, reset=True, background="transparent")
    assert (transparent.format.value, transparent.background.value) == (OutputFormat.PNG, Background.TRANSPARENT)
    assert transparent.format.note == "set to jpg, which cannot be transparent, so png is used"


async def test_a_change_is_seen_at_once_by_reads_of_the_same_service(db: Database) -> None:
    """Rows are cached after the first read; a change through the service replaces its cached row at once, and a
    fresh service (a restart) reads the stored value."""
    settings = ServerOptions(db, CONFIG)
    assert (await settings.limits(GUILD)).max_count == 4

    await settings.change_limits(GUILD, actor_id=ADMIN, max_count=1)

    assert (await settings.limits(GUILD)).max_count == 1
    assert (await ServerOptions(db, CONFIG).limits(GUILD)).max_count == 1


async def test_a_change_whose_caller_is_cancelled_while_it_is_written_is_not_hidden_by_the_cache(
    db: Database,
) -> None:
    """The admin's task is cancelled while its change waits on the database thread (another writer holds the file);
    the change still commits, and the next read of the same service sees it, not the cached row from before."""
    settings = ServerOptions(db, CONFIG)
    assert (await settings.limits(GUILD)).max_count == 4  # now cached
    other_writer = sqlite3.connect(db.path, isolation_level=None)
    try:
        other_writer.execute("BEGIN IMMEDIATE")
        change = asyncio.create_task(settings.change_limits(GUILD, actor_id=ADMIN, max_count=1))
        await asyncio.sleep(0.05)  # the change's unit is on the database thread, waiting for the write lock
        change.cancel()
        with pytest.raises(asyncio.CancelledError):
            await change
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()

    assert (await ServerOptions(db, CONFIG).limits(GUILD)).max_count == 1, "the change was committed"
    assert (await settings.limits(GUILD)).max_count == 1
