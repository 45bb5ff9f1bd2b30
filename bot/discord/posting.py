"""Posting in a channel: the bot's permissions there, reply references, image uploads, message links.

Before anything is posted the bot's own permissions in the channel are checked (from the interaction when it asks,
`permission_problem`; from the gateway cache when a job delivers, `ChannelPosts.problem`): without Attach Files or
Embed Links the job is refused or fails with a `DeliveryError` that says which permission is missing, and nothing is
charged. A `Forbidden` answer from Discord maps to the same errors.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.views import result_view
from bot.images import FittedImage
from bot.jobs.delivery import DeliveryError
from bot.jobs.requests import DeliveryTarget
from bot.storage.rows import Job

if TYPE_CHECKING:
    from discord.types.message import MessageReference as MessageReferencePayload

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

MENTION_REQUESTER = discord.AllowedMentions(everyone=False, roles=False, users=True, replied_user=False)
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


def message_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    """Return the link that opens a message in Discord."""
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


@contextlib.contextmanager
def uploads(job: Job, images: Sequence[FittedImage]) -> Iterator[list[discord.File]]:
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


class ChannelPosts:
    """Posts a job's messages in its channel as plain (non-interaction) messages, after checking permissions."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def post(
        self,
        job: Job,
        target: DeliveryTarget,
        *,
        content: str,
        embed: discord.Embed | None = None,
        files: Sequence[discord.File] = (),
        allowed_mentions: discord.AllowedMentions = MENTION_REQUESTER,
    ) -> discord.Message:
        """Reply in the job's channel (to `reply_to_message_id` when set); by default the requester's mention pings.

        With an `embed` the message is a result: the files and the result buttons go with it.
        """
        channel_id = target.channel_id or job.channel_id
        if channel_id is None:
            raise DeliveryError(CHANNEL_GONE)
        permissions = self.permissions(job.guild_id, channel_id)
        if permissions is not None and not (permissions.view_channel and permissions.send_messages):
            raise DeliveryError(SEND_MISSING)
        reference = None
        if target.reply_to_message_id is not None and (permissions is None or permissions.read_message_history):
            reference = reply_reference(target.reply_to_message_id, channel_id, job.guild_id)
        channel = self._client.get_partial_messageable(channel_id, guild_id=job.guild_id)
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

    def permissions(self, guild_id: int | None, channel_id: int | None) -> discord.Permissions | None:
        """Return the bot's permissions in a channel from the gateway cache; None when the cache does not know."""
        if guild_id is None or channel_id is None:
            return None
        guild = self._client.get_guild(guild_id)
        if guild is None or guild.me is None:
            return None
        channel = guild.get_channel_or_thread(channel_id)
        if channel is None:
            return None
        return channel.permissions_for(guild.me)

    def problem(self, guild_id: int | None, channel_id: int | None, *, channel_post: bool) -> str | None:
        """Return why a result cannot be posted in the channel (cached permissions), or None when it can or unknown."""
        permissions = self.permissions(guild_id, channel_id)
        return None if permissions is None else permission_problem(permissions, channel_post=channel_post)


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
