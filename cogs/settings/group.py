"""The `/settings` command group and what its parts share: one group object, the services, the bot.

`/settings` has more subcommands than one module should hold, so each part (`general`, and the moderation parts)
is a mixin class whose commands are decorated with this module's `settings` group; `cogs.settings.SettingsCommands`
combines them into the one cog, and discord.py binds every subcommand to that cog.
"""

from __future__ import annotations

from typing import NamedTuple

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import AtelierBot, Services

settings = app_commands.Group(
    name="settings",
    description="Set this server's image generation rules (Manage Server)",
    default_permissions=discord.Permissions(manage_guild=True),
    guild_only=True,
)
"""The `/settings` group; every part decorates its subcommands with `@settings.command`."""


class ShowField(NamedTuple):
    """One section of `/settings show`: a title and its text (at most 1,024 characters, Discord's field limit)."""

    name: str
    value: str
    inline: bool = False


class SettingsBase(commands.Cog):
    """What every part of `/settings` works with: the services the composition root built, and the bot.

    A `Cog` so that discord.py accepts the parts' methods as subcommands; only `SettingsCommands` is added to the bot.
    """

    def __init__(self, services: Services, bot: AtelierBot) -> None:
        self._services = services
        self._bot = bot

    async def show_fields(self, guild_id: int) -> list[ShowField]:
        """Return this part's sections of `/settings show`, then the next part's (none here, at the end of the chain).

        A part adds its sections by overriding this as `return [*mine, *await super().show_fields(guild_id)]`, so the
        page lists the parts in the order `SettingsCommands` names them.
        """
        return []
