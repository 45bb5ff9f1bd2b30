"""Every embed the bot shows: budgets, balances, the job queue, a result's card.

Plain values in, `discord.Embed` out, within Discord's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import discord

from bot.billing.budgets import BudgetRules, MemberOverride, OverrideKind
from bot.billing.ledger import BudgetStatus
from bot.billing.pools import PoolStatus
from bot.billing.reports import UNKNOWN, PeriodReport, Share
from bot.catalog import Size
from bot.jobs.delivery import ResultSummary
from bot.jobs.requests import RequestKind
from bot.jobs.service import QueueEntry
from bot.money import format_usd
from bot.storage.rows import Job, JobState

FIELD_LIMIT = 1024
"""Discord's limit on one embed field's value."""
DESCRIPTION_LIMIT = 4096
"""Discord's limit on an embed's description."""
PROMPT_PREVIEW_CHARS = 40
PROMPT_EMBED_CHARS = 1500
"""Longest prompt shown in a result embed (Discord allows 4096 in the description, 6000 in the whole embed)."""
COLOUR = discord.Colour.blurple()

_SIZE_NAMES = {Size.SQUARE: "square", Size.LANDSCAPE: "landscape", Size.PORTRAIT: "portrait"}
_PARENT_LABELS = {RequestKind.REROLL: "Reroll of", RequestKind.EDIT: "Edit of"}


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace (a prompt may span lines) and cut to `limit` characters, ending with "…" if cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def prompt_preview(prompt: str) -> str:
    """Return the start of a prompt as a quoted line (markdown escaped), to go under a job's summary."""
    return f"> {discord.utils.escape_markdown(one_line(prompt, PROMPT_PREVIEW_CHARS))}"


def relative(moment: datetime) -> str:
    """Format a moment as a Discord timestamp that each reader sees relative to now (`<t:UNIX:R>`)."""
    return discord.utils.format_dt(moment, "R")


def allowance_text(status: BudgetStatus) -> str:
    """Describe the member's allowance per period, with grants."""
    if status.blocked:
        return "blocked"
    base = "unlimited" if status.allowance is None else f"{format_usd(status.allowance)} per {status.period.value}"
    if status.granted:
        sign = "+" if status.granted > 0 else ""
        base += f" ({sign}{format_usd(status.granted)} granted this {status.period.value})"
    return base


def override_text(override: MemberOverride) -> str:
    """Describe a member override."""
    if override.kind is OverrideKind.AMOUNT and override.amount is not None:
        return format_usd(override.amount)
    return override.kind.value


def _lines(lines: Sequence[str], empty: str, limit: int = FIELD_LIMIT) -> str:
    """Join lines into one text of at most `limit` characters, ending with a count of what was left out."""
    if not lines:
        return empty
    shown: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        more = f"… and {len(lines) - index} more"
        if used + len(line) + 1 + len(more) > limit:
            shown.append(more)
            break
        shown.append(line)
        used += len(line) + 1
    return "\n".join(shown)


def _job_line(job: Job) -> str:
    money = format_usd(job.cost) if job.cost is not None else f"~{format_usd(job.estimate)}"
    summary = (
        f"`{job.id}` {job.state.value} · {job.model.value} {job.size.value} · {money} · {relative(job.created_at)}"
    )
    return f"{summary}\n{prompt_preview(job.prompt)}"


def status_embed(title: str, status: BudgetStatus, *, jobs: Sequence[Job] | None = None) -> discord.Embed:
    """Show a member's budget this period (allowance, spent, reserved, remaining, reset) and their recent jobs."""
    embed = discord.Embed(title=title, colour=COLOUR)
    embed.add_field(name="Allowance", value=allowance_text(status), inline=False)
    embed.add_field(name="Spent", value=format_usd(status.spent))
    embed.add_field(name="Reserved", value=format_usd(status.reserved))
    remaining = "unlimited" if status.remaining is None else format_usd(status.remaining)
    embed.add_field(name="Remaining", value=remaining)
    embed.add_field(name="Resets", value=relative(status.resets_at))
    server_remaining = status.server_remaining
    if server_remaining is not None and status.server_cap is not None:
        embed.add_field(
            name="Server budget",
            value=f"{format_usd(server_remaining)} of {format_usd(status.server_cap)} left",
        )
    if status.pool is not None:
        embed.add_field(name="Team budget", value=pool_text(status.pool), inline=False)
    if jobs is not None:
        embed.add_field(
            name="Recent jobs", value=_lines([_job_line(job) for job in jobs], "No jobs yet."), inline=False
        )
    return embed


def pool_text(pool: PoolStatus) -> str:
    """Describe a team pool this period: where, limit, spent, reserved and what is left."""
    return (
        f"<#{pool.pool_id}>: {format_usd(pool.remaining)} of {format_usd(pool.limit)} left "
        f"({format_usd(pool.spent)} spent, {format_usd(pool.reserved)} reserved)"
    )


