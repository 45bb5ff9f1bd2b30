"""`/settings audit [page]`: every change to this server's settings and budgets, newest first, a page at a time.

The rows are written by the services in the change's own transaction (`bot.storage.audit`); this part only reads
and shows them: who, which area and setting, the value before and after, and when (a Discord timestamp).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.discord.embeds import COLOUR
from bot.discord.tree import send_ephemeral
from bot.storage.rows import AuditEntry
from cogs._checks import require_guild
from cogs.settings.group import SettingsBase, settings

PAGE_SIZE = 10
"""Changes per page (ten fields stay well inside Discord's embed limits)."""

VALUE_CHARS = 300
"""The most characters of a before or after value shown."""

NOT_SET = "not set"


def _value(text: str | None) -> str:
    if text is None:
        return f"*{NOT_SET}*"
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def entry_field(entry: AuditEntry) -> tuple[str, str]:
    """One change as an embed field: `area · setting`, then who, before → after, and when."""
    who = "the bot" if entry.actor_id is None else f"<@{entry.actor_id}>"
    when = discord.utils.format_dt(entry.created_at, "f")
    ago = discord.utils.format_dt(entry.created_at, "R")
    name = f"{entry.area} · {entry.setting}"[:256]
    return name, f"{_value(entry.before)} → {_value(entry.after)}\nby {who}, {when} ({ago})"


def audit_embed(entries: list[AuditEntry], page: int, pages: int, total: int) -> discord.Embed:
    """One page of changes, newest first."""
    embed = discord.Embed(title="Settings and budget changes", colour=COLOUR)
    if not entries:
        embed.description = "No change has been made yet." if total == 0 else f"There are only {pages} pages."
    for entry in entries:
        name, value = entry_field(entry)
        embed.add_field(name=name, value=value, inline=False)
    embed.set_footer(text=f"Page {page} of {pages} · {total} change{'' if total == 1 else 's'}, newest first")
    return embed


class AuditSettings(SettingsBase):
    """`/settings audit` (a part of `SettingsCommands`)."""

    @settings.command(name="audit")
    @app_commands.describe(page="Which page, 1 (the newest changes) and up")
    async def audit(self, interaction: discord.Interaction[Any], page: app_commands.Range[int, 1] = 1) -> None:
        """Show who changed which setting or budget, from what to what, and when: newest first."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        audit = self._services.audit
        total = await audit.count(guild_id)
        pages = max(1, -(-total // PAGE_SIZE))
        entries = await audit.page(guild_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        await send_ephemeral(interaction, embed=audit_embed(entries, page, pages, total))
