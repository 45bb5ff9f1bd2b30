"""`/settings defaults`, `/settings limits` and `/settings show`: generation defaults, request limits, all on one page.

`show` also says whether reply editing is on and, if not, what the bot owner must switch on.

Without options `defaults` and `limits` show what applies now and where each value comes from (this server or the
config file); with options they change them; `reset` clears the server's own values first, so the config file's apply.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import discord
from discord import app_commands

from bot.catalog import Routing
from bot.discord.embeds import COLOUR, relative
from bot.discord.intents import ReplyEditingState
from bot.discord.tree import send_ephemeral
from bot.jobs.options import Effective, EffectiveOptions, Source
from bot.money import format_usd
from cogs._admin import log_admin_change
from cogs._checks import require_guild
from cogs._options import (
    BACKGROUND_CHOICES,
    FORMAT_CHOICES,
    MODEL_CHOICES,
    QUALITY_CHOICES,
    SIZE_CHOICES,
    Amount,
    Count,
    parse_amount,
)
from cogs.settings.group import SettingsBase, ShowField, settings

log = logging.getLogger(__name__)


SOURCES = {Source.SERVER: "set by this server", Source.CONFIG: "config file"}

DEFAULTS_TITLE = "Generation defaults"
DEFAULTS_DESCRIPTION = "What `/imagine` and `/edit` use for an option a member leaves out."
LIMITS_TITLE = "Generation limits"
LIMITS_DESCRIPTION = "What every request on this server is held to."
REPLY_EDITING_TITLE = "Reply editing"
PROVIDERS_TITLE = "Providers"
"""The `/settings show` section naming each model's routes in order (primary first, then those that may take over)."""
SHOW_TITLE = "Server settings"
SHOW_DESCRIPTION = (
    "Everything that applies here: `/settings defaults` and `/settings limits` change the first two parts; reply "
    "editing (a reply mentioning me on a message with images) is the bot owner's; `/settings channels`, `roles` and "
    "`blocklist` change who may generate where, and what not; `/settings modlog`, `moderators`, `approval` and "
    "`safety` change moderation; `/budget` changes budgets; `/settings audit` lists every change."
)


def _line(setting: Effective[Any], shown: str) -> str:
    text = f"**{shown}** · {SOURCES[setting.source]}"
    return text if setting.note is None else f"{text} ({setting.note})"


def _changed(at: datetime | None, by: int | None) -> str:
    if at is None:
        return ""
    who = f" by <@{by}>" if by is not None else ""
    return f"\nLast changed{who} {relative(at)}."


def defaults_embed(settings: EffectiveOptions) -> discord.Embed:
    """Show the defaults that apply, each with its source."""
    stored = settings.stored
    description = DEFAULTS_DESCRIPTION + (
        "" if stored is None else _changed(stored.defaults_changed_at, stored.defaults_changed_by)
    )
    embed = discord.Embed(title=DEFAULTS_TITLE, description=description, colour=COLOUR)
    for name, setting in (
        ("model", settings.model),
        ("size", settings.size),
        ("quality", settings.quality),
        ("background", settings.background),
        ("format", settings.format),
    ):
        embed.add_field(name=name, value=_line(setting, setting.value.value), inline=True)
    embed.add_field(name="count", value=_line(settings.count, str(settings.count.value)), inline=True)
    return embed


def limits_embed(settings: EffectiveOptions, ceiling: int) -> discord.Embed:
    """Show the limits that apply, each with its source, and the bot-wide ceiling on `max_count`."""
    stored = settings.stored
    description = LIMITS_DESCRIPTION + (
        "" if stored is None else _changed(stored.limits_changed_at, stored.limits_changed_by)
    )
    embed = discord.Embed(title=LIMITS_TITLE, description=description, colour=COLOUR)
    embed.add_field(
        name="max_count",
        value=_line(settings.max_count, str(settings.max_count.value))
        + f"\nImages per request; this bot allows at most {ceiling}.",
        inline=False,
    )
    threshold = settings.confirm_above.value
    embed.add_field(
        name="confirm_above",
        value=_line(settings.confirm_above, format_usd(threshold))
        + (
            "\nEvery request shows its estimate and asks to confirm."
            if threshold == 0
            else "\nA request estimated above this shows its estimate and asks to confirm."
        ),
        inline=False,
    )
    return embed


def reply_editing_line(state: ReplyEditingState) -> str:
    """Whether a reply that mentions the bot on another member's images is an edit, and if not what turns it on."""
    text = f"**{'on' if state.on else 'off'}** · `reply_editing = {str(state.mode).lower()}` · config file"
    text += f"\n{state.summary()}"
    advice = state.advice()
    if advice is not None:
        text += f"\n{advice} Meanwhile **Edit image** (Apps menu), `/edit` and replies to my results work."
    return text


def generation_fields(settings: EffectiveOptions, ceiling: int, reply_editing: ReplyEditingState) -> list[ShowField]:
    """Return the defaults, the limits and reply editing, as sections of `/settings show`."""
    fields = [
        ShowField(str(field.name), str(field.value), bool(field.inline))
        for part in (defaults_embed(settings), limits_embed(settings, ceiling))
        for field in part.fields
    ]
    return [*fields, ShowField(REPLY_EDITING_TITLE, reply_editing_line(reply_editing))]


