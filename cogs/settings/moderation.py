"""`/settings modlog`, `moderators`, `approval` and `safety`: the mod-log, who moderates, and moderated channels.

- `modlog [channel]`: the mod-log channel; without a channel, logging is off. When set, the bot checks it can see,
  send, embed and attach there, and tells the admin what is missing (the channel is set anyway, so it works once
  fixed; until then requests in approval channels are refused with that reason).
- `moderators [role]`: members with this role (or Manage Messages) approve, reject and delete; Manage Server always
  may. Without a role, only Manage Messages and Manage Server.
- `approval channel mode [above]`: `off`, `over` (estimate above `above` dollars) or `all` requests in that channel
  or category wait for a moderator.
- `safety channel mode`: `on` asks Runware to check the output there; a flagged result is held in the mod-log. Without
  a working mod-log the admin is warned, as for `approval`: such requests are refused until there is one.

`/settings show` lists every approval and safety rule, those set to `off` too (on a channel, `off` overrides its
category's rule).

Every change is recorded in the audit log (area `moderation`) in the same transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.discord.tree import send_ephemeral
from bot.moderation.approvals import ApprovalMode, ModerationRules, approval_words
from cogs._admin import log_admin_change
from cogs._checks import require_guild
from cogs._options import Amount, parse_amount
from cogs.settings.group import SettingsBase, ShowField, settings

log = logging.getLogger(__name__)

Place = discord.TextChannel | discord.CategoryChannel
MODE_CHOICES = [app_commands.Choice(name=mode.value, value=mode.value) for mode in ApprovalMode]
SAFETY_WITHOUT_MODLOG = (
    "Flagged results there would have nowhere to go, so requests there are refused until the mod-log works "
    "(`/settings modlog`)."
)
SAFETY_CHOICES = [app_commands.Choice(name="on", value="on"), app_commands.Choice(name="off", value="off")]


class ModerationSettings(SettingsBase):
    """The moderation part of `/settings`."""

    def _rules(self) -> ModerationRules:
        rules = self._services.moderation
        assert rules is not None, "the composition root builds the moderation rules"
        return rules

    async def show_fields(self, guild_id: int) -> list[ShowField]:
        """Add the mod-log, the moderators and the approval and safety channels to `/settings show`."""
        rules = self._rules()
        stored = await rules.settings(guild_id)
        places = await rules.places(guild_id)
        modlog = "off" if stored.modlog_channel_id is None else f"<#{stored.modlog_channel_id}>"
        moderators = "Manage Messages" + (
            "" if stored.moderator_role_id is None else f", or the role <@&{stored.moderator_role_id}>"
        )
        # A rule set to `off` is shown too: on a channel it overrides its category's rule, so it matters.
        approvals = [
            f"<#{place.channel_id}>: {approval_words(place.approval_mode, place.approval_above)}"
            for place in places
            if place.approval_mode is not None
        ]
        safety = [
            f"<#{place.channel_id}>: {'on' if place.safety else 'off'}" for place in places if place.safety is not None
        ]
        mine = [
            ShowField("Mod-log", f"**{modlog}** · moderators: {moderators} (and Manage Server)"),
            ShowField("Approval channels", listing(approvals, "none: no request waits for a moderator")),
            ShowField("Safety channels", listing(safety, "none: results are not checked")),
        ]
        return [*mine, *await super().show_fields(guild_id)]

    @settings.command(name="modlog")
    @app_commands.describe(channel="Where generations, refusals and held requests are logged; leave out to turn off")
    async def modlog(self, interaction: discord.Interaction[Any], channel: discord.TextChannel | None = None) -> None:
        """Set the mod-log channel, or turn logging off."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        channel_id = None if channel is None else channel.id
        await self._rules().set_modlog(guild_id, interaction.user.id, channel_id)
        log_admin_change(log, "Moderation", interaction, "mod-log channel %s", channel_id)
        if channel is None:
            await send_ephemeral(interaction, "Mod-log is off. Requests in approval channels will be refused.")
            return
        modlog = self._services.modlog
        problem = None if modlog is None else await modlog.channel_problem(guild_id, channel.id)
        text = f"Mod-log channel is now {channel.mention}."
        if problem is not None:
            text += f"\n⚠️ {problem} Fix my permissions there; until then held requests are refused."
        await send_ephemeral(interaction, text)

    @settings.command(name="moderators")
    @app_commands.describe(role="Members with this role may approve, reject and delete; leave out to clear")
    async def moderators(self, interaction: discord.Interaction[Any], role: discord.Role | None = None) -> None:
        """Set the moderator role (Manage Messages and Manage Server always may decide)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        await self._rules().set_moderator_role(guild_id, interaction.user.id, None if role is None else role.id)
        log_admin_change(log, "Moderation", interaction, "moderator role %s", None if role is None else role.id)
        if role is None:
            text = "No moderator role: members with Manage Messages (and Manage Server) decide."
        else:
            text = f"Moderators are now {role.mention} and members with Manage Messages (and Manage Server)."
        await send_ephemeral(interaction, text)

    @settings.command(name="approval")
    @app_commands.describe(
        channel="A channel or a category (covers its channels and their threads)",
        mode="off: no approval; over: requests above the amount wait; all: every request waits",
        above="With mode over: the estimate in dollars above which a request waits (e.g. 0.50)",
    )
    @app_commands.choices(mode=MODE_CHOICES)
    async def approval(
        self,
        interaction: discord.Interaction[Any],
        channel: Place,
        mode: app_commands.Choice[str],
        above: Amount | None = None,
    ) -> None:
        """Make requests in a channel or category wait for a moderator's approval."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        chosen = ApprovalMode(mode.value)
        amount = None if above is None else parse_amount(above)
        await self._rules().set_approval(guild_id, interaction.user.id, channel.id, chosen, amount)
        log_admin_change(log, "Moderation", interaction, "approval in %s: %s", channel.id, chosen.value)
        text = f"Approval in {channel.mention}: **{approval_words(chosen, amount)}**."
        if chosen is not ApprovalMode.OFF and self._services.modlog is not None:
            problem = await self._services.modlog.problem(guild_id)
            if problem is not None:
                text += f"\n⚠️ {problem} Until that is fixed such requests are refused."
        await send_ephemeral(interaction, text)

    @settings.command(name="safety")
    @app_commands.describe(
        channel="A channel or a category (covers its channels and their threads)",
        mode="on: Runware checks every result there; a flagged one is held in the mod-log",
    )
    @app_commands.choices(mode=SAFETY_CHOICES)
    async def safety(
        self, interaction: discord.Interaction[Any], channel: Place, mode: app_commands.Choice[str]
    ) -> None:
        """Have Runware check the results in a channel or category; flagged ones wait in the mod-log."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        on = mode.value == "on"
        await self._rules().set_safety(guild_id, interaction.user.id, channel.id, on)
        log_admin_change(log, "Moderation", interaction, "safety in %s: %s", channel.id, mode.value)
        text = f"Safety check in {channel.mention}: **{mode.value}**."
        if on and self._services.modlog is not None:
            problem = await self._services.modlog.problem(guild_id)
            if problem is not None:
                text += f"\n⚠️ {problem} {SAFETY_WITHOUT_MODLOG}"
        await send_ephemeral(interaction, text)


def listing(lines: list[str], empty: str) -> str:
    """Join lines for one `/settings show` field, within Discord's 1,024 characters."""
    if not lines:
        return empty
    shown: list[str] = []
    for n, line in enumerate(lines):
        rest = f"\n… and {len(lines) - n} more"
        if sum(len(x) + 1 for x in shown) + len(line) + len(rest) > 1000:
            return "\n".join(shown) + rest
        shown.append(line)
    return "\n".join(shown)
