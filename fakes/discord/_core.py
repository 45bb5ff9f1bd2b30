"""State shared by the fake's REST handlers, gateway and injection helpers: the world, messages, blobs, sessions."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from ._flags import (
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    PRIVILEGED_INTENTS,
    Intent,
    Permission,
    intents_allowed_by,
    limited_flags,
)
from ._gateway import GatewaySession
from ._models import (
    FakeChannel,
    FakeClock,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    SnowflakeFactory,
    StoredBlob,
    World,
)
from ._records import RecordedRequest, RuleViolation, UploadedFile
from ._rules import (
    CODE_EMPTY_MESSAGE,
    MESSAGE_FLAG_LOADING,
    MESSAGE_FLAG_SUPPRESS_EMBEDS,
    FakeHTTPError,
    Limits,
    form_error,
    walk_components,
)

__all__ = ["FakeDiscordCore"]

T = TypeVar("T")

_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


class FakeDiscordCore:
    """The fake's state and the operations every part of it shares (see :class:`FakeDiscord` for the public API)."""

    def __init__(
        self,
        *,
        application_id: int = 4242,
        bot_user_id: int = 4242,
        token: str = "fake-bot-token",
        heartbeat_interval_ms: int = 45000,
        ack_deadline: float = 3.0,
        validate_openapi: bool = True,
        attachment_size_limit: int = 10 * 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = 15 * 60.0,
        strict_intents: bool = True,
        validate_responses: bool = False,
        bot_name: str = "Atelier",
        bot_permissions: int = int(DEFAULT_BOT_PERMISSIONS),
        replay_buffer: int = 10_000,
        privileged_intents: int = int(PRIVILEGED_INTENTS),
        shard_count: int = 1,
        require_shards: bool = False,
    ) -> None:
        """Configure the fake; every rule knob is also a plain attribute a test may change while it runs."""
        self.application_id = application_id
        self.bot_user_id = bot_user_id
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.ack_deadline = ack_deadline
        self.token_ttl = token_ttl
        self.validate_openapi = validate_openapi
        self.validate_responses = validate_responses
        self.attachment_size_limit = attachment_size_limit
        self.strict_intents = strict_intents
        self.bot_permissions = bot_permissions
        self.host = host
        self.requested_port = port
        self.replay_buffer = replay_buffer
        self.privileged_intents = privileged_intents
        self.shard_count = shard_count
        """The shard count `GET /gateway/bot` recommends, and the only count an IDENTIFY's `shard` may name (else
        4010). Each server's events go to the session of shard `(guild_id >> 22) % shard_count`, DMs to shard 0."""
        self.require_shards = require_shards
        """True: an IDENTIFY without `shard` is closed with 4011 (Sharding required), as past 2,500 servers."""
        self.application_flags: int | None = None
        """The flags ``GET /applications/@me`` serves, and then also what the gateway allows (for instance
        ``1 << 18``, a verified application granted Message Content); None: the ``_LIMITED`` flags of
        ``privileged_intents``."""
        self.limits = Limits()
        self.clock = FakeClock()
        self._snowflake = SnowflakeFactory(self.clock)
        self._base_url = ""

        self.bot_user = FakeUser(bot_user_id, bot_name, bot=True)
        self.app_owner = FakeUser(self._snowflake(), "app-owner", global_name="App Owner")
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.app_owner.id: self.app_owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.messages: dict[int, FakeMessage] = {}
        self._channel_messages: dict[int, list[FakeMessage]] = {}
        self.blobs: dict[int, StoredBlob] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_ids: dict[tuple[int | None, int, str], int] = {}
        self.sync_count = 0

        self.sessions: list[GatewaySession] = []
        self.identifies: list[dict[str, Any]] = []
        """Every accepted IDENTIFY payload (``identify_attempts`` also has the refused ones)."""
        self.identify_attempts: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.member_requests: list[dict[str, Any]] = []
        self.presence_updates: list[dict[str, Any]] = []
        self.heartbeats = 0
        self.gateway_closes: list[tuple[int, str]] = []
        """``(code, reason)`` of every gateway socket the fake closed (refused IDENTIFY or RESUME, kills)."""

        self.requests: list[RecordedRequest] = []
        self.errors: list[RuleViolation] = []
        self.late_acks: list[RuleViolation] = []
        self.unhandled: list[RecordedRequest] = []
        self.cdn_hits: list[str] = []
        self.openapi_failures: list[str] = []
        self.openapi_response_failures: list[str] = []
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        """``http://host:port``: the root of the fake (CDN paths hang off it)."""
        return self._require_started()

    @property
    def cdn_base(self) -> str:
        """The origin attachment URLs point at (the fake's stand-in for ``https://cdn.discordapp.com``)."""
        return self._require_started()

    @property
    def api_base(self) -> str:
        """``http://host:port/api/v10``: what DISCORD_API_BASE (discord.py's ``Route.BASE``) should be set to."""
        return self._require_started() + "/api/v10"

    @property
    def gateway_url(self) -> str:
        """``ws://host:port/``: what DISCORD_GATEWAY_URL (``DiscordWebSocket.DEFAULT_GATEWAY``) should be set to."""
        return self._require_started().replace("http://", "ws://", 1) + "/"

    @property
    def resume_gateway_url(self) -> str:
        """Where READY tells the client to reconnect for RESUME (a separate path, so tests can see it was used)."""
        return self._require_started().replace("http://", "ws://", 1) + "/resume-gateway/"

    # ------------------------------------------------------------------ waiting

    def _notify(self) -> None:
        """Wake every ``wait_until`` so it re-checks its condition."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        what: str | Callable[[], str] = "",
    ) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every change) and return it.

        ``what`` names the awaited condition in the ``TimeoutError`` (a callable is evaluated at timeout).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                described = what() if callable(what) else what
                raise TimeoutError(f"timed out after {timeout}s waiting for {described or predicate!r}")
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.25))

    # ------------------------------------------------------------------ world

    def new_id(self) -> int:
        """A fresh snowflake."""
        return self._snowflake()

    def add_guild(
        self, guild_id: int | None = None, *, name: str = "Test Guild", owner_id: int | None = None
    ) -> FakeGuild:
        """Add a guild with its ``@everyone`` role and the bot as a member holding its managed role."""
        guild_id = guild_id or self.new_id()
        if owner_id is None:
            owner = FakeUser(self.new_id(), "guild-owner", global_name="Guild Owner")
            self.users[owner.id] = owner
            owner_id = owner.id
        guild = FakeGuild(id=guild_id, name=name, owner_id=owner_id, created_at=self.clock.iso())
        guild.roles[guild_id] = FakeRole(guild_id, guild_id, "@everyone", int(DEFAULT_EVERYONE_PERMISSIONS))
        self.guilds[guild_id] = guild
        bot_role = self.add_role(guild_id, name=self.bot_user.username, permissions=self.bot_permissions)
        bot_role.managed = True
        bot_role.bot_id = self.bot_user.id
        guild.members[self.bot_user.id] = FakeMember(
            self.bot_user, guild_id, roles=[bot_role.id], joined_at=self.clock.iso()
        )
        owner_user = self.users.get(owner_id)
        if owner_user is not None and owner_id not in guild.members:
            guild.members[owner_id] = FakeMember(owner_user, guild_id, joined_at=self.clock.iso())
        return guild

    def guild(self, guild_id: int) -> FakeGuild:
        """The guild with ``guild_id`` (``KeyError`` with the known ids if absent)."""
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}; known: {list(self.guilds)}") from None

    def add_role(self, guild_id: int, *, name: str, permissions: int = 0, role_id: int | None = None) -> FakeRole:
        """Add a role above the existing ones."""
        guild = self.guild(guild_id)
        role = FakeRole(
            role_id or self.new_id(),
            guild_id,
            name,
            int(permissions),
            position=max(r.position for r in guild.roles.values()) + 1,
        )
        guild.roles[role.id] = role
        return role

    def add_member(
        self,
        guild_id: int,
        *,
        user_id: int | None = None,
        name: str = "member",
        roles: list[int] | tuple[int, ...] = (),
        admin: bool = False,
        nick: str | None = None,
    ) -> FakeMember:
        """Add a member; ``admin=True`` gives them a role with Manage Server (not Administrator)."""
        guild = self.guild(guild_id)
        user = self.users.get(user_id) if user_id is not None else None
        if user is None:
            user = FakeUser(user_id or self.new_id(), name, global_name=name.title())
            self.users[user.id] = user
        role_ids = list(roles)
        for role_id in role_ids:
            if role_id not in guild.roles:
                raise KeyError(f"guild {guild_id} has no role {role_id}")
        if admin:
            admin_role = next((r for r in guild.roles.values() if r.name == "Admin"), None)
            if admin_role is None:
                admin_role = self.add_role(
                    guild_id, name="Admin", permissions=int(Permission.MANAGE_GUILD | Permission.MANAGE_MESSAGES)
                )
            role_ids.append(admin_role.id)
        member = FakeMember(user, guild_id, roles=role_ids, nick=nick, joined_at=self.clock.iso())
        guild.members[user.id] = member
        return member

    def add_channel(
        self,
        guild_id: int,
        *,
        name: str = "general",
        channel_id: int | None = None,
        permission_overwrites: list[dict[str, Any]] | None = None,
        topic: str | None = None,
        parent_id: int | None = None,
        type: int = 0,
        owner_id: int | None = None,
    ) -> FakeChannel:
        """Add a channel: a text channel by default, in the category ``parent_id`` if given.

        ``type`` 4 is a category, 11 a public thread (``parent_id`` is then its channel, ``owner_id`` who started it).
        Overwrites are ``{"id", "type": 0 role | 1 member, "allow", "deny"}`` dicts.
        """
        guild = self.guild(guild_id)
        if parent_id is not None and parent_id not in guild.channels:
            raise KeyError(f"guild {guild_id} has no channel {parent_id} to be the parent")
        channel = FakeChannel(
            channel_id or self.new_id(),
            guild_id,
            name,
            position=len(guild.channels),
            topic=topic,
            parent_id=parent_id,
            type=type,
            owner_id=owner_id,
            permission_overwrites=[
                {
                    "id": int(o["id"]),
                    "type": int(o.get("type", 0)),
                    "allow": int(o.get("allow", 0)),
                    "deny": int(o.get("deny", 0)),
                }
                for o in permission_overwrites or []
            ],
        )
        guild.channels[channel.id] = channel
        self._channel_messages.setdefault(channel.id, [])
        return channel

    def add_category(self, guild_id: int, *, name: str = "team") -> FakeChannel:
        """Add a category (channel type 4); put channels in it with ``add_channel(..., parent_id=category.id)``."""
        return self.add_channel(guild_id, name=name, type=4)

    def add_thread(self, channel_id: int, *, name: str = "thread", owner_id: int | None = None) -> FakeChannel:
        """Add a public thread (channel type 11) in the text channel ``channel_id``."""
        channel = self.channel(channel_id)
        return self.add_channel(channel.guild_id, name=name, parent_id=channel_id, type=11, owner_id=owner_id)

    def default_world(self, *, shard: int = 0) -> World:
        """A guild with ``@everyone``, an Admin role (Manage Server), an Artists role and a text channel.

        Members: the guild owner, an admin (Manage Server through the Admin role, not owner), an artist and a
        plain member. The bot is a member with its managed role. The guild's events go to shard ``shard``.
        """
        guild = self.add_guild(self.new_guild_id(shard), name="Atelier Test Guild")
        channel = self.add_channel(guild.id, name="general")
        artists = self.add_role(guild.id, name="Artists")
        admin = self.add_member(guild.id, name="admin", admin=True)
        artist = self.add_member(guild.id, name="artist", roles=[artists.id])
        plain = self.add_member(guild.id, name="plain")
        admin_role = next(r for r in guild.roles.values() if r.name == "Admin")
        bot_role = next(r for r in guild.roles.values() if r.bot_id == self.bot_user.id)
        return World(
            guild_id=guild.id,
            channel_id=channel.id,
            everyone_role_id=guild.id,
            admin_role_id=admin_role.id,
            artist_role_id=artists.id,
            bot_role_id=bot_role.id,
            owner_id=guild.owner_id,
            admin_id=admin.id,
            member_ids=(artist.id, plain.id),
        )

    def _find_channel(self, channel_id: int) -> tuple[FakeGuild, FakeChannel] | None:
        for guild in self.guilds.values():
            channel = guild.channels.get(channel_id)
            if channel is not None:
                return guild, channel
        return None

    def channel(self, channel_id: int) -> FakeChannel:
        """The channel with ``channel_id`` (``KeyError`` if absent)."""
        found = self._find_channel(channel_id)
        if found is None:
            raise KeyError(f"unknown channel {channel_id}")
        return found[1]

    def member(self, guild_id: int, user_id: int) -> FakeMember:
        """The member ``user_id`` of guild ``guild_id`` (``KeyError`` with the known ids if absent)."""
        guild = self.guild(guild_id)
        try:
            return guild.members[user_id]
        except KeyError:
            raise KeyError(f"guild {guild_id} has no member {user_id}; members: {list(guild.members)}") from None

    # ------------------------------------------------------------------ blobs and messages

    def _require_started(self) -> str:
        if not self._base_url:
            raise RuntimeError("start the FakeDiscord first (its URLs are only known once it listens)")
        return self._base_url

    def _cdn_url(self, prefix: str, owner_id: int, blob_id: int, filename: str) -> str:
        base = self._require_started()
        issued = int(self.clock.wall())
        signature = hashlib.sha256(f"{blob_id}:{issued}".encode()).hexdigest()[:32]
        query = f"ex={issued + 86400:x}&is={issued:x}&hm={signature}&"
        return f"{base}/{prefix}/{owner_id}/{blob_id}/{quote(filename)}?{query}"

    def store_blob(
        self,
        data: bytes,
        filename: str,
        content_type: str | None = None,
        *,
        channel_id: int | None = None,
        description: str | None = None,
    ) -> StoredBlob:
        """Host ``data`` on the fake's CDN and return it as an attachment (for options, user messages)."""
        blob_id = self.new_id()
        if channel_id is None:
            url = self._cdn_url("ephemeral-attachments", self.application_id, blob_id, filename)
        else:
            url = self._cdn_url("attachments", channel_id, blob_id, filename)
        blob = StoredBlob.build(
            blob_id=blob_id, data=data, filename=filename, content_type=content_type, url=url, description=description
        )
        self.blobs[blob.id] = blob
        return blob

    def _rehost(self, blob: StoredBlob, channel_id: int) -> StoredBlob:
        """A copy of ``blob`` as a new attachment of a message in ``channel_id`` (Discord gives each its own id)."""
        return self.store_blob(
            blob.data, blob.filename, blob.content_type, channel_id=channel_id, description=blob.description
        )

    def channel_messages(
        self, channel_id: int, *, include_deleted: bool = False, include_ephemeral: bool = True
    ) -> list[FakeMessage]:
        """Messages of a channel, oldest first."""
        return [
            m
            for m in self._channel_messages.get(channel_id, [])
            if (include_deleted or not m.deleted) and (include_ephemeral or not m.ephemeral)
        ]

    def _store_message(self, message: FakeMessage) -> None:
        self.messages[message.id] = message
        self._channel_messages.setdefault(message.channel_id, []).append(message)
        if not message.ephemeral:
            found = self._find_channel(message.channel_id)
            if found is not None:
                found[1].last_message_id = message.id

    def _resolve_attachments(
        self,
        payload: dict[str, Any],
        files: list[UploadedFile],
        existing: list[StoredBlob],
        channel_id: int,
    ) -> list[StoredBlob]:
        """Apply Discord's attachment rules: listed ids keep existing files or name ``files[n]``; unlisted go."""
        uploads: dict[int, UploadedFile] = {}
        for position, upload in enumerate(files):
            match = re.fullmatch(r"files\[(\d+)\]", upload.field_name)
            uploads[int(match.group(1)) if match else position] = upload

        def new_blob(upload: UploadedFile, item: dict[str, Any] | None) -> StoredBlob:
            filename = (item or {}).get("filename") or upload.filename
            blob = self.store_blob(upload.data, filename, channel_id=channel_id)
            blob.description = (item or {}).get("description")
            return blob

        listed = payload.get("attachments")
        if not isinstance(listed, list):
            return [*existing, *(new_blob(upload, None) for _, upload in sorted(uploads.items()))]
        by_id = {blob.id: blob for blob in existing}
        result: list[StoredBlob] = []
        used: set[int] = set()
        problems: dict[str, tuple[str, str]] = {}
        for index, item in enumerate(listed):
            try:
                ident = int(item.get("id"))
            except (TypeError, ValueError, AttributeError):
                problems[f"attachments.{index}.id"] = ("ATTACHMENT_NOT_FOUND", "Unknown attachment")
                continue
            if ident in by_id:
                result.append(by_id[ident])
            elif ident in uploads:
                result.append(new_blob(uploads[ident], item))
                used.add(ident)
            else:
                problems[f"attachments.{index}.id"] = ("ATTACHMENT_NOT_FOUND", "Unknown attachment")
        if problems:
            raise form_error(problems)
        result.extend(new_blob(upload, None) for index, upload in sorted(uploads.items()) if index not in used)
        return result

    def _normalise_components(self, components: Any) -> list[dict[str, Any]]:
        """Components as Discord stores them: a copy with a numeric ``id`` on every component."""
        if not isinstance(components, list):
            return []
        tree: list[dict[str, Any]] = copy.deepcopy(components)
        taken = {c["id"] for _, c in walk_components(tree) if isinstance(c.get("id"), int)}
        next_id = 1
        for _, component in walk_components(tree):
            if not isinstance(component.get("id"), int):
                while next_id in taken:
                    next_id += 1
                component["id"] = next_id
                taken.add(next_id)
        return tree

    def _normalise_embeds(self, embeds: Any, attachments: list[StoredBlob]) -> list[dict[str, Any]]:
        """Embeds as Discord stores them: ``type: rich`` and ``attachment://`` images pointing at the CDN."""
        if not isinstance(embeds, list):
            return []
        by_name = {blob.filename: blob for blob in attachments}
        result: list[dict[str, Any]] = []
        for embed in embeds:
            stored = {key: value for key, value in embed.items() if value is not None}
            stored.setdefault("type", "rich")
            stored.pop("content_type", None)
            for key in ("image", "thumbnail"):
                media = stored.get(key)
                if isinstance(media, dict) and str(media.get("url", "")).startswith("attachment://"):
                    blob = by_name.get(media["url"][len("attachment://") :])
                    if blob is not None:
                        media = {"url": blob.url, "proxy_url": blob.proxy_url, "flags": 0}
                        if blob.width is not None and blob.height is not None:
                            media.update(width=blob.width, height=blob.height)
                        if blob.content_type:
                            media["content_type"] = blob.content_type
                        stored[key] = media
            result.append(stored)
        return result

    def _mentions_in(self, content: str, guild_id: int | None) -> tuple[list[FakeUser], list[int], bool]:
        users: list[FakeUser] = []
        for raw in _USER_MENTION.findall(content):
            user = self.users.get(int(raw))
            if user is not None and user not in users:
                users.append(user)
        roles: list[int] = []
        guild = self.guilds.get(guild_id) if guild_id else None
        for raw in _ROLE_MENTION.findall(content):
            if guild is not None and int(raw) in guild.roles and int(raw) not in roles:
                roles.append(int(raw))
        return users, roles, "@everyone" in content or "@here" in content

    def _build_message(
        self,
        *,
        channel_id: int,
        guild_id: int | None,
        author: FakeUser,
        payload: dict[str, Any],
        files: list[UploadedFile],
        message_type: int = 0,
        flags: int = 0,
    ) -> FakeMessage:
        """A new message from a validated create body (content, embeds, components, files)."""
        attachments = self._resolve_attachments(payload, files, [], channel_id)
        content = payload.get("content") or ""
        mentions, role_mentions, everyone = self._mentions_in(content, guild_id)
        nonce = payload.get("nonce")
        return FakeMessage(
            id=self.new_id(),
            channel_id=channel_id,
            guild_id=guild_id,
            author=author,
            timestamp=self.clock.iso(),
            content=content,
            embeds=self._normalise_embeds(payload.get("embeds"), attachments),
            components=self._normalise_components(payload.get("components")),
            attachments=attachments,
            flags=flags | (payload.get("flags") or 0),
            type=message_type,
            tts=bool(payload.get("tts")),
            mentions=mentions,
            mention_role_ids=role_mentions,
            mention_everyone=everyone,
            nonce=str(nonce) if nonce is not None else None,
        )

    def _apply_edit(self, message: FakeMessage, payload: dict[str, Any], files: list[UploadedFile]) -> None:
        """Apply an edit body to ``message`` in place (fields absent from the body stay as they are)."""
        was_loading = message.loading
        attachments = message.attachments
        if "attachments" in payload or files:
            attachments = self._resolve_attachments(payload, files, message.attachments, message.channel_id)
        content = message.content
        if "content" in payload:
            content = payload.get("content") or ""
        embeds = message.embeds
        if "embeds" in payload:
            embeds = self._normalise_embeds(payload.get("embeds"), attachments)
        components = message.components
        if "components" in payload:
            components = self._normalise_components(payload.get("components"))
        if not (content or embeds or components or attachments):
            raise FakeHTTPError(400, CODE_EMPTY_MESSAGE, "Cannot send an empty message")
        message.attachments = attachments
        message.content = content
        message.embeds = embeds
        message.components = components
        if "content" in payload:
            message.mentions, message.mention_role_ids, message.mention_everyone = self._mentions_in(
                content, message.guild_id
            )
        flags = payload.get("flags")
        if isinstance(flags, int):
            message.flags = (message.flags & ~MESSAGE_FLAG_SUPPRESS_EMBEDS) | (flags & MESSAGE_FLAG_SUPPRESS_EMBEDS)
        message.flags &= ~MESSAGE_FLAG_LOADING
        if not was_loading:
            message.edited_timestamp = self.clock.iso()
        message.edits.append(payload)

    def served_application_flags(self) -> int:
        """The application's flags: ``application_flags`` if set, else those of ``privileged_intents``."""
        if self.application_flags is not None:
            return self.application_flags
        return limited_flags(self.privileged_intents)

    def allowed_privileged_intents(self) -> int:
        """The privileged intents an IDENTIFY may ask for (others are closed with 4014)."""
        if self.application_flags is not None:
            return intents_allowed_by(self.application_flags)
        return self.privileged_intents

    # ------------------------------------------------------------------ gateway dispatch

    def _live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions if s.ready and not s.invalid]

    def shard_of(self, guild_id: int | None) -> int:
        """The shard that receives events of ``guild_id`` (``None``: a DM, shard 0): ``(guild_id >> 22) % count``."""
        return 0 if guild_id is None else (guild_id >> 22) % self.shard_count

    def _receives(self, session: GatewaySession, guild_id: int | None) -> bool:
        """Whether ``session`` gets the events of ``guild_id``: an unsharded session gets every server's."""
        if session.shard is None:
            return True
        shard_id, count = session.shard
        return shard_id == (0 if guild_id is None else (guild_id >> 22) % count)

    def new_guild_id(self, shard: int = 0) -> int:
        """A fresh snowflake for a guild whose events go to shard ``shard`` of :attr:`shard_count`."""
        if not 0 <= shard < self.shard_count:
            raise ValueError(f"shard {shard} is not one of the fake's {self.shard_count} shard(s)")
        guild_id = self.new_id()
        # Moving the timestamp part forward by a few milliseconds picks the shard; the factory continues after it.
        guild_id += ((shard - self.shard_of(guild_id)) % self.shard_count) << 22
        self._snowflake.skip_to(guild_id)
        return guild_id

    def _app_intents(self) -> int:
        """Intents of the latest IDENTIFY (what the fake treats as the app's enabled intents for REST reads)."""
        return self.sessions[-1].intents if self.sessions else int(Intent.MESSAGE_CONTENT)

    def _content_hidden(self, intents: int, message: FakeMessage) -> bool:
        """Whether the Message Content intent rule blanks ``message`` for a client with ``intents``."""
        if not self.strict_intents or intents & Intent.MESSAGE_CONTENT or message.guild_id is None:
            return False
        if message.author.id == self.bot_user.id:
            return False
        return not any(user.id == self.bot_user.id for user in message.mentions)

    def _message_for(self, message: FakeMessage, intents: int) -> dict[str, Any]:
        """The message object as a client with ``intents`` receives it (content rule applied to the reply too)."""
        data = message.payload(strip_content=self._content_hidden(intents, message), with_reference=False)
        if message.message_reference is not None:
            ref = message.referenced
            data["referenced_message"] = (
                ref.payload(strip_content=self._content_hidden(intents, ref), with_reference=False)
                if ref is not None and not ref.deleted
                else None
            )
        return data

    def _message_event(self, message: FakeMessage, session: GatewaySession) -> dict[str, Any] | None:
        if message.ephemeral:
            return None
        if self.strict_intents and message.guild_id is not None and not session.intents & Intent.GUILD_MESSAGES:
            return None
        data = self._message_for(message, session.intents)
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
            guild = self.guilds.get(message.guild_id)
            member = guild.members.get(message.author.id) if guild else None
            if member is not None and message.webhook_id is None:
                data["member"] = member.payload(with_user=False)
            if guild is not None:
                for mention in data["mentions"]:
                    mentioned = guild.members.get(int(mention["id"]))
                    if mentioned is not None:
                        mention["member"] = mentioned.payload(with_user=False)
        return data

    async def _broadcast(
        self, event: str, build: Callable[[GatewaySession], dict[str, Any] | None], *, guild_id: int | None
    ) -> None:
        """Send one event of ``guild_id`` (``None``: a DM) to every identified session of its shard (buffered for
        disconnected ones, for RESUME)."""
        for session in self._live_sessions():
            if not self._receives(session, guild_id):
                continue
            data = build(session)
            if data is not None:
                await session.dispatch(event, data)
        self._notify()

    async def _announce_create(self, message: FakeMessage) -> None:
        await self._broadcast("MESSAGE_CREATE", lambda s: self._message_event(message, s), guild_id=message.guild_id)

    async def _announce_update(self, message: FakeMessage) -> None:
        await self._broadcast("MESSAGE_UPDATE", lambda s: self._message_event(message, s), guild_id=message.guild_id)

    async def _announce_delete(self, message: FakeMessage) -> None:
        if message.ephemeral:
            return
        data: dict[str, Any] = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
        await self._broadcast(
            "MESSAGE_DELETE",
            lambda s: data if not self.strict_intents or s.intents & Intent.GUILD_MESSAGES else None,
            guild_id=message.guild_id,
        )

    # ------------------------------------------------------------------ bookkeeping

    def _violation(
        self,
        method: str,
        path: str,
        error: FakeHTTPError,
        *,
        interaction: FakeInteraction | None = None,
        late: bool = False,
    ) -> None:
        violation = RuleViolation(
            method=method,
            path=path,
            status=error.status,
            code=error.code,
            message=error.message,
            detail=error.detail,
            at=self.clock.monotonic(),
            interaction_id=interaction.id if interaction else None,
        )
        self.errors.append(violation)
        if late:
            self.late_acks.append(violation)
