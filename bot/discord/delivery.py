"""How a job's messages reach Discord: `DiscordDelivery` implements the job service's `Delivery` port.

One job has one place in the channel (contract §2 step 8):

- while its interaction token is valid (more than a minute of its 15 left), the interaction's original response is
  edited: the public "thinking…" placeholder becomes the status (queue position, then elapsed time, with a Cancel
  button), then the result or the failure, always in place. Editing the same message also makes a re-delivery after
  a crash harmless;
- once the token is too old, or Discord says it is gone (401, 50027, 10015, 10062) or the original response was
  deleted (10008), the result is a reply in the channel that mentions the requester; progress is then not shown.
  Shortly before the token stops being used (`HANDOVER_LEAD` before that minute of margin), the status gets one last
  edit: its Cancel button goes (it could not be edited away later) and it says the result will come as a reply in
  the channel and that `/queue` can still cancel the job. From then on the result or failure is that reply, and so is
  a cancellation once the status can no longer be edited (the channel was promised a result). Each status is handed
  over in its own task (at most `HANDOVER_CONCURRENCY` edits at once), so one job's busy message does not hold up
  the others; a job counts as handed over only once that edit was made.

Before anything is posted the bot's own permissions in the channel are checked (from the interaction when it asks,
from the gateway cache when a job delivers): without Attach Files or Embed Links the job is refused or fails with a
`DeliveryError` that says which permission is missing, and nothing is charged. A `Forbidden` answer from Discord maps
to the same errors.

Edits of one job's message are serialised (one lock per job), and once the result or the failure is shown no late
progress edit can overwrite it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final, cast

import discord

from bot.catalog import MODEL_SPECS, Size
from bot.clock import utc_now
from bot.discord.embeds import one_line
from bot.discord.views import result_view, status_view
from bot.images import FittedImage
from bot.jobs.delivery import DeliveryError, ResultSummary
from bot.jobs.requests import DeliveryTarget, RequestKind
from bot.jobs.service import GenerationService
from bot.money import format_usd
from bot.storage.rows import Job, JobState

if TYPE_CHECKING:
    from discord.types.message import MessageReference as MessageReferencePayload

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(minutes=15)
"""How long Discord accepts an interaction token for follow-ups and edits."""

TOKEN_MARGIN = timedelta(minutes=1)
"""How long before its expiry a token stops being used (then a job's messages are replies in the channel)."""


def token_fresh(target: DeliveryTarget, at: datetime) -> bool:
    """Return True if the target's token may still be used at `at`: more than `TOKEN_MARGIN` left of its life."""
    if target.interaction_token is None or target.token_expires_at is None:
        return False
    return target.token_expires_at - at > TOKEN_MARGIN


FINAL_MEMORY_SECONDS = 20 * 60.0
"""How long a job is remembered as finished (its message must not be overwritten); longer than a token lives."""

PROMPT_EMBED_CHARS = 1500
"""Longest prompt shown in a result embed (Discord allows 4096 in the description, 6000 in the whole embed)."""

ATTACH_FILES_MISSING = (
    "I can't attach files in this channel, so I can't post images here. "
    "Ask an admin to give me the Attach Files permission. Nothing was charged."
)
EMBED_LINKS_MISSING = (
    "I can't embed links in this channel, so I can't post the result card here. "
    "Ask an admin to give me the Embed Links permission. Nothing was charged."
)
SEND_MISSING = (
    "I can't send messages in this channel. Ask an admin to give me the View Channel and Send Messages "
    "permissions. Nothing was charged."
)
CHANNEL_GONE = "The channel this was asked in no longer exists, so nothing could be posted. Nothing was charged."

HANDOVER_LEAD = timedelta(seconds=60)
"""How long before the token stops being used (a minute before it expires) a status is handed over to the channel:
room for a round of checks, a wait for the job's lock (a progress edit held up by a rate limit) and the edit."""

HANDOVER_CONCURRENCY = 8
"""Most handover edits in flight at once (each job's has its own task; the others wait for a turn)."""

HANDOVER_CHECK_SECONDS = 5.0
"""How often the statuses on show are checked for a token that is about to stop being used (well inside the lead)."""

CANCELLED_IN_CHANNEL = "✖️ Job `{job_id}` was cancelled by {who}; nothing was charged, and no result will be posted."
"""The reply in the channel for a cancelled job whose status can no longer be edited (mentions no one)."""

HANDED_OVER = (
    "⌛ Job `{job_id}` is still on its way. Discord lets me update this message for 15 minutes only, so the result "
    "will be posted as a reply in this channel when it is ready. The member who asked can still cancel it with "
    "`/queue`."
)

_ORIGINAL: Final = cast(int, "@original")
"""Discord's path segment for an interaction's original response. discord.py's `Webhook.edit_message` puts the id
into the route as text, so the documented `…/messages/@original` endpoint is reached through the public API; it is
the one route that works for every kind of original response (a deferred reply, or the message a button is on)."""

_TOKEN_GONE_CODES = frozenset({50027, 10015, 10062, 10008})
"""Invalid webhook token, unknown webhook, unknown interaction, unknown message (the original was deleted)."""
_MISSING_PERMISSIONS = 50013

_SIZE_NAMES = {Size.SQUARE: "square", Size.LANDSCAPE: "landscape", Size.PORTRAIT: "portrait"}
_PARENT_LABELS = {RequestKind.REROLL: "Reroll of", RequestKind.EDIT: "Edit of"}
_MENTION_REQUESTER = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=False)
"""Lets the requester's mention notify them; a channel post mentions no one else.

`users=True` (parse user mentions) rather than a list of ids: discord.py writes listed ids as numbers, which Discord's
API description does not allow.
"""


