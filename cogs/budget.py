"""`/budget` for server admins: allowances, overrides, the cap, grants, team budgets, show, the spend report.

The period, default and role allowances, member overrides, the server cap, grants, team budgets per channel or
category (`/budget channel`), `/budget show`, and `/budget report` (with its chart and CSV).

Every subcommand needs Manage Server. Discord hides the group from others by default, but a server can change that
default, so the cog checks the member's permissions again on every use (`interaction_check`).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
from datetime import UTC, datetime
from typing import Any, cast

import discord
from discord import app_commands
from discord.ext import commands

from bot.billing.budgets import Budgets, MemberOverride, OverrideKind, period_bounds
from bot.billing.chart import daily_chart
from bot.billing.ledger import MAX_REASON_CHARS, Ledger
from bot.billing.pools import Pools
from bot.billing.reports import PeriodReport, ReportPeriod, Reports, charges_csv, chart_title
from bot.catalog import Period
from bot.discord.embeds import override_text, relative, report_embed, rules_embed, status_embed
from bot.discord.tree import mark_answered, send_ephemeral
from bot.errors import InvalidRequestError
from bot.money import format_usd
from cogs._admin import log_admin_change
from cogs._checks import require_guild, require_manage_guild
from cogs._context import role_ids, services_of
from cogs._options import Amount, parse_amount, shown

log = logging.getLogger(__name__)

NONE = "none"
"""The word that removes a role allowance, a member override or the server cap."""

Reason = app_commands.Range[str, 1, MAX_REASON_CHARS]

PERIOD_CHOICES = [
    app_commands.Choice(name="day (resets at 00:00 UTC)", value=Period.DAY.value),
    app_commands.Choice(name="week (resets Monday 00:00 UTC)", value=Period.WEEK.value),
    app_commands.Choice(name="month (resets on the 1st, 00:00 UTC)", value=Period.MONTH.value),
]

REPORT_CHOICES = [
    app_commands.Choice(name="current period", value="current"),
    app_commands.Choice(name="previous period", value="previous"),
]

PoolChannel = discord.TextChannel | discord.CategoryChannel | discord.VoiceChannel
"""Where a team budget can be set: a channel (its threads follow it) or a category (its channels follow it)."""

_SOURCES = {"override": "this member's own rule", "role": "their best role", "default": "the server default"}


def parse_optional_amount(text: str) -> int | None:
    """Parse an amount, or `none` (None: remove the rule)."""
    return None if text.strip().lower() == NONE else parse_amount(text)


def parse_member_value(text: str) -> MemberOverride | None:
    """Parse `/budget member`'s value: an amount, `unlimited`, `blocked`, or `none` (None: clear the override)."""
    word = text.strip().lower()
    if word == NONE:
        return None
    if word == OverrideKind.UNLIMITED.value:
        return MemberOverride.unlimited()
    if word == OverrideKind.BLOCKED.value:
        return MemberOverride.blocked()
    try:
        return MemberOverride.of_amount(parse_amount(text))
    except InvalidRequestError:
        raise InvalidRequestError(
            f"`{shown(text)}` is not a value for a member: write an amount like `2.50`, `unlimited`, `blocked`, "
            "or `none` to clear the member's own rule."
        ) from None