def providers_field(routing: Routing) -> ShowField:
    """Return the Providers section: per model its routes in order (`GPT Image 1: Runware -> Runbase`)."""
    lines = [routing.describe(model) for model in routing.models] or ["No provider is configured."]
    return ShowField(PROVIDERS_TITLE, "\n".join(lines))


def show_embed(fields: list[ShowField]) -> discord.Embed:
    """Show the whole configuration on one page: every part's sections, in order."""
    embed = discord.Embed(title=SHOW_TITLE, description=SHOW_DESCRIPTION, colour=COLOUR)
    for field in fields:
        embed.add_field(name=field.name, value=field.value, inline=field.inline)
    return embed


def _listed(changes: dict[str, str]) -> str:
    return ", ".join(f"{name} **{value}**" for name, value in changes.items())


class GenerationSettings(SettingsBase):
    """`/settings show`, `/settings defaults` and `/settings limits` (a part of `SettingsCommands`)."""

    async def show_fields(self, guild_id: int) -> list[ShowField]:
        """Put the defaults, the limits and reply editing first on `/settings show`."""
        effective = await self._services.server_options.effective(guild_id)
        mine = generation_fields(effective, self._services.server_options.ceiling, self._bot.reply_editing)
        return [*mine, providers_field(self._services.generation.routing), *await super().show_fields(guild_id)]

    @settings.command(name="show")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        """Show this server's whole configuration: generation, access, moderation and budgets."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        await send_ephemeral(interaction, embed=show_embed(await self.show_fields(guild_id)))

    @settings.command(name="defaults")
    @app_commands.rename(output_format="format")
    @app_commands.describe(
        model="Default GPT Image model",
        size="Default output size in pixels",
        quality="Default rendering quality (higher costs more; auto is priced as high)",
        background="Default background (transparent needs png or webp)",
        output_format="Default file format",
        count="Default number of images per request (at most this server's max_count)",
        reset="True: clear this server's defaults, so the config file's apply (options given too are set after)",
    )
    @app_commands.choices(
        model=MODEL_CHOICES,
        size=SIZE_CHOICES,
        quality=QUALITY_CHOICES,
        background=BACKGROUND_CHOICES,
        output_format=FORMAT_CHOICES,
    )
    async def defaults(
        self,
        interaction: discord.Interaction[Any],
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        count: Count | None = None,
        reset: bool = False,
    ) -> None:
        """Show or set the options /imagine and /edit use when a member leaves them out."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        given = {
            name: str(value)
            for name, value in (
                ("model", model),
                ("size", size),
                ("quality", quality),
                ("background", background),
                ("format", output_format),
                ("count", count),
            )
            if value is not None
        }
        if not reset and not given:
            await send_ephemeral(
                interaction, embed=defaults_embed(await self._services.server_options.effective(guild_id))
            )
            return
        effective = await self._services.server_options.change_defaults(
            guild_id,
            actor_id=interaction.user.id,
            reset=reset,
            model=model,
            size=size,
            quality=quality,
            background=background,
            format=output_format,
            count=count,
        )
        log_admin_change(
            log,
            "Generation settings",
            interaction,
            "defaults %s%s",
            "reset, then " if reset else "",
            given or "none set",
        )
        parts = ["Cleared this server's defaults."] if reset else []
        if given:
            parts.append(f"Set {_listed(given)}.")
        await send_ephemeral(interaction, " ".join(parts), embed=defaults_embed(effective))

    @settings.command(name="limits")
    @app_commands.describe(
        max_count="Most images one request may ask for (at most the bot's own limit)",
        confirm_above="Dollars, like 0.50: a request estimated above this asks to confirm first (0: every request)",
        reset="True: clear this server's limits, so the config file's apply (options given too are set after)",
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        max_count: Count | None = None,
        confirm_above: Amount | None = None,
        reset: bool = False,
    ) -> None:
        """Show or set this server's limits: images per request and the confirmation threshold."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        threshold = None if confirm_above is None else parse_amount(confirm_above)
        given: dict[str, str] = {}
        if max_count is not None:
            given["max_count"] = str(max_count)
        if threshold is not None:
            given["confirm_above"] = format_usd(threshold)
        if not reset and not given:
            effective = await self._services.server_options.effective(guild_id)
            await send_ephemeral(interaction, embed=limits_embed(effective, self._services.server_options.ceiling))
            return
        effective = await self._services.server_options.change_limits(
            guild_id, actor_id=interaction.user.id, reset=reset, max_count=max_count, confirm_above=threshold
        )
        log_admin_change(
            log, "Generation settings", interaction, "limits %s%s", "reset, then " if reset else "", given or "none set"
        )
        parts = ["Cleared this server's limits."] if reset else []
        if given:
            parts.append(f"Set {_listed(given)}.")
        await send_ephemeral(
            interaction, " ".join(parts), embed=limits_embed(effective, self._services.server_options.ceiling)
        )
