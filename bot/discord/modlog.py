"""The mod-log in Discord: `DiscordModLog` implements the job service's `ModLog` port with discord.py.

Entries in the server's mod-log channel (`/settings modlog`):
- a held request: who, where, the prompt and options, the reserved estimate, when it expires, with **Approve** /
  **Reject** (`atelier:mod:approve|reject:<job id>`);
- a quarantined result: the same card, the images as spoilers (`SPOILER_` file names), with **Approve** (post it in
  the channel) / **Reject** (`atelier:mod:publish|discard:<job id>`);
- a generation: requester, channel, prompt, model, size, quality, count, cost, job id and a link to the result, with
  **Delete** (`atelier:mod:delete:<job id>`, removes the result message);
- a blocklist refusal, a job charged without an image because the provider may have been paid (a Runbase create
  whose answer was lost), and every decision (the held message is edited to say who decided what, or that the
  requester cancelled it, its buttons removed).

The buttons' clicks are handled by `bot.discord.modlog_views`. Before anything is posted the bot's permissions there
are checked (`problem`), so a held request is refused with the reason rather than held where nobody can see it.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import datetime

import discord

from bot.discord.delivery import DiscordDelivery
from bot.discord.embeds import relative
from bot.discord.modlog_views import held_view, logged_view, quarantine_view
from bot.discord.posting import ChannelPosts, message_url
from bot.images import FittedImage
from bot.jobs.delivery import DeliveryError, ResultSummary
from bot.moderation.approvals import ModerationRules
from bot.moderation.errors import PromptBlockedError
from bot.money import format_usd
from bot.storage.moderation import HoldRow
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

NOT_SET = "Requests in this channel go past a moderator, but this server has no mod-log channel (`/settings modlog`)."
GONE = "The mod-log channel <#{channel_id}> no longer exists or I cannot see it, so no moderator could approve this."
CANNOT_POST = "I cannot {what} in the mod-log channel <#{channel_id}>, so no moderator could approve this."
HELD_FOR_REVIEW = (
    "🛡️ <@{member_id}> The safety check flagged this result, so it is held for a moderator's review instead of being "
    "posted here. It was charged, as the images were made. · job `{job_id}`"
)
PROMPT_CHARS = 1000
MODLOG_COLOUR = discord.Colour.orange()
NONE_MENTIONS = discord.AllowedMentions.none()


def missing_permission(permissions: discord.Permissions) -> str | None:
    """Return what the bot cannot do in a channel that a mod-log needs (view, send, embed, attach), or None."""
    for allowed, what in (
        (permissions.view_channel, "see messages"),
        (permissions.send_messages, "send messages"),
        (permissions.embed_links, "embed links"),
        (permissions.attach_files, "attach files"),
    ):
        if not allowed:
            return what
    return None


def job_card(job: Job, title: str, *, cost: int | None = None) -> discord.Embed:
    """Build the mod-log card of a job: requester, channel, prompt, model, size, quality, count, cost, job id."""
    prompt = discord.utils.escape_markdown(job.prompt)
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1] + "…"
    embed = discord.Embed(title=title, description=prompt, colour=MODLOG_COLOUR)
    embed.add_field(name="Requested by", value=f"<@{job.member_id}>")
    embed.add_field(name="Channel", value=f"<#{job.channel_id}>" if job.channel_id else "unknown")
    embed.add_field(name="Model", value=job.model.value)
    embed.add_field(name="Size", value=job.size.value)
    embed.add_field(name="Quality", value=job.quality.value)
    embed.add_field(name="Count", value=str(job.count))
    if cost is None:
        embed.add_field(name="Estimate", value=f"{format_usd(job.estimate)} (reserved)")
    else:
        embed.add_field(name="Cost", value=format_usd(cost))
    embed.set_footer(text=f"Job {job.id}")
    return embed


class DiscordModLog:
    """Posts held requests, quarantined results, generations, refusals and decisions to a server's mod-log."""

    def __init__(self, client: discord.Client, rules: ModerationRules, delivery: DiscordDelivery) -> None:
        self._client = client
        self._rules = rules
        self._delivery = delivery
        self._posts = ChannelPosts(client)

    async def channel_problem(self, guild_id: int, channel_id: int) -> str | None:
        """Return why the bot could not post mod-log entries in this channel, or None when it can (or cannot tell).

        A server on another process's shards is not in this cache: the post is tried over REST (which does not
        depend on the shard), and a refusal there is the `DeliveryError`.
        """
        permissions = self._posts.permissions(guild_id, channel_id)
        if permissions is None:
            return None if not self.serves(guild_id) else GONE.format(channel_id=channel_id)
        what = missing_permission(permissions)
        return None if what is None else CANNOT_POST.format(what=what, channel_id=channel_id)

    def serves(self, guild_id: int) -> bool:
        """Whether the server is in this process's cache (on one of its shards, and available)."""
        return self._client.get_guild(guild_id) is not None

    async def problem(self, guild_id: int) -> str | None:
        """Why a held request could not be shown to moderators now; None when the mod-log can take it."""
        channel_id = (await self._rules.settings(guild_id)).modlog_channel_id
        if channel_id is None:
            return NOT_SET
        return await self.channel_problem(guild_id, channel_id)

    async def _channel(self, guild_id: int | None) -> int | None:
        if guild_id is None:
            return None
        return (await self._rules.settings(guild_id)).modlog_channel_id

    async def _send(self, guild_id: int | None, **fields: object) -> tuple[int, int]:
        """Post in the server's mod-log; raise `DeliveryError` with the reason when it cannot."""
        if guild_id is None:
            raise DeliveryError(NOT_SET)
        channel_id = await self._channel(guild_id)
        if channel_id is None:
            raise DeliveryError(NOT_SET)
        problem = await self.channel_problem(guild_id, channel_id)
        if problem is not None:
            raise DeliveryError(problem)
        channel = self._client.get_partial_messageable(channel_id, guild_id=guild_id)
        try:
            message = await channel.send(allowed_mentions=NONE_MENTIONS, **fields)  # type: ignore[call-overload]
        except discord.HTTPException as exc:
            raise DeliveryError(CANNOT_POST.format(what="post", channel_id=channel_id)) from exc
        return channel_id, message.id

    async def held(self, job: Job, expires_at: datetime) -> tuple[int, int]:
        """Post a held request with Approve / Reject; return (channel id, message id)."""
        embed = job_card(job, "⏳ Waiting for approval")
        embed.add_field(name="Expires", value=relative(expires_at))
        return await self._send(job.guild_id, embed=embed, view=held_view(job.id))

    async def quarantined(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> tuple[int, int]:
        """Post a flagged result as spoilers with Approve / Reject, and tell the requester it is held for review."""
        embed = job_card(job, "🛡️ Flagged by the safety check", cost=summary.cost)
        files = [
            discord.File(io.BytesIO(image.data), filename=f"SPOILER_atelier-{job.id}-{index}.{image.filename_ext}")
            for index, image in enumerate(images, start=1)
        ]
        posted = await self._send(job.guild_id, embed=embed, files=files, view=quarantine_view(job.id))
        await self._delivery.notice(job, HELD_FOR_REVIEW.format(member_id=job.member_id, job_id=job.id))
        return posted

    async def generated(self, job: Job, summary: ResultSummary, message_id: int | None) -> None:
        """Log a delivered generation with Delete (nothing when the server has no mod-log)."""
        if await self._channel(job.guild_id) is None:
            return
        embed = job_card(job, "🎨 Generated", cost=summary.cost)
        if message_id is not None and job.channel_id is not None:
            embed.add_field(name="Result", value=f"[open]({message_url(job.guild_id, job.channel_id, message_id)})")
        try:
            await self._send(job.guild_id, embed=embed, view=logged_view(job.id))
        except DeliveryError as exc:
            log.info("generation of job %s not logged: %s", job.id, exc)

    async def refused(self, error: PromptBlockedError) -> None:
        """Log a blocklist refusal (nothing when the server has no mod-log)."""
        if await self._channel(error.guild_id) is None:
            return
        prompt = discord.utils.escape_markdown(error.prompt)[:PROMPT_CHARS]
        embed = discord.Embed(title="🚫 Refused by the blocklist", description=prompt, colour=discord.Colour.red())
        embed.add_field(name="Requested by", value=f"<@{error.member_id}>")
        embed.add_field(name="Channel", value=f"<#{error.channel_id}>" if error.channel_id else "unknown")
        embed.add_field(name="Entry", value=discord.utils.escape_markdown(error.entry))
        try:
            await self._send(error.guild_id, embed=embed)
        except DeliveryError as exc:
            log.info("blocklist refusal not logged: %s", exc)

    async def unsure(self, job: Job, charge: int, reason: str) -> None:
        """Log a job charged without an image (nothing when the server has no mod-log)."""
        if job.guild_id is None or await self._channel(job.guild_id) is None:
            return
        embed = discord.Embed(
            title="⚠️ Charged without an image",
            description=discord.utils.escape_markdown(reason)[:PROMPT_CHARS],
            colour=MODLOG_COLOUR,
        )
        embed.add_field(name="Requested by", value=f"<@{job.member_id}>")
        embed.add_field(name="Channel", value=f"<#{job.channel_id}>" if job.channel_id else "unknown")
        embed.add_field(name="Provider", value=job.provider.capitalize())
        embed.add_field(name="Charged", value=format_usd(charge))
        embed.set_footer(text=f"job {job.id}")
        try:
            await self._send(job.guild_id, embed=embed)
        except DeliveryError as exc:
            log.info("charge without an image not logged: %s", exc)

    async def images(self, hold: HoldRow) -> Sequence[bytes]:
        """Return the image files of a quarantined result's mod-log message (empty if it or its files are gone)."""
        if hold.channel_id is None or hold.message_id is None:
            return []
        channel = self._client.get_partial_messageable(hold.channel_id, guild_id=hold.guild_id)
        try:
            message = await channel.fetch_message(hold.message_id)
            return [await attachment.read() for attachment in message.attachments]
        except discord.HTTPException as exc:
            log.info("mod-log images of job %s not readable: %s", hold.job_id, exc)
            return []

    async def decided(self, job: Job, hold: HoldRow) -> None:
        """Edit the hold's mod-log message: who decided what (or that it expired or was cancelled), without buttons."""
        if hold.channel_id is None or hold.message_id is None:
            return
        text = decision_text(job, hold)
        message = self._client.get_partial_messageable(hold.channel_id, guild_id=hold.guild_id).get_partial_message(
            hold.message_id
        )
        extra: dict[str, object] = {"attachments": []} if hold.kind == "safety" and hold.decision == "rejected" else {}
        try:
            await message.edit(content=text, view=None, allowed_mentions=NONE_MENTIONS, **extra)  # type: ignore[arg-type]
        except discord.HTTPException as exc:
            log.info("decision on job %s not shown in the mod-log: %s", job.id, exc)


def decision_text(job: Job, hold: HoldRow) -> str:
    """Return the line a decided mod-log entry shows: who decided what, or that it expired or was cancelled.

    A held request its requester (or a moderator) cancelled is stored as a rejection by them with the job
    `cancelled` (`Approvals.withdraw`).
    """
    by = f" by <@{hold.decided_by}>" if hold.decided_by is not None else ""
    if hold.kind == "approval" and hold.decision == "rejected" and job.state is JobState.CANCELLED:
        who = " (the requester)" if hold.decided_by == job.member_id else ""
        return f"🚫 Cancelled{by}{who} before a moderator decided; the hold was released."
    reason = f": {discord.utils.escape_markdown(hold.reason)}" if hold.reason and hold.decision != "expired" else ""
    words = {
        ("approval", "approved"): f"✅ Approved{by}; queued.",
        ("approval", "rejected"): f"✖️ Rejected{by}{reason}; the hold was released.",
        ("approval", "expired"): "⌛ Expired (no decision in time); the hold was released.",
        ("safety", "approved"): f"✅ Approved{by}; posted in the channel.",
        ("safety", "rejected"): f"✖️ Rejected{by}{reason}; not posted.",
    }
    return words.get((hold.kind, hold.decision or ""), f"Decided{by}.")