def permission_problem(permissions: discord.Permissions, *, channel_post: bool = False) -> str | None:
    """Return why the bot cannot post a result with these permissions, or None when it can.

    `channel_post` adds what a plain channel message needs (an interaction response does not need Send Messages).
    """
    if channel_post and not (permissions.view_channel and permissions.send_messages):
        return SEND_MISSING
    if not permissions.attach_files:
        return ATTACH_FILES_MISSING
    if not permissions.embed_links:
        return EMBED_LINKS_MISSING
    return None


def delivery_target(
    interaction: discord.Interaction[Any],
    *,
    reply_to_message_id: int | None = None,
    source_message_id: int | None = None,
) -> DeliveryTarget:
    """Describe where an interaction's job is delivered: its original response while the token lives, else a reply.

    `reply_to_message_id` is what a late result replies to (the request's response message, or a member's message);
    `source_message_id` is the message whose images are edited.
    """
    return DeliveryTarget(
        channel_id=interaction.channel_id,
        application_id=interaction.application_id,
        interaction_token=interaction.token,
        token_expires_at=interaction.created_at + TOKEN_LIFETIME,
        reply_to_message_id=reply_to_message_id,
        attachment_size_limit=interaction.filesize_limit,
        source_message_id=source_message_id,
    )


def message_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """Return the link that opens a message in Discord."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def queued_text(job_id: str, estimate: int, position: int) -> str:
    """Status of a waiting job."""
    return f"⏳ Queued: position {position} · estimate ~{format_usd(estimate)} · job `{job_id}`"


def posting_text(job_id: str) -> str:
    """Status of a job whose images are made and are being posted (it can no longer be cancelled)."""
    return f"📤 Done on Runware; posting the images… · job `{job_id}`"


def running_text(job_id: str, estimate: int, elapsed_seconds: float | None = None) -> str:
    """Status of a running job."""
    elapsed = f" ({elapsed_seconds:.0f} s)" if elapsed_seconds is not None else ""
    return f"🎨 Generating…{elapsed} · estimate ~{format_usd(estimate)} · job `{job_id}`"


def result_embed(summary: ResultSummary, *, parent_url: str | None) -> discord.Embed:
    """Build the card under a result: prompt, model, size, quality, cost, remaining budget, requester, parent link."""
    embed = discord.Embed(
        description=discord.utils.escape_markdown(one_line(summary.prompt, PROMPT_EMBED_CHARS)),
        colour=discord.Colour.blurple(),
    )
    embed.add_field(name="Model", value=MODEL_SPECS[summary.model].label)
    embed.add_field(name="Size", value=f"{summary.size.value} ({_SIZE_NAMES[summary.size]})")
    embed.add_field(name="Quality", value=summary.quality.value)
    cost = format_usd(summary.cost)
    embed.add_field(name="Cost", value=cost if summary.cost_reported else f"{cost} (estimated)")
    if summary.remaining is None:
        remaining = "unlimited"
    else:
        remaining = format_usd(summary.remaining)
        if summary.resets_at is not None:
            remaining += f" · resets {discord.utils.format_dt(summary.resets_at, 'R')}"
    embed.add_field(name="Remaining budget", value=remaining)
    embed.add_field(name="Requested by", value=f"<@{summary.requester_id}>")
    if parent_url is not None:
        label = _PARENT_LABELS.get(summary.kind, "From")
        embed.add_field(name=label, value=f"[this image]({parent_url})", inline=False)
    footer = f"Job {summary.job_id}"
    if summary.image_count < summary.count:
        footer += f" · {summary.image_count} of {summary.count} images were made; you pay only for those"
    embed.set_footer(text=footer)
    return embed


@contextlib.contextmanager
def _uploads(job: Job, images: Sequence[FittedImage]) -> Iterator[list[discord.File]]:
    """Yield the images as files for one post, and empty their buffers as soon as the post is done.

    aiohttp learns an upload's size from `BytesIO.getbuffer()`, which makes the buffer copy the bytes it shares with
    `images` (one copy per image while it is posted; no public API of discord.py or aiohttp avoids it). Afterwards
    `discord.File.close()` puts the buffer's own `close` back as an instance attribute, a reference cycle, so each
    buffer and its copy lived on until the next full garbage collection: 25 such copies (38 MB) at the peak of
    `bench/interactions.py --photo-images` with one job posting at a time. Closing the buffer frees the copy at once.
    """
    buffers = [io.BytesIO(image.data) for image in images]
    try:
        yield [
            discord.File(buffer, filename=f"atelier-{job.id}-{index}.{image.filename_ext}")
            for index, (image, buffer) in enumerate(zip(images, buffers, strict=True), start=1)
        ]
    finally:
        for buffer in buffers:
            io.BytesIO.close(buffer)  # frees the copy; discord.File made the instance's own close() a no-op


class DiscordDelivery:
    """Posts results, progress and failures of jobs with discord.py (the job service's `Delivery`)."""

    def __init__(
        self, bot: discord.Client, service: GenerationService, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._bot = bot
        self._service = service
        self.clock = clock
        """Decides whether a token is still fresh enough to use (one minute of margin before the 15)."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._final: dict[str, float] = {}
        self._dead_tokens: dict[str, datetime | None] = {}
        """Tokens Discord refused, with when they would have expired anyway (then they are forgotten)."""
        self._statuses: dict[str, DeliveryTarget] = {}
        """Jobs whose status (with its Cancel button) is on show, to hand over before their token stops working."""
        self._handed_over: set[str] = set()
        """Jobs whose status was handed over: their result or failure is a reply in the channel."""
        self._watch: asyncio.Task[None] | None = None
        self._handovers: dict[str, asyncio.Task[None]] = {}
        """Handovers under way, one task per job."""
        self._handover_slots = asyncio.Semaphore(HANDOVER_CONCURRENCY)
        self.handover_check_seconds = HANDOVER_CHECK_SECONDS

    def close(self) -> None:
        """Stop watching the statuses on show and handing them over (when the cog unloads)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for task in self._handovers.values():
            task.cancel()
        self._handovers.clear()

    # ----------------------------------------------------------------------------------------- the Delivery port

    async def deliver(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> int | None:
        """Post the images with their card and buttons; return the message id. `DeliveryError` if it cannot."""
        target = DeliveryTarget.from_job(job)
        embed = result_embed(summary, parent_url=await self._parent_url(job, summary, target))
        async with self._lock(job.id):
            # The route is chosen here, under the lock and after every await before it: a handover or the token's
            # cutoff may have come meanwhile, and the permission check must be the one of the route taken.
            via_token = self._token_usable(target) and job.id not in self._handed_over
            channel_id = target.channel_id or job.channel_id
            problem = self._cached_problem(job.guild_id, channel_id, channel_post=not via_token)
            if problem is not None:
                raise DeliveryError(problem)
            self._mark_final(job.id)
            edited = None
            if via_token:
                with _uploads(job, images) as files:
                    edited = await self._edit_original(
                        target,
                        content=None,
                        embed=embed,
                        attachments=files,
                        view=result_view(job.id),
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
            if edited is not None:
                return edited.id
            with _uploads(job, images) as files:
                sent = await self._post_in_channel(job, target, content=f"<@{job.member_id}>", embed=embed, files=files)
            return sent.id

    async def progress(
        self, job: Job, position: int | None, elapsed_seconds: float, state: JobState, *, posting: bool = False
    ) -> None:
        """Show a job's queue position, elapsed time, or that its images are being posted (token path only).

        A job being posted can no longer be cancelled, so its status loses the Cancel button.
        """
        target = DeliveryTarget.from_job(job)
        if not self._token_usable(target):
            return
        if posting:
            await self.show_status(job.id, target, posting_text(job.id), cancellable=False)
            return
        if position is not None:
            text = queued_text(job.id, job.estimate, position)
        else:
            text = running_text(job.id, job.estimate, elapsed_seconds)
        await self.show_status(job.id, target, text)

    async def fail(self, job: Job, message: str) -> None:
        """Replace the job's status with why it failed (nothing was charged), or reply with it in the channel."""
        target = DeliveryTarget.from_job(job)
        text = f"❌ <@{job.member_id}> {message}"
        async with self._lock(job.id):
            handed_over = self._mark_final(job.id)
            edited = None
            if not handed_over:
                edited = await self._edit_original(
                    target,
                    content=text,
                    embed=None,
                    attachments=[],
                    view=None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            if edited is None:
                await self._post_in_channel(job, target, content=text)

    # ------------------------------------------------------------------------------------ status for the cogs

    async def show_status(self, job_id: str, target: DeliveryTarget, text: str, *, cancellable: bool = True) -> None:
        """Show a job's status, with its Cancel button if `cancellable`, unless its result or failure is there.

        Nothing is shown either once the job was handed over to the channel (its token is about to stop working).
        """
        async with self._lock(job_id):
            if job_id in self._final or job_id in self._handed_over:
                return
            try:
                edited = await self._edit_original(
                    target,
                    content=text,
                    view=status_view(job_id) if cancellable else None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except (discord.HTTPException, DeliveryError) as exc:
                # Only a status: the job runs on, and its result or failure is what the member must see.
                log.info("status of job %s not shown: %s", job_id, exc)
                return
            if edited is None:
                return
            if not cancellable:
                self._statuses.pop(job_id, None)  # no Cancel button left to take off before the token runs out
                return
            self._statuses[job_id] = target
            if self._watch is None or self._watch.done():
                self._watch = asyncio.get_running_loop().create_task(self._watch_statuses(), name="job-handover")

    async def show_cancelled(self, job: Job, by_member_id: int, *, reply_if_not_shown: bool = True) -> bool:
        """Replace a cancelled job's status message with the cancellation; False if its token no longer works.

        Then (a status handed over to the channel, a reply edit, a deleted status) the cancellation is a reply in the
        channel, mentioning no one, unless `reply_if_not_shown` is False: the caller shows it on the status itself.
        """
        target = DeliveryTarget.from_job(job)
        who = "its requester" if by_member_id == job.member_id else f"<@{by_member_id}>"
        text = f"✖️ Cancelled by {who}; nothing was charged · job `{job.id}`"
        async with self._lock(job.id):
            self._mark_final(job.id)
            try:
                edited = await self._edit_original(
                    target, content=text, view=None, allowed_mentions=discord.AllowedMentions.none()
                )
            except (discord.HTTPException, DeliveryError) as exc:
                log.info("cancellation of job %s not shown: %s", job.id, exc)
                return False
            if edited is not None:
                return True
            if reply_if_not_shown:
                try:
                    await self._post_in_channel(
                        job,
                        target,
                        content=CANCELLED_IN_CHANNEL.format(job_id=job.id, who=who),
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
                except (discord.HTTPException, DeliveryError) as exc:
                    log.info("cancellation of job %s not posted in the channel: %s", job.id, exc)
            return False

    async def delete_original(self, target: DeliveryTarget) -> None:
        """Delete an interaction's original response (a confirmation that led nowhere), if its token still works."""
        if not self._token_usable(target):
            return
        assert target.application_id is not None and target.interaction_token is not None
        webhook = discord.Webhook.partial(target.application_id, target.interaction_token, client=self._bot)
        try:
            await webhook.delete_message(_ORIGINAL)
        except discord.HTTPException as exc:
            log.info("could not delete an original response: %s", exc)

    async def show_text(self, target: DeliveryTarget, text: str) -> None:
        """Replace an interaction's original response with a line of text (no buttons), if its token still works."""
        try:
            await self._edit_original(target, content=text, view=None, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, DeliveryError) as exc:
            log.info("could not update an original response: %s", exc)

    # ---------------------------------------------------------------------------------------------- internals

    def _lock(self, job_id: str) -> asyncio.Lock:
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    def _mark_final(self, job_id: str) -> bool:
        """Record that the job's last word is being posted; return whether its status had been handed over."""
        self._statuses.pop(job_id, None)
        handed_over = job_id in self._handed_over
        self._handed_over.discard(job_id)
        now = asyncio.get_running_loop().time()
        self._final[job_id] = now
        for stale in [key for key, at in self._final.items() if now - at > FINAL_MEMORY_SECONDS]:
            del self._final[stale]
            lock = self._locks.get(stale)
            if lock is not None and not lock.locked():
                del self._locks[stale]
        return handed_over

    async def _watch_statuses(self) -> None:
        """Hand each status on show over to the channel shortly before its token stops being used.

        Each job is handed over in its own task: waiting for one job's lock (an upload, a progress edit held up by a
        rate limit) or for its edit never delays another job's handover.
        """
        while self._statuses or self._handovers:
            await asyncio.sleep(self.handover_check_seconds)
            soon = self.clock() + HANDOVER_LEAD
            for job_id, target in list(self._statuses.items()):
                if job_id in self._handovers or token_fresh(target, soon):
                    continue
                task = asyncio.get_running_loop().create_task(self._hand_over(job_id, target), name="job-handover")
                self._handovers[job_id] = task
                task.add_done_callback(partial(self._handover_done, job_id))

    def _handover_done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._handovers.get(job_id) is task:
            del self._handovers[job_id]

    async def _hand_over(self, job_id: str, target: DeliveryTarget) -> None:
        """Take the Cancel button off a status whose token is about to stop working, and say where the result goes."""
        async with self._lock(job_id):
            if job_id not in self._statuses or job_id in self._final:
                return
            async with self._handover_slots:
                try:
                    edited = await self._edit_original(
                        target,
                        content=HANDED_OVER.format(job_id=job_id),
                        view=None,
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
                except Exception:
                    # Only a status: it stays on the watch list, so the next round tries again while the token lasts.
                    log.warning("status of job %s not handed over; trying again", job_id, exc_info=True)
                    return
            self._statuses.pop(job_id, None)
            if edited is None:
                # The token can no longer be used: the result or failure is a reply anyway, but the Cancel button stays.
                log.info("status of job %s not handed over: its interaction token can no longer be used", job_id)
                return
            self._handed_over.add(job_id)

    def _token_usable(self, target: DeliveryTarget) -> bool:
        return (
            target.application_id is not None
            and target.interaction_token is not None
            and target.interaction_token not in self._dead_tokens
            and token_fresh(target, self.clock())
        )

    async def _edit_original(self, target: DeliveryTarget, **fields: Any) -> discord.WebhookMessage | None:
        """Edit the original response; None when the token can no longer be used (then nothing was changed)."""
        if not self._token_usable(target):
            return None
        assert target.application_id is not None and target.interaction_token is not None
        webhook = discord.Webhook.partial(target.application_id, target.interaction_token, client=self._bot)
        try:
            return await webhook.edit_message(_ORIGINAL, **fields)
        except discord.HTTPException as exc:
            if exc.status == 401 or exc.code in _TOKEN_GONE_CODES:
                # Never try a refused token again: invalid requests count towards Discord's Cloudflare ban.
                now = self.clock()
                for token, expires in list(self._dead_tokens.items()):
                    if expires is None or expires < now:
                        del self._dead_tokens[token]
                self._dead_tokens[target.interaction_token] = target.token_expires_at
                log.info("interaction token of channel %s is no longer usable (%s)", target.channel_id, exc.text)
                return None
            if exc.code == _MISSING_PERMISSIONS:
                raise DeliveryError(ATTACH_FILES_MISSING if fields.get("attachments") else SEND_MISSING) from exc
            raise

    async def _post_in_channel(
        self,
        job: Job,
        target: DeliveryTarget,
        *,
        content: str,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        allowed_mentions: discord.AllowedMentions = _MENTION_REQUESTER,
    ) -> discord.Message:
        """Reply in the job's channel (to `reply_to_message_id` when set); by default the requester's mention pings."""
        channel_id = target.channel_id or job.channel_id
        if channel_id is None:
            raise DeliveryError(CHANNEL_GONE)
        permissions = self._cached_permissions(job.guild_id, channel_id)
        if permissions is not None and not (permissions.view_channel and permissions.send_messages):
            raise DeliveryError(SEND_MISSING)
        reference = None
        if target.reply_to_message_id is not None and (permissions is None or permissions.read_message_history):
            reference = reply_reference(target.reply_to_message_id, channel_id, job.guild_id)
        channel = self._bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
        extra: dict[str, Any] = {} if reference is None else {"reference": reference}
        try:
            if embed is None:
                return await channel.send(content, allowed_mentions=allowed_mentions, **extra)
            return await channel.send(
                content,
                embed=embed,
                files=list(files),
                view=result_view(job.id),
                allowed_mentions=allowed_mentions,
                **extra,
            )
        except discord.Forbidden as exc:
            raise DeliveryError(ATTACH_FILES_MISSING if files else SEND_MISSING) from exc
        except discord.NotFound as exc:
            raise DeliveryError(CHANNEL_GONE) from exc

    def _cached_permissions(self, guild_id: int | None, channel_id: int | None) -> discord.Permissions | None:
        """Return the bot's permissions in a channel from the gateway cache; None when the cache does not know."""
        if guild_id is None or channel_id is None:
            return None
        guild = self._bot.get_guild(guild_id)
        if guild is None or guild.me is None:
            return None
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None:
            return None
        return channel.permissions_for(guild.me)

    def _cached_problem(self, guild_id: int | None, channel_id: int | None, *, channel_post: bool) -> str | None:
        permissions = self._cached_permissions(guild_id, channel_id)
        return None if permissions is None else permission_problem(permissions, channel_post=channel_post)

    async def _parent_url(self, job: Job, summary: ResultSummary, target: DeliveryTarget) -> str | None:
        """Link to what an edit or reroll started from: the parent job's result, else the edited message."""
        if summary.parent_job_id is not None:
            parent = await self._service.get_job(summary.parent_job_id)
            if parent is not None and parent.result_message_id is not None and parent.channel_id is not None:
                return message_url(parent.guild_id, parent.channel_id, parent.result_message_id)
        channel_id = target.channel_id or job.channel_id
        if target.source_message_id is not None and channel_id is not None:
            return message_url(job.guild_id, channel_id, target.source_message_id)
        return None


def reply_reference(message_id: int, channel_id: int, guild_id: int | None) -> discord.MessageReference:
    """Return a reference that makes a new message a reply to `message_id` (sent even if that one is gone)."""
    return _Reply(message_id=message_id, channel_id=channel_id, guild_id=guild_id, fail_if_not_exists=False)


class _Reply(discord.MessageReference):
    """A message reference whose ids are written as strings, the snowflake format of Discord's API description.

    discord.py writes them as numbers; Discord accepts both, its published description only the strings.
    """

    def to_dict(self) -> MessageReferencePayload:
        """Serialise with snowflakes as strings."""
        payload = super().to_dict()
        for key in ("message_id", "channel_id", "guild_id"):
            if payload.get(key) is not None:
                payload[key] = str(payload[key])
        return payload

    to_message_reference_dict = to_dict
