"""The fake's world (guilds, roles, members, channels), its clock and ids, stored attachments, messages, interactions.

Every object renders itself as the JSON Discord would send (``payload()``); ids are real snowflakes built from the
fake's clock, so discord.py's ``created_at`` works.
"""

from __future__ import annotations

import io
import mimetypes
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._flags import Permission
from ._records import ResponseRecord
from ._rules import MESSAGE_FLAG_EPHEMERAL, MESSAGE_FLAG_LOADING, iter_components

if TYPE_CHECKING:
    from ._core import FakeDiscordCore

__all__ = [
    "FakeChannel",
    "FakeClock",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "StoredBlob",
    "World",
    "sniff_content_type",
]

DISCORD_EPOCH_MS = 1_420_070_400_000


class FakeClock:
    """The fake's notion of now; :meth:`advance` moves it forward without waiting (token expiry, timestamps)."""

    def __init__(self) -> None:
        """Start at the real time."""
        self.offset = 0.0

    def monotonic(self) -> float:
        """Monotonic seconds, shifted by every :meth:`advance`."""
        return time.monotonic() + self.offset

    def wall(self) -> float:
        """Unix seconds, shifted by every :meth:`advance`."""
        return time.time() + self.offset

    def iso(self) -> str:
        """ISO 8601 timestamp as Discord writes them (``2025-01-01T00:00:00.000000+00:00``)."""
        return datetime.fromtimestamp(self.wall(), UTC).isoformat(timespec="microseconds")

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("the fake's clock only moves forward")
        self.offset += seconds


class SnowflakeFactory:
    """Unique, increasing snowflakes whose timestamp part follows the fake's clock."""

    def __init__(self, clock: FakeClock) -> None:
        """Tie the factory to ``clock``."""
        self._clock = clock
        self._last = 0

    def __call__(self) -> int:
        """The next snowflake."""
        candidate = (int(self._clock.wall() * 1000) - DISCORD_EPOCH_MS) << 22
        candidate = max(candidate, self._last + 1)
        self._last = candidate
        return candidate

    def skip_to(self, snowflake: int) -> None:
        """Continue after ``snowflake`` (one made from a later timestamp), so no later snowflake repeats it."""
        self._last = max(self._last, snowflake)


