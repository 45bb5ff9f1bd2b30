"""`/settings` for server admins, one part per module, combined into one cog (`SettingsCommands`).

- `group`: the `/settings` group object and `SettingsBase` (the services and the bot every part uses).
- `general`: `show` (the whole configuration on one page), `defaults` and `limits`.
- `access`: `channels`, `roles` and `blocklist` (who may generate where, and what a prompt may not say).
- `audit`: `audit` (every change to the server's settings and budgets, newest first, paged).

`show` collects every part's sections through `SettingsBase.show_fields`, each part adding its own.
- `moderation`: `modlog`, `moderators`, `approval` and `safety`; `setup()` also binds the mod-log's buttons
  (`bot.discord.modlog_views`) while the extension is loaded.
- `budgets`: the budget part of `show` (rules and team budgets; budgets are changed with `/budget`).

Every subcommand needs Manage Server. Discord hides the group from others by default, but a server can change that
default, so the cog checks the member's permissions again on every use (`interaction_check`), as `/budget` does.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import AtelierBot
from bot.discord.modlog_views import ModLogClicks, bind_modlog_buttons
from cogs._checks import require_manage_guild
from cogs._context import services_of
from cogs._options import offer_served_options
from cogs.settings.access import AccessSettings
from cogs.settings.audit import AuditSettings
from cogs.settings.budgets import BudgetShow
from cogs.settings.general import GenerationSettings
from cogs.settings.group import settings
from cogs.settings.moderation import ModerationSettings


class SettingsCommands(GenerationSettings, AccessSettings, ModerationSettings, BudgetShow, AuditSettings):
    """Server settings; changes apply to the next request."""

    group = settings

    async def cog_load(self) -> None:
        """Handle the clicks on the mod-log's buttons, also on messages posted before a restart."""
        if self._services.moderation is not None:
            clicks = ModLogClicks(self._services.generation, self._services.moderation, self._bot)
            self._modlog_buttons = bind_modlog_buttons(clicks)
            self._bot.add_dynamic_items(self._modlog_buttons)

    async def cog_unload(self) -> None:
        """Stop handling the mod-log's buttons."""
        buttons = getattr(self, "_modlog_buttons", None)
        if buttons is not None:
            self._bot.remove_dynamic_items(buttons)

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Re-check Manage Server in the bot, whatever the server did to the group's default permissions."""
        return require_manage_guild(interaction)


async def setup(bot: commands.Bot) -> None:
    """Add the cog with the services it needs."""
    services = services_of(bot)
    assert isinstance(bot, AtelierBot)  # services_of() checked it
    await bot.add_cog(SettingsCommands(services, bot))
    group = bot.tree.get_command("settings")
    if isinstance(group, app_commands.Group):  # the default model: only models a configured provider serves
        offer_served_options(group.get_command("defaults"), services.generation.routing)