def rules_embed(
    rules: BudgetRules,
    *,
    resets_at: datetime,
    server_spent: int,
    server_reserved: int,
    pools: Sequence[PoolStatus] = (),
) -> discord.Embed:
    """Show every budget rule of a server (team pools too), and its spend this period."""
    embed = discord.Embed(title="Budget rules", colour=COLOUR)
    embed.add_field(name="Period", value=f"{rules.period.value} (resets {relative(resets_at)})")
    embed.add_field(name="Default allowance", value=format_usd(rules.default_allowance))
    cap = "none" if rules.server_cap is None else format_usd(rules.server_cap)
    embed.add_field(name="Server cap", value=cap)
    spend = f"{format_usd(server_spent)} spent, {format_usd(server_reserved)} reserved"
    embed.add_field(name="Server this period", value=spend, inline=False)
    roles = sorted(rules.role_allowances.items(), key=lambda item: (-item[1], item[0]))
    embed.add_field(
        name="Role allowances",
        value=_lines([f"<@&{role}> {format_usd(amount)}" for role, amount in roles], "none"),
        inline=False,
    )
    members = sorted(rules.member_overrides.items())
    embed.add_field(
        name="Member overrides",
        value=_lines([f"<@{member}> {override_text(override)}" for member, override in members], "none"),
        inline=False,
    )
    embed.add_field(name="Team budgets", value=_lines([pool_text(pool) for pool in pools], "none"), inline=False)
    return embed


REPORT_TOP = 10
"""Rows shown per breakdown in the report's embed; the CSV has every charge."""


def _share_lines(shares: Sequence[Share], label: str) -> str:
    lines = [
        f"{label.format(share.key) if share.key is not None else UNKNOWN} · {format_usd(share.spent)} "
        f"({share.jobs} job{'s' if share.jobs != 1 else ''})"
        for share in shares[:REPORT_TOP]
    ]
    if len(shares) > REPORT_TOP:
        rest = shares[REPORT_TOP:]
        lines.append(f"… and {len(rest)} more ({format_usd(sum(share.spent for share in rest))})")
    return _lines(lines, "none")


def report_embed(report: PeriodReport) -> discord.Embed:
    """Show a period's spend: the total, and the top members, models and channels (the CSV attached has all)."""
    last = report.end - timedelta(days=1)
    span = (
        f"{report.start:%Y-%m-%d}"
        if report.start.date() == last.date()
        else f"{report.start:%Y-%m-%d} to {last:%Y-%m-%d}"
    )
    embed = discord.Embed(title=f"Spend report: {report.which} {report.period.value}", colour=COLOUR)
    embed.description = f"{span} (UTC) · **{format_usd(report.total)}** in {len(report.charges)} charge(s)"
    embed.add_field(name="By member", value=_share_lines(report.by_member, "<@{}>"), inline=False)
    embed.add_field(name="By model", value=_share_lines(report.by_model, "{}"), inline=False)
    embed.add_field(name="By channel", value=_share_lines(report.by_channel, "<#{}>"), inline=False)
    embed.set_footer(text="Exact amounts of every charge are in the CSV; the chart shows spend per UTC day.")
    return embed


def _queue_line(entry: QueueEntry) -> str:
    job = entry.job
    if job.state is JobState.AWAITING_APPROVAL:
        where = f"waiting for approval (asked {relative(job.created_at)})"
    elif entry.position is not None:
        where = f"queued, position {entry.position} (waiting {entry.elapsed_seconds:.0f} s)"
    else:
        where = f"running for {entry.elapsed_seconds:.0f} s"
    summary = f"`{job.id}` {where} · {job.model.value} {job.size.value} ×{job.count} · ~{format_usd(job.estimate)}"
    return f"{summary}\n{prompt_preview(job.prompt)}"


def queue_embed(entries: Sequence[QueueEntry]) -> discord.Embed:
    """List a member's held, queued and running jobs, oldest first, with position or running time and estimate."""
    embed = discord.Embed(title="Your queued and running jobs", colour=COLOUR)
    if not entries:
        embed.description = "Nothing queued, running or waiting for approval."
        return embed
    embed.description = _lines([_queue_line(entry) for entry in entries], "", DESCRIPTION_LIMIT)
    held = sum(entry.job.estimate for entry in entries)
    embed.set_footer(text=f"{format_usd(held)} reserved; a cancelled job's reservation is released.")
    return embed


def result_embed(summary: ResultSummary, *, parent_url: str | None) -> discord.Embed:
    """Build the card under a result: prompt, model, size, quality, cost, remaining budget, requester, parent link."""
    embed = discord.Embed(
        description=discord.utils.escape_markdown(one_line(summary.prompt, PROMPT_EMBED_CHARS)),
        colour=COLOUR,
    )
    embed.add_field(name="Model", value=summary.model.label)
    embed.add_field(name="Size", value=f"{summary.size.value} ({_SIZE_NAMES[summary.size]})")
    embed.add_field(name="Quality", value=summary.quality.value)
    embed.add_field(name="Provider", value=summary.provider.capitalize())
    cost = format_usd(summary.cost)
    embed.add_field(name="Cost", value=cost if summary.cost_reported else f"{cost} (estimated)")
    if summary.remaining is None:
        remaining = "unlimited"
    else:
        remaining = format_usd(summary.remaining)
        if summary.resets_at is not None:
            remaining += f" · resets {relative(summary.resets_at)}"
    embed.add_field(name="Remaining budget", value=remaining)
    embed.add_field(name="Requested by", value=f"<@{summary.requester_id}>")
    if parent_url is not None:
        label = _PARENT_LABELS.get(summary.kind, "From")
        embed.add_field(name=label, value=f"[this image]({parent_url})", inline=False)
    footer = f"Job {summary.job_id}"
    if summary.unsure_images:
        footer += (
            f" · {summary.image_count} of {summary.count} images were posted; {summary.unsure_images} more may have "
            f"been made on {summary.provider.capitalize()} (its answer was lost) and are charged as the owner may "
            "have paid for them"
        )
    elif summary.image_count < summary.count:
        footer += f" · {summary.image_count} of {summary.count} images were made; you pay only for those"
    embed.set_footer(text=footer)
    return embed
