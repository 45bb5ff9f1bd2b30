"""`/settings` for server admins, one part per module, combined into one cog (`SettingsCommands`).

- `group`: the `/settings` group object and `SettingsBase` (the services and the bot every part uses).
- `general`: `show` (the whole configuration on one page), `defaults` and `limits`.
- `access`: `channels`, `roles` and `blocklist` (who may generate where, and what a prompt may not say).
- `audit`: `audit` (every change to the server's settings and budgets, newest first, paged).

`show` collects every part's sections through `SettingsBase.show_fields`, each part adding its own.

Every subcommand needs Manage Server. Discord hides the group from others by default, but a server can change that
default, so the cog checks the member's permissions again on every use (`interaction_check`), as `/budget` does.
"""

from __future__ import annotations

from typing import Any

import discord
from discord.ext import commands

from bot.discord.client import AtelierBot
from cogs._checks import require_manage_guild
from cogs._context import services_of
from cogs.settings.access import AccessSettings
from cogs.settings.audit import AuditSettings
from cogs.settings.general import GenerationSettings
from cogs.settings.group import settings


class SettingsCommands(GenerationSettings, AccessSettings, AuditSettings):
    """Server settings; changes apply to the next request."""

    group = settings

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Re-check Manage Server in the bot, whatever the server did to the group's default permissions."""
        return require_manage_guild(interaction)


async def setup(bot: commands.Bot) -> None:
    """Add the cog with the services it needs."""
    services = services_of(bot)
    assert isinstance(bot, AtelierBot)  # services_of() checked it
    await bot.add_cog(SettingsCommands(services, bot))