class Budget(commands.Cog):
    """Budget administration: rules are stored per server and apply from the current period on."""

    budget = app_commands.Group(
        name="budget",
        description="Set and read this server's image budgets (Manage Server)",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    def __init__(self, budgets: Budgets, ledger: Ledger, pools: Pools, reports: Reports) -> None:
        self._budgets = budgets
        self._ledger = ledger
        self._pools = pools
        self._reports = reports

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Re-check Manage Server in the bot, whatever the server did to the group's default permissions."""
        return require_manage_guild(interaction)

    @budget.command(name="period")
    @app_commands.describe(period="How often every member's allowance starts over")
    @app_commands.choices(period=PERIOD_CHOICES)
    async def set_period(self, interaction: discord.Interaction[Any], period: app_commands.Choice[str]) -> None:
        """Choose the budget period: day, week or month (all reset at 00:00 UTC)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        kind = await self._budgets.set_period(require_guild(interaction), period.value, actor_id=interaction.user.id)
        log_admin_change(log, "Budget", interaction, "period set to %s", kind.value)
        resets_at = period_bounds(kind, datetime.now(UTC))[1]
        await send_ephemeral(
            interaction, f"The budget period is now **{kind.value}**; this one ends {relative(resets_at)}."
        )

    @budget.command(name="default")
    @app_commands.describe(amount="Dollars per member per period, like 2.50")
    async def set_default(self, interaction: discord.Interaction[Any], amount: Amount) -> None:
        """Set the allowance every member gets per period unless a role or member rule says otherwise."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        micros = parse_amount(amount)
        await self._budgets.set_default(require_guild(interaction), micros, actor_id=interaction.user.id)
        log_admin_change(log, "Budget", interaction, "default allowance set to %s", format_usd(micros))
        await send_ephemeral(
            interaction, f"The default allowance is now **{format_usd(micros)}** per member per period."
        )

    @budget.command(name="role")
    @app_commands.describe(role="The role", amount="Dollars per period for its members, like 5.00, or none to remove")
    async def set_role(self, interaction: discord.Interaction[Any], role: discord.Role, amount: Amount) -> None:
        """Give a role its own allowance per period (members get the largest of their roles' and the default)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        if role.is_default():
            raise InvalidRequestError("Everyone has the default allowance; set it with `/budget default`.")
        micros = parse_optional_amount(amount)
        await self._budgets.set_role(require_guild(interaction), role.id, micros, actor_id=interaction.user.id)
        if micros is None:
            log_admin_change(log, "Budget", interaction, "allowance of role %s (%s) removed", role.name, role.id)
            await send_ephemeral(interaction, f"{role.mention} no longer has an allowance of its own.")
        else:
            log_admin_change(
                log,
                "Budget",
                interaction,
                "allowance of role %s (%s) set to %s",
                role.name,
                role.id,
                format_usd(micros),
            )
            await send_ephemeral(interaction, f"{role.mention} now gets **{format_usd(micros)}** per period.")

    @budget.command(name="member")
    @app_commands.describe(
        member="The member",
        value="Dollars per period like 3.00, unlimited, blocked, or none to clear their own rule",
    )
    async def set_member(self, interaction: discord.Interaction[Any], member: discord.Member, value: Amount) -> None:
        """Give one member their own rule (an amount, unlimited or blocked); it beats roles and the default."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        override = parse_member_value(value)
        await self._budgets.set_member(require_guild(interaction), member.id, override, actor_id=interaction.user.id)
        if override is None:
            log_admin_change(log, "Budget", interaction, "override of member %s cleared", member.id)
            await send_ephemeral(interaction, f"{member.mention} follows the role and default allowances again.")
            return
        log_admin_change(
            log, "Budget", interaction, "override of member %s set to %s", member.id, override_text(override)
        )
        if override.kind is OverrideKind.BLOCKED:
            text = f"{member.mention} is now **blocked** from generating images here."
        elif override.kind is OverrideKind.UNLIMITED:
            text = f"{member.mention} now has **no limit of their own** (the server cap still applies)."
        else:
            text = f"{member.mention} now gets **{override_text(override)}** per period, whatever their roles."
        await send_ephemeral(interaction, text)

    @budget.command(name="cap")
    @app_commands.describe(amount="Dollars per period for the whole server, like 50.00, or none for no cap")
    async def set_cap(self, interaction: discord.Interaction[Any], amount: Amount) -> None:
        """Set the most the whole server may spend per period, or remove the cap."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        micros = parse_optional_amount(amount)
        await self._budgets.set_cap(require_guild(interaction), micros, actor_id=interaction.user.id)
        if micros is None:
            log_admin_change(log, "Budget", interaction, "server cap removed")
            await send_ephemeral(interaction, "The server has **no cap** now.")
        else:
            log_admin_change(log, "Budget", interaction, "server cap set to %s", format_usd(micros))
            await send_ephemeral(interaction, f"The server cap is now **{format_usd(micros)}** per period.")

    @budget.command(name="channel")
    @app_commands.describe(
        channel="A channel or a category (its channels, and threads, share the budget)",
        amount="Dollars per period for everything generated there, like 20.00, or none to remove",
    )
    async def set_channel(self, interaction: discord.Interaction[Any], channel: PoolChannel, amount: Amount) -> None:
        """Give a channel or category a team budget per period, on top of members' allowances and the server cap."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        micros = parse_optional_amount(amount)
        await self._pools.set(require_guild(interaction), channel.id, micros, actor_id=interaction.user.id)
        where = "category" if isinstance(channel, discord.CategoryChannel) else "channel"
        if micros is None:
            log_admin_change(log, "Budget", interaction, "team budget of %s (%s) removed", where, channel.id)
            await send_ephemeral(interaction, f"The {where} {channel.mention} no longer has a team budget.")
            return
        log_admin_change(
            log, "Budget", interaction, "team budget of %s (%s) set to %s", where, channel.id, format_usd(micros)
        )
        await send_ephemeral(
            interaction,
            f"Everything generated in the {where} {channel.mention} now shares **{format_usd(micros)}** per period "
            "(each member's allowance and the server cap still apply). Team budgets nest: a request must fit every "
            "team budget of where it is made, its channel's and its category's.",
        )

    @budget.command(name="report")
    @app_commands.describe(period="Which budget period (the current one unless you choose)")
    @app_commands.choices(period=REPORT_CHOICES)
    async def report(
        self, interaction: discord.Interaction[Any], period: app_commands.Choice[str] | None = None
    ) -> None:
        """Spend by member, model and channel, with a chart of daily spend and a CSV of every charge."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        which = cast("ReportPeriod", "current" if period is None else period.value)
        report = await self._reports.period_report(require_guild(interaction), which)
        chart = await asyncio.to_thread(daily_chart, report.days, chart_title(report))
        embed = report_embed(report)
        files, note = _report_files(report, chart, interaction.filesize_limit)
        if note:
            embed.add_field(name="Files", value=note, inline=False)
        if any(file.filename == CHART_NAME for file in files):
            embed.set_image(url=f"attachment://{CHART_NAME}")
        mark_answered(interaction)
        await interaction.edit_original_response(embed=embed, attachments=files)

    @budget.command(name="grant")
    @app_commands.describe(
        member="Who gets it",
        amount="Dollars to add this period, like 1.00 (negative, like -0.50, to deduct)",
        reason="Why (kept in the ledger)",
    )
    async def grant(
        self, interaction: discord.Interaction[Any], member: discord.Member, amount: Amount, reason: Reason
    ) -> None:
        """Add to (or deduct from) one member's budget for the current period only."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        micros = parse_amount(amount, allow_negative=True)
        guild_id = require_guild(interaction)
        await self._ledger.grant(guild_id, member.id, micros, reason, actor_id=interaction.user.id)
        status = await self._ledger.status(guild_id, member.id, role_ids(member))
        left = "unlimited" if status.remaining is None else format_usd(status.remaining)
        verb = f"Granted **{format_usd(micros)}** to" if micros > 0 else f"Deducted **{format_usd(-micros)}** from"
        await send_ephemeral(interaction, f"{verb} {member.mention} for this period. They have {left} left.")

    @budget.command(name="show")
    @app_commands.describe(member="A member whose budget to show (leave out for the server's rules)")
    async def show(self, interaction: discord.Interaction[Any], member: discord.Member | None = None) -> None:
        """Show the server's budget rules, or one member's budget this period."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        rules = await self._budgets.rules(guild_id)
        if member is None:
            # Server totals do not depend on the member asked about; the admin's own status carries them.
            status = await self._ledger.status(guild_id, interaction.user.id, [])
            embed = rules_embed(
                rules,
                resets_at=status.resets_at,
                server_spent=status.server_spent,
                server_reserved=status.server_reserved,
                pools=await self._pools.statuses(guild_id),
            )
        else:
            roles = role_ids(member)
            status = await self._ledger.status(guild_id, member.id, roles)
            embed = status_embed(f"Budget of {member.display_name}", status)
            embed.description = f"Allowance from {_SOURCES[rules.limit_for(member.id, roles).source]}."
        await send_ephemeral(interaction, embed=embed)


CHART_NAME = "spend.png"


def _report_files(report: PeriodReport, chart: bytes, limit: int) -> tuple[list[discord.File], str | None]:
    """Attach the chart and the CSV within the server's upload limit.

    The CSV is gzipped if it would not fit, and left out if even that does not fit (the note then says so).
    """
    stem = f"spend-{report.start:%Y-%m-%d}"
    csv_data = charges_csv(report)
    files = [discord.File(io.BytesIO(chart), filename=CHART_NAME)] if len(chart) <= limit else []
    room = limit - sum(len(chart) for _ in files)
    if len(csv_data) <= room:
        return [*files, discord.File(io.BytesIO(csv_data), filename=f"{stem}.csv")], None
    packed = gzip.compress(csv_data)
    if len(packed) <= room:
        return [*files, discord.File(io.BytesIO(packed), filename=f"{stem}.csv.gz")], (
            "The CSV is gzipped to fit Discord's upload limit."
        )
    return files, "The CSV is too large for Discord; run `python -m bot report` on the bot's host for it."


async def setup(bot: commands.Bot) -> None:
    """Add the cog with the services it needs."""
    services = services_of(bot)
    await bot.add_cog(Budget(services.budgets, services.ledger, services.pools, services.reports))