def sniff_content_type(data: bytes, filename: str) -> str | None:
    """The MIME type Discord would report: magic bytes for images, else the file extension."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    guessed, _ = mimetypes.guess_type(filename)
    if guessed and guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed


def _image_size(data: bytes, content_type: str | None) -> tuple[int, int] | None:
    if not content_type or not content_type.startswith("image/"):
        return None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


@dataclass(eq=False)
class FakeUser:
    """A Discord user (a member's account, or the bot)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        """The user object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.username,
            "global_name": self.global_name,
            "avatar": None,
            "discriminator": "0",
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class FakeRole:
    """A guild role; the ``@everyone`` role has the guild's id."""

    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    managed: bool = False
    mentionable: bool = False
    hoist: bool = False
    color: int = 0
    bot_id: int | None = None

    def payload(self) -> dict[str, Any]:
        """The role object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(int(self.permissions)),
            "position": self.position,
            "color": self.color,
            "colors": {"primary_color": self.color, "secondary_color": None, "tertiary_color": None},
            "hoist": self.hoist,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class FakeMember:
    """A user's membership in a guild: roles, nickname, join time."""

    user: FakeUser
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = ""

    @property
    def id(self) -> int:
        """The user's id."""
        return self.user.id

    def payload(self, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
        """The guild member object; ``permissions`` is added as interactions carry it."""
        data: dict[str, Any] = {
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
            "flags": 0,
            "joined_at": self.joined_at,
            "nick": self.nick,
            "pending": False,
            "premium_since": None,
            "roles": [str(role) for role in self.roles],
            "deaf": False,
            "mute": False,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(int(permissions))
        return data


THREAD_TYPES = frozenset({10, 11, 12})
"""Discord's channel types for announcement, public and private threads."""


@dataclass(eq=False)
class FakeChannel:
    """A guild channel with its permission overwrites: a text channel (type 0), a category (4) or a thread (11).

    A text channel's ``parent_id`` is its category; a thread's is its channel (a thread takes its channel's
    permissions and has an ``owner_id``).
    """

    id: int
    guild_id: int
    name: str
    position: int = 0
    type: int = 0
    topic: str | None = None
    nsfw: bool = False
    permission_overwrites: list[dict[str, Any]] = field(default_factory=list)
    last_message_id: int | None = None
    parent_id: int | None = None
    owner_id: int | None = None

    @property
    def is_thread(self) -> bool:
        """True for the thread types (announcement, public and private threads)."""
        return self.type in THREAD_TYPES

    def payload(self, *, permissions: int | None = None) -> dict[str, Any]:
        """The channel object; ``permissions`` is added as interactions and resolved channels carry it."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [
                {"id": str(o["id"]), "type": int(o["type"]), "allow": str(int(o["allow"])), "deny": str(int(o["deny"]))}
                for o in self.permission_overwrites
            ],
            "nsfw": self.nsfw,
            "topic": self.topic,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }
        if self.is_thread:
            data.pop("permission_overwrites")
            data["owner_id"] = str(self.owner_id or 0)
            data["message_count"] = 0
            data["member_count"] = 1
            data["thread_metadata"] = {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": "2026-01-01T00:00:00+00:00",
                "locked": False,
            }
        if permissions is not None:
            data["permissions"] = str(int(permissions))
        return data


@dataclass(eq=False)
class FakeGuild:
    """A guild: roles (``@everyone`` has the guild's id), members and channels, keyed by id."""

    id: int
    name: str
    owner_id: int
    created_at: str
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)

    @property
    def everyone(self) -> FakeRole:
        """The ``@everyone`` role."""
        return self.roles[self.id]

    def base_permissions(self, member: FakeMember) -> int:
        """Guild-level permissions of ``member`` (owner and Administrator get everything)."""
        if member.id == self.owner_id:
            return int(Permission.ALL)
        permissions = int(self.everyone.permissions)
        for role_id in member.roles:
            role = self.roles.get(role_id)
            if role is not None:
                permissions |= int(role.permissions)
        if permissions & Permission.ADMINISTRATOR:
            return int(Permission.ALL)
        return permissions

    def permissions_in(self, member: FakeMember, channel: FakeChannel | None) -> int:
        """Permissions of ``member`` in ``channel``, applying overwrites in Discord's order."""
        permissions = self.base_permissions(member)
        if channel is None or permissions & Permission.ADMINISTRATOR:
            return permissions
        if channel.is_thread and channel.parent_id in self.channels:
            channel = self.channels[channel.parent_id]
        overwrites = {int(o["id"]): o for o in channel.permission_overwrites}
        everyone = overwrites.get(self.id)
        if everyone is not None:
            permissions = (permissions & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for role_id in member.roles:
            overwrite = overwrites.get(role_id)
            if overwrite is not None and int(overwrite["type"]) == 0:
                allow |= int(overwrite["allow"])
                deny |= int(overwrite["deny"])
        permissions = (permissions & ~deny) | allow
        own = overwrites.get(member.id)
        if own is not None and int(own["type"]) == 1:
            permissions = (permissions & ~int(own["deny"])) | int(own["allow"])
        if not permissions & Permission.VIEW_CHANNEL:
            return 0
        return permissions

    def payload(self, *, members: list[FakeMember], joined_at: str) -> dict[str, Any]:
        """The full guild object of GUILD_CREATE, with the given member list."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "features": [],
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "application_id": None,
            "roles": [role.payload() for role in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": joined_at,
            "large": False,
            "unavailable": False,
            "lazy": True,
            "member_count": len(self.members),
            "members": [member.payload() for member in members],
            "channels": [channel.payload() for channel in self.channels.values() if not channel.is_thread],
            "threads": [channel.payload() for channel in self.channels.values() if channel.is_thread],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass(frozen=True)
class World:
    """Ids of :meth:`FakeDiscord.default_world`: one guild, its roles, members and a text channel."""

    guild_id: int
    channel_id: int
    everyone_role_id: int
    admin_role_id: int
    artist_role_id: int
    bot_role_id: int
    owner_id: int
    admin_id: int
    member_ids: tuple[int, int]

    @property
    def member_id(self) -> int:
        """The first ordinary member (holds the artist role)."""
        return self.member_ids[0]

    @property
    def other_member_id(self) -> int:
        """The second ordinary member (no extra role)."""
        return self.member_ids[1]


@dataclass(eq=False)
class StoredBlob:
    """A file the fake's CDN serves: uploaded by the bot, or stored by a test with ``store_blob``.

    ``content_type`` is sniffed from the bytes as Discord does (discord.py labels every upload
    ``application/octet-stream``); ``width``/``height`` are set for decodable images.
    """

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    proxy_url: str
    description: str | None = None
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    @classmethod
    def build(
        cls,
        *,
        blob_id: int,
        data: bytes,
        filename: str,
        content_type: str | None,
        url: str,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> StoredBlob:
        """Create a blob, sniffing the content type (unless given) and the image size."""
        sniffed = content_type or sniff_content_type(data, filename)
        dimensions = _image_size(data, sniffed)
        return cls(
            id=blob_id,
            filename=filename,
            data=data,
            content_type=sniffed,
            url=url,
            proxy_url=url,
            description=description,
            width=dimensions[0] if dimensions else None,
            height=dimensions[1] if dimensions else None,
            ephemeral=ephemeral,
        )

    def payload(self) -> dict[str, Any]:
        """The attachment object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
            "flags": 0,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            data["width"] = self.width
            data["height"] = self.height
        if self.description:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(eq=False)
class FakeMessage:
    """A message the fake holds: sent by the bot (REST, interaction responses) or by a test's user.

    Edits change the object in place; ``edits`` keeps each applied body. ``deleted`` is set instead of removing it.
    ``attachments`` are :class:`StoredBlob` (bytes in ``data``, sniffed ``content_type``); ``embeds`` and
    ``components`` are stored as Discord returns them (``type: rich``, ``attachment://`` resolved, numeric component
    ids); ``interaction_id`` names the interaction whose token created it.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    timestamp: str
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredBlob] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    mentions: list[FakeUser] = field(default_factory=list)
    mention_role_ids: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    message_reference: dict[str, Any] | None = None
    referenced: FakeMessage | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    interaction_summary: dict[str, Any] | None = None
    interaction_id: int | None = None
    nonce: str | None = None
    edited_timestamp: str | None = None
    deleted: bool = False
    edits: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[str] = field(default_factory=list)

    @property
    def author_id(self) -> int:
        """The author's user id."""
        return self.author.id

    @property
    def ephemeral(self) -> bool:
        """Whether only the invoking user sees it."""
        return bool(self.flags & MESSAGE_FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """Whether it is still a deferred "thinking…" placeholder."""
        return bool(self.flags & MESSAGE_FLAG_LOADING)

    def iter_components(self) -> Iterator[dict[str, Any]]:
        """Every component, depth first."""
        return iter_components(self.components)

    def button_custom_ids(self) -> list[str]:
        """``custom_id`` of every button (link buttons have none)."""
        return [c["custom_id"] for c in self.iter_components() if c.get("type") == 2 and "custom_id" in c]

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        """The component with ``custom_id``, if any."""
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    def attachment(self, filename: str) -> StoredBlob:
        """The attachment called ``filename`` (``KeyError`` if absent)."""
        for blob in self.attachments:
            if blob.filename == filename:
                return blob
        raise KeyError(
            f"message {self.id} has no attachment {filename!r}; it has {[b.filename for b in self.attachments]}"
        )

    def payload(self, *, strip_content: bool = False, with_reference: bool = True) -> dict[str, Any]:
        """The message object; ``strip_content`` blanks what the Message Content intent guards."""
        data: dict[str, Any] = {
            "type": self.type,
            "content": "" if strip_content else self.content,
            "mentions": [user.payload() for user in self.mentions],
            "mention_roles": [str(role) for role in self.mention_role_ids],
            "attachments": [] if strip_content else [blob.payload() for blob in self.attachments],
            "embeds": [] if strip_content else [dict(embed) for embed in self.embeds],
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "flags": self.flags,
            "components": [] if strip_content else [dict(c) for c in self.components],
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "pinned": False,
            "mention_everyone": self.mention_everyone,
            "tts": self.tts,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.interaction_summary is not None:
            data["interaction"] = self.interaction_summary
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": {"id": None, "name": emoji},
                    "count": 1,
                    "count_details": {"burst": 0, "normal": 1},
                    "me": True,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for emoji in self.reactions
            ]
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            if with_reference:
                data["referenced_message"] = (
                    self.referenced.payload(with_reference=False) if self.referenced is not None else None
                )
        return data


class FakeInteraction:
    """An interaction the fake dispatched, and everything the bot did with its token.

    Attributes: ``id``, ``token``, ``type`` (2 command, 3 component, 4 autocomplete, 5 modal submit), ``name``
    (command path or custom_id), ``user``, ``guild_id``, ``channel_id``, ``payload`` (INTERACTION_CREATE data as
    sent), ``message`` (the clicked message, for components), ``dispatched_at`` / ``acked_at`` (fake monotonic clock;
    ``acked_at`` is the first callback request, accepted or not), ``ack_status`` (200 once a callback was accepted,
    else the status of the latest attempt, ``None`` before any), ``ack_type`` (accepted callback type),
    ``ephemeral``, ``modal`` (the type-9 data, with component ids), ``autocomplete_choices``, ``original``
    (``@original``), ``followups`` and ``responses`` (every request made with the token, in order).
    """

    def __init__(
        self,
        fake: FakeDiscordCore,
        *,
        interaction_id: int,
        token: str,
        type: int,
        name: str,
        user: FakeUser,
        guild_id: int | None,
        channel_id: int,
        payload: dict[str, Any],
        message: FakeMessage | None = None,
        opened_by: FakeInteraction | None = None,
    ) -> None:
        """Build the record; ``payload`` is the INTERACTION_CREATE data as dispatched."""
        self._fake = fake
        self.id = interaction_id
        self.token = token
        self.type = type
        self.name = name
        self.user = user
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.payload = payload
        self.message = message
        self.opened_by = opened_by
        self.dispatched_at: float | None = None
        self.responses: list[ResponseRecord] = []
        self.ack_status: int | None = None
        self.ack_type: int | None = None
        self.acked_at: float | None = None
        self.ephemeral = False
        self.modal: dict[str, Any] | None = None
        self.autocomplete_choices: list[dict[str, Any]] | None = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []

    def __repr__(self) -> str:
        """Short description for assertion messages."""
        return f"<FakeInteraction id={self.id} type={self.type} name={self.name!r} ack={self.ack_status}>"

    @property
    def user_id(self) -> int:
        """The invoking user's id."""
        return self.user.id

    @property
    def acknowledged(self) -> bool:
        """Whether an initial response was accepted."""
        return self.ack_status == 200

    @property
    def deferred(self) -> bool:
        """Whether the accepted initial response was a defer (type 5 or 6)."""
        return self.acknowledged and self.ack_type in (5, 6)

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the first callback request."""
        if self.acked_at is None or self.dispatched_at is None:
            return None
        return self.acked_at - self.dispatched_at

    def original_message(self) -> FakeMessage | None:
        """The message ``@original`` refers to (response, loading placeholder, or the clicked message)."""
        return self.original

    def messages(self) -> list[FakeMessage]:
        """Messages this interaction created or edited, in the order they were first touched."""
        seen: list[FakeMessage] = []
        for record in self.responses:
            if record.ok and record.message is not None and record.message not in seen:
                seen.append(record.message)
        return seen

    async def wait_response(self, timeout: float = 5.0) -> ResponseRecord:  # noqa: ASYNC109
        """The first callback (initial response) request, accepted or not."""

        def first_callback() -> ResponseRecord | None:
            return next((r for r in self.responses if r.kind == "callback"), None)

        return await self._fake.wait_until(first_callback, timeout=timeout, what=lambda: f"a callback for {self!r}")

    async def wait_message(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> FakeMessage:
        """The latest message this interaction produced that satisfies ``predicate``.

        Without a predicate: any non-deleted message that is not a "thinking…" placeholder (the edited original
        response or a follow-up). Messages are live objects, so later edits show on the returned one.
        """
        check = predicate or (lambda m: not m.loading)

        def match() -> FakeMessage | None:
            candidates = [m for m in self.messages() if not m.deleted and check(m)]
            return candidates[-1] if candidates else None

        return await self._fake.wait_until(
            match, timeout=timeout, what=lambda: f"a matching message for {self!r}; it has {self.responses}"
        )
