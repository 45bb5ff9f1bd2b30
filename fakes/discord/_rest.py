"""The REST surface discord.py 2.7 uses: login, app info, command sync, interaction callbacks, webhooks, messages."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ._core import FakeDiscordCore
from ._flags import Permission
from ._models import FakeGuild, FakeInteraction, FakeMessage
from ._records import ResponseRecord, UploadedFile
from ._rules import (
    CODE_ALREADY_ACKNOWLEDGED,
    CODE_CANNOT_EDIT_OTHERS,
    CODE_ENTITY_TOO_LARGE,
    CODE_INVALID_WEBHOOK_TOKEN,
    CODE_MISSING_PERMISSIONS,
    CODE_UNKNOWN_CHANNEL,
    CODE_UNKNOWN_GUILD,
    CODE_UNKNOWN_INTERACTION,
    CODE_UNKNOWN_MEMBER,
    CODE_UNKNOWN_MESSAGE,
    CODE_UNKNOWN_USER,
    CODE_UNKNOWN_WEBHOOK,
    MESSAGE_FLAG_EPHEMERAL,
    MESSAGE_FLAG_IS_COMPONENTS_V2,
    MESSAGE_FLAG_LOADING,
    MESSAGE_FLAG_SUPPRESS_EMBEDS,
    MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS,
    FakeHTTPError,
    check_commands,
    check_message,
    check_modal,
    form_error,
)

__all__ = ["RequestContext", "RestMixin"]

Reply = tuple[int, Any]

_INTERACTION_MESSAGE_FLAGS = (
    MESSAGE_FLAG_SUPPRESS_EMBEDS
    | MESSAGE_FLAG_EPHEMERAL
    | MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS
    | MESSAGE_FLAG_IS_COMPONENTS_V2
)
_CHANNEL_MESSAGE_FLAGS = (
    MESSAGE_FLAG_SUPPRESS_EMBEDS | MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS | MESSAGE_FLAG_IS_COMPONENTS_V2
)
_UPDATE_MESSAGE_FLAGS = MESSAGE_FLAG_SUPPRESS_EMBEDS | MESSAGE_FLAG_IS_COMPONENTS_V2

# Which callback types each interaction type accepts (1 PONG is for HTTP PINGs only, which the fake never sends).
_ALLOWED_CALLBACKS = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
_TRUE = {"1", "true", "True"}


@dataclass
class RequestContext:
    """One REST request as the handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    authorized: bool
    at: float
    interaction: FakeInteraction | None = None
    late: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        """The JSON object body (``{}`` when absent)."""
        return self.json if isinstance(self.json, dict) else {}


Handler = Callable[[RequestContext], Awaitable[Reply]]


class RestMixin(FakeDiscordCore):
    """Route table and REST handlers."""

    def _routes(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        snowflake = r"(?P<{}>\d+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", r"/users/@me", self._get_me),
            ("GET", rf"/users/{snowflake.format('user_id')}", self._get_user),
            ("GET", r"/oauth2/applications/@me", self._get_application),
            ("GET", r"/applications/@me", self._get_application),
            ("GET", r"/gateway", self._get_gateway),
            ("GET", r"/gateway/bot", self._get_gateway_bot),
            ("GET", rf"/applications/{snowflake.format('app')}/commands", self._get_commands),
            ("PUT", rf"/applications/{snowflake.format('app')}/commands", self._put_commands),
            (
                "GET",
                rf"/applications/{snowflake.format('app')}/guilds/{snowflake.format('guild_id')}/commands",
                self._get_commands,
            ),
            (
                "PUT",
                rf"/applications/{snowflake.format('app')}/guilds/{snowflake.format('guild_id')}/commands",
                self._put_commands,
            ),
            ("POST", rf"/interactions/{snowflake.format('iid')}/(?P<token>[^/]+)/callback", self._callback),
            ("POST", rf"/webhooks/{snowflake.format('app')}/(?P<token>[^/]+)", self._followup),
            (
                "GET",
                rf"/webhooks/{snowflake.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._webhook_get,
            ),
            (
                "PATCH",
                rf"/webhooks/{snowflake.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._webhook_edit,
            ),
            (
                "DELETE",
                rf"/webhooks/{snowflake.format('app')}/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)",
                self._webhook_delete,
            ),
            ("GET", rf"/channels/{snowflake.format('cid')}", self._get_channel),
            ("POST", rf"/channels/{snowflake.format('cid')}/messages", self._create_message),
            ("GET", rf"/channels/{snowflake.format('cid')}/messages", self._history),
            ("GET", rf"/channels/{snowflake.format('cid')}/messages/{snowflake.format('mid')}", self._get_message),
            ("PATCH", rf"/channels/{snowflake.format('cid')}/messages/{snowflake.format('mid')}", self._edit_message),
            (
                "DELETE",
                rf"/channels/{snowflake.format('cid')}/messages/{snowflake.format('mid')}",
                self._delete_message,
            ),
            ("POST", rf"/channels/{snowflake.format('cid')}/typing", self._typing),
            (
                "PUT",
                rf"/channels/{snowflake.format('cid')}/messages/{snowflake.format('mid')}/reactions/(?P<emoji>[^/]+)/@me",
                self._add_reaction,
            ),
            ("GET", rf"/guilds/{snowflake.format('guild_id')}", self._get_guild),
            ("GET", rf"/guilds/{snowflake.format('guild_id')}/roles", self._get_roles),
            ("GET", rf"/guilds/{snowflake.format('guild_id')}/channels", self._get_channels),
            (
                "GET",
                rf"/guilds/{snowflake.format('guild_id')}/members/{snowflake.format('user_id')}",
                self._get_member,
            ),
        ]
        return [(method, re.compile(pattern + "$"), handler) for method, pattern, handler in table]

    # ------------------------------------------------------------------ helpers

    def _require_auth(self, ctx: RequestContext) -> None:
        if not ctx.authorized:
            raise FakeHTTPError(401, 0, "401: Unauthorized", detail="missing or wrong 'Authorization: Bot <token>'")

    def _check_files(self, ctx: RequestContext) -> None:
        for upload in ctx.files:
            if len(upload.data) > self.attachment_size_limit:
                raise FakeHTTPError(
                    413,
                    CODE_ENTITY_TOO_LARGE,
                    "Request entity too large",
                    detail=f"{upload.filename} is {len(upload.data)} bytes; the limit is {self.attachment_size_limit}",
                )

    def _bot_permissions_in(self, channel_id: int) -> int:
        found = self._find_channel(channel_id)
        if found is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        guild, channel = found
        member = guild.members.get(self.bot_user.id)
        return guild.permissions_in(member, channel) if member else 0

    def _require_bot_permissions(self, channel_id: int, needed: int) -> None:
        have = self._bot_permissions_in(channel_id)
        missing = needed & ~have
        if missing:
            names = [p.name for p in Permission if p is not Permission.ALL and p & missing]
            raise FakeHTTPError(403, CODE_MISSING_PERMISSIONS, "Missing Permissions", detail=f"bot lacks {names}")

    def _record(
        self,
        interaction: FakeInteraction,
        ctx: RequestContext,
        kind: str,
        status: int,
        *,
        code: int | None = None,
        callback_type: int | None = None,
        message: FakeMessage | None = None,
    ) -> None:
        interaction.responses.append(
            ResponseRecord(
                kind=kind,
                method=ctx.method,
                path=ctx.path,
                status=status,
                at=ctx.at,
                code=code,
                callback_type=callback_type,
                payload=ctx.json,
                files=list(ctx.files),
                message=message,
            )
        )

    async def _tracked(
        self, ctx: RequestContext, interaction: FakeInteraction, kind: str, work: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        """Run ``work`` and append what happened (accepted or rejected) to the interaction's responses."""
        ctx.interaction = interaction
        callback_type = ctx.extra.get("callback_type")
        try:
            status, body = await work()
        except FakeHTTPError as error:
            self._record(interaction, ctx, kind, error.status, code=error.code, callback_type=callback_type)
            raise
        message = ctx.extra.get("message")
        self._record(interaction, ctx, kind, status, message=message, callback_type=callback_type)
        return status, body

    def _interaction_message(
        self,
        interaction: FakeInteraction,
        *,
        message_type: int,
        flags: int,
        body: dict[str, Any],
        files: list[UploadedFile],
    ) -> FakeMessage:
        message = self._build_message(
            channel_id=interaction.channel_id,
            guild_id=interaction.guild_id,
            author=self.bot_user,
            payload=body,
            files=files,
            message_type=message_type,
            flags=flags,
        )
        message.webhook_id = self.application_id
        message.application_id = self.application_id
        message.interaction_id = interaction.id
        metadata: dict[str, Any] = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": interaction.user.payload(),
            "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
        }
        if interaction.type == 3 and interaction.message is not None:
            metadata["interacted_message_id"] = str(interaction.message.id)
        if interaction.type == 5:
            opener = interaction.opened_by
            metadata["triggering_interaction_metadata"] = {
                "id": str(opener.id if opener else interaction.id),
                "type": opener.type if opener else 2,
                "user": interaction.user.payload(),
                "authorizing_integration_owners": interaction.payload.get("authorizing_integration_owners", {}),
            }
            if opener is not None and opener.type == 3 and opener.message is not None:
                metadata["triggering_interaction_metadata"]["interacted_message_id"] = str(opener.message.id)
        if interaction.original is not None and interaction.original is not message:
            metadata["original_response_message_id"] = str(interaction.original.id)
        message.interaction_metadata = metadata
        if interaction.type == 2:
            message.interaction_summary = {
                "id": str(interaction.id),
                "type": interaction.type,
                "name": interaction.name,
                "user": interaction.user.payload(),
            }
        return message

    def _webhook_interaction(self, ctx: RequestContext) -> FakeInteraction:
        """The interaction behind ``/webhooks/{app}/{token}``, enforcing the token rules."""
        if int(ctx.params["app"]) != self.application_id:
            raise FakeHTTPError(404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook", detail="application id does not match")
        interaction = self._interactions_by_token.get(ctx.params["token"])
        if interaction is None:
            raise FakeHTTPError(401, CODE_INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token", detail="unknown token")
        return interaction

    def _check_token_alive(self, ctx: RequestContext, interaction: FakeInteraction) -> None:
        age = ctx.at - (interaction.dispatched_at or ctx.at)
        if age > self.token_ttl:
            raise FakeHTTPError(
                401,
                CODE_INVALID_WEBHOOK_TOKEN,
                "Invalid Webhook Token",
                detail=f"interaction token used {age:.0f}s after dispatch; tokens live {self.token_ttl:.0f}s",
            )
        if not interaction.acknowledged:
            raise FakeHTTPError(
                404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook", detail="the interaction was never acknowledged"
            )

    def _webhook_target(self, ctx: RequestContext, interaction: FakeInteraction) -> FakeMessage:
        mid = ctx.params["mid"]
        if mid == "@original":
            message = interaction.original
        else:
            message = next((m for m in interaction.messages() if m.id == int(mid)), None)
            if message is None and interaction.original is not None and interaction.original.id == int(mid):
                message = interaction.original
        if message is None or message.deleted:
            raise FakeHTTPError(404, CODE_UNKNOWN_MESSAGE, "Unknown Message", detail=f"{mid} for {interaction!r}")
        return message

    # ------------------------------------------------------------------ identity

    async def _get_me(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        data = self.bot_user.payload()
        data.update(verified=True, mfa_enabled=False, locale="en-US", email=None, premium_type=0)
        return 200, data

    async def _get_user(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        user = self.users.get(int(ctx.params["user_id"]))
        if user is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_USER, "Unknown User")
        return 200, user.payload()

    async def _get_application(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        flags = self.served_application_flags()
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot": self.bot_user.payload(),
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": flags,
            "flags_new": str(flags),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "owner": self.app_owner.payload(),
            "team": None,
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "approximate_user_authorization_count": 0,
            "explicit_content_filter": 0,
            "eligible_oauth2_scopes": [],
            "rpc_origins": [],
            "tags": [],
        }

    async def _get_gateway(self, ctx: RequestContext) -> Reply:
        return 200, {"url": self.gateway_url.rstrip("/")}

    async def _get_gateway_bot(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        return 200, {
            "url": self.gateway_url.rstrip("/"),
            "shards": self.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        }

    # ------------------------------------------------------------------ application commands

    async def _put_commands(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        if int(ctx.params["app"]) != self.application_id:
            raise FakeHTTPError(403, 50001, "Missing Access", detail="application id does not match")
        guild_id = int(ctx.params["guild_id"]) if "guild_id" in ctx.params else None
        if guild_id is not None and guild_id not in self.guilds:
            raise FakeHTTPError(403, 50001, "Missing Access", detail=f"the bot is not in guild {guild_id}")
        commands = ctx.json if isinstance(ctx.json, list) else []
        check_commands(commands)
        version = str(self.new_id())
        stored: list[dict[str, Any]] = []
        for command in commands:
            kind = command.get("type", 1)
            key = (guild_id, kind, command["name"])
            command_id = self._command_ids.setdefault(key, self.new_id())
            permissions = command.get("default_member_permissions")
            echo: dict[str, Any] = {
                "id": str(command_id),
                "application_id": str(self.application_id),
                "version": version,
                "type": kind,
                "name": command["name"],
                "description": command.get("description") or "",
                "default_member_permissions": str(permissions) if permissions is not None else None,
                "dm_permission": bool(command.get("dm_permission", True)),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types") or [0],
                "nsfw": bool(command.get("nsfw", False)),
                "name_localizations": command.get("name_localizations"),
                "description_localizations": command.get("description_localizations"),
            }
            if command.get("options"):
                echo["options"] = command["options"]
            if guild_id is not None:
                echo["guild_id"] = str(guild_id)
            stored.append(echo)
        self.commands[guild_id] = stored
        self.sync_count += 1
        return 200, stored

    async def _get_commands(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        guild_id = int(ctx.params["guild_id"]) if "guild_id" in ctx.params else None
        return 200, self.commands.get(guild_id, [])

    # ------------------------------------------------------------------ interaction callbacks

    async def _callback(self, ctx: RequestContext) -> Reply:
        interaction = self.interactions.get(int(ctx.params["iid"]))
        if interaction is None or interaction.token != ctx.params["token"]:
            raise FakeHTTPError(404, CODE_UNKNOWN_INTERACTION, "Unknown interaction", detail="no such interaction")
        if interaction.acked_at is None:
            interaction.acked_at = ctx.at
        callback_type = ctx.body.get("type")
        ctx.extra["callback_type"] = callback_type
        try:
            status, body = await self._tracked(
                ctx, interaction, "callback", lambda: self._accept_callback(ctx, interaction)
            )
        except FakeHTTPError as error:
            if interaction.ack_status != 200:
                interaction.ack_status = error.status
            raise
        return status, body

    async def _accept_callback(self, ctx: RequestContext, interaction: FakeInteraction) -> Reply:
        if interaction.acknowledged:
            raise FakeHTTPError(
                400, CODE_ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.", detail=repr(interaction)
            )
        elapsed = ctx.at - (interaction.dispatched_at or ctx.at)
        if elapsed > self.ack_deadline:
            ctx.late = True
            raise FakeHTTPError(
                404,
                CODE_UNKNOWN_INTERACTION,
                "Unknown interaction",
                detail=f"initial response {elapsed:.3f}s after dispatch; the deadline is {self.ack_deadline}s",
            )
        self._check_files(ctx)
        body = ctx.body
        callback_type = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        allowed = set(_ALLOWED_CALLBACKS.get(interaction.type, set()))
        if interaction.message is None:
            # UPDATE_MESSAGE needs a message to update; a silent type 6 ack of a command's modal is accepted.
            allowed -= {6, 7} if interaction.type == 3 else {7}
        if callback_type not in allowed:
            raise form_error(
                {"type": ("INTERACTION_RESPONSE_TYPE_INVALID", f"Callback type {callback_type} is not valid here")}
            )
        announce: Coroutine[Any, Any, None] | None = None
        info: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        reply: dict[str, Any] = {"interaction": info}
        if callback_type == 4:
            check_message(
                data,
                file_count=len(ctx.files),
                limits=self.limits,
                allowed_flags=_INTERACTION_MESSAGE_FLAGS,
                require_body=True,
            )
            message_type = self._response_type_of(interaction)
            message = self._interaction_message(
                interaction, message_type=message_type, flags=0, body=data, files=ctx.files
            )
            self._take_original(interaction, message)
            ctx.extra["message"] = message
            info.update(
                response_message_id=str(message.id),
                response_message_loading=False,
                response_message_ephemeral=message.ephemeral,
            )
            reply["resource"] = {"type": 4, "message": message.payload()}
            announce = self._announce_create(message)
        elif callback_type == 5:
            flags = data.get("flags") or 0
            if flags & ~(MESSAGE_FLAG_EPHEMERAL | MESSAGE_FLAG_SUPPRESS_NOTIFICATIONS):
                raise form_error({"data.flags": ("MESSAGE_FLAGS_INVALID", "Only EPHEMERAL is valid for a defer")})
            message_type = self._response_type_of(interaction)
            message = self._interaction_message(
                interaction,
                message_type=message_type,
                flags=MESSAGE_FLAG_LOADING | (flags & MESSAGE_FLAG_EPHEMERAL),
                body={},
                files=[],
            )
            self._take_original(interaction, message)
            ctx.extra["message"] = message
            info.update(
                response_message_id=str(message.id),
                response_message_loading=True,
                response_message_ephemeral=message.ephemeral,
            )
            announce = self._announce_create(message)
        elif callback_type == 6:
            interaction.original = interaction.message
        elif callback_type == 7:
            target = interaction.message
            assert target is not None
            check_message(
                data,
                file_count=len(ctx.files),
                limits=self.limits,
                allowed_flags=_UPDATE_MESSAGE_FLAGS | (target.flags & MESSAGE_FLAG_EPHEMERAL),
                require_body=False,
                existing_attachments=len(target.attachments),
            )
            self._apply_edit(target, data, ctx.files)
            interaction.original = target
            ctx.extra["message"] = target
            info.update(
                response_message_id=str(target.id),
                response_message_loading=False,
                response_message_ephemeral=target.ephemeral,
            )
            reply["resource"] = {"type": 7, "message": target.payload()}
            announce = self._announce_update(target)
        elif callback_type == 8:
            choices = data.get("choices") or []
            if len(choices) > 25:
                raise form_error({"data.choices": ("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")})
            interaction.autocomplete_choices = choices
        elif callback_type == 9:
            check_modal(data, self.limits)
            interaction.modal = {**data, "components": self._normalise_components(data.get("components"))}
        # Acknowledge before the first await, so a concurrent second callback sees it (and gets 40060).
        interaction.ack_status = 200
        interaction.ack_type = callback_type
        if announce is not None:
            await announce
        if ctx.query.get("with_response") not in _TRUE:
            return 204, None
        return 200, reply

    @staticmethod
    def _response_type_of(interaction: FakeInteraction) -> int:
        """Message type of an initial response: CHAT_INPUT_COMMAND (20), CONTEXT_MENU_COMMAND (23) or DEFAULT."""
        if interaction.type != 2:
            return 0
        return 20 if interaction.payload["data"].get("type", 1) == 1 else 23

    def _take_original(self, interaction: FakeInteraction, message: FakeMessage) -> None:
        interaction.original = message
        interaction.ephemeral = message.ephemeral
        self._store_message(message)

    # ------------------------------------------------------------------ webhooks (follow-ups and @original)

    async def _followup(self, ctx: RequestContext) -> Reply:
        interaction = self._webhook_interaction(ctx)
        return await self._tracked(ctx, interaction, "followup", lambda: self._accept_followup(ctx, interaction))

    async def _accept_followup(self, ctx: RequestContext, interaction: FakeInteraction) -> Reply:
        self._check_token_alive(ctx, interaction)
        self._check_files(ctx)
        body = ctx.body
        check_message(
            body,
            file_count=len(ctx.files),
            limits=self.limits,
            allowed_flags=_INTERACTION_MESSAGE_FLAGS,
            require_body=True,
        )
        original = interaction.original
        if interaction.ack_type == 5 and original is not None and original.loading and not original.deleted:
            # Documented (and deprecated) behaviour: the first follow-up after a type-5 defer edits the placeholder.
            self._apply_edit(original, {k: v for k, v in body.items() if k != "flags"}, ctx.files)
            message = original
            await self._announce_update(message)
        else:
            message = self._interaction_message(interaction, message_type=0, flags=0, body=body, files=ctx.files)
            self._store_message(message)
            interaction.followups.append(message)
            await self._announce_create(message)
        ctx.extra["message"] = message
        if ctx.query.get("wait") not in _TRUE:
            return 204, None
        return 200, message.payload()

    async def _webhook_get(self, ctx: RequestContext) -> Reply:
        interaction = self._webhook_interaction(ctx)

        async def work() -> Reply:
            self._check_token_alive(ctx, interaction)
            return 200, self._webhook_target(ctx, interaction).payload()

        return await self._tracked(ctx, interaction, "get", work)

    async def _webhook_edit(self, ctx: RequestContext) -> Reply:
        interaction = self._webhook_interaction(ctx)

        async def work() -> Reply:
            self._check_token_alive(ctx, interaction)
            self._check_files(ctx)
            message = self._webhook_target(ctx, interaction)
            check_message(
                ctx.body,
                file_count=len(ctx.files),
                limits=self.limits,
                allowed_flags=_UPDATE_MESSAGE_FLAGS | (message.flags & MESSAGE_FLAG_EPHEMERAL),
                require_body=False,
                existing_attachments=len(message.attachments),
            )
            self._apply_edit(message, ctx.body, ctx.files)
            ctx.extra["message"] = message
            await self._announce_update(message)
            return 200, message.payload()

        return await self._tracked(ctx, interaction, "edit", work)

    async def _webhook_delete(self, ctx: RequestContext) -> Reply:
        interaction = self._webhook_interaction(ctx)

        async def work() -> Reply:
            self._check_token_alive(ctx, interaction)
            message = self._webhook_target(ctx, interaction)
            message.deleted = True
            await self._announce_delete(message)
            return 204, None

        return await self._tracked(ctx, interaction, "delete", work)

    # ------------------------------------------------------------------ channels and messages

    def _channel_or_404(self, ctx: RequestContext) -> int:
        channel_id = int(ctx.params["cid"])
        if self._find_channel(channel_id) is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        return channel_id

    def _message_or_404(self, ctx: RequestContext, channel_id: int) -> FakeMessage:
        message = self.messages.get(int(ctx.params["mid"]))
        if message is None or message.deleted or message.ephemeral or message.channel_id != channel_id:
            raise FakeHTTPError(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
        return message

    async def _get_channel(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        found = self._find_channel(int(ctx.params["cid"]))
        if found is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        return 200, found[1].payload()

    async def _create_message(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        self._check_files(ctx)
        body = ctx.body
        needed = Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES
        if ctx.files:
            needed |= Permission.ATTACH_FILES
        if body.get("message_reference"):
            needed |= Permission.READ_MESSAGE_HISTORY
        self._require_bot_permissions(channel_id, needed)
        check_message(
            body,
            file_count=len(ctx.files),
            limits=self.limits,
            allowed_flags=_CHANNEL_MESSAGE_FLAGS,
            require_body=True,
        )
        reference = body.get("message_reference")
        target: FakeMessage | None = None
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            target = self.messages.get(int(reference["message_id"]))
            if target is None or target.deleted or target.ephemeral:
                target = None
                if reference.get("fail_if_not_exists", True):
                    raise form_error({"message_reference": ("MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")})
        found = self._find_channel(channel_id)
        guild_id = found[0].id if found else None
        message = self._build_message(
            channel_id=channel_id,
            guild_id=guild_id,
            author=self.bot_user,
            payload=body,
            files=ctx.files,
            message_type=19 if target is not None else 0,
        )
        if target is not None:
            message.referenced = target
            message.message_reference = {
                "type": 0,
                "channel_id": str(target.channel_id),
                "message_id": str(target.id),
                **({"guild_id": str(target.guild_id)} if target.guild_id else {}),
            }
            allowed = body.get("allowed_mentions") or {}
            if allowed.get("replied_user") and target.author not in message.mentions:
                message.mentions.append(target.author)
        self._store_message(message)
        await self._announce_create(message)
        return 200, message.payload()

    async def _history(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        self._require_bot_permissions(channel_id, Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        limit = max(1, min(100, int(ctx.query.get("limit", 50))))
        visible = [m for m in self.channel_messages(channel_id, include_ephemeral=False)]
        if "before" in ctx.query:
            visible = [m for m in visible if m.id < int(ctx.query["before"])]
        if "after" in ctx.query:
            visible = [m for m in visible if m.id > int(ctx.query["after"])]
            chosen = visible[:limit]
        elif "around" in ctx.query:
            pivot = int(ctx.query["around"])
            older = [m for m in visible if m.id <= pivot][-(limit // 2 + 1) :]
            newer = [m for m in visible if m.id > pivot][: limit - len(older)]
            chosen = older + newer
        else:
            chosen = visible[-limit:]
        intents = self._app_intents()
        return 200, [self._message_for(m, intents) for m in sorted(chosen, key=lambda m: m.id, reverse=True)]

    async def _get_message(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        self._require_bot_permissions(channel_id, Permission.VIEW_CHANNEL | Permission.READ_MESSAGE_HISTORY)
        return 200, self._message_for(self._message_or_404(ctx, channel_id), self._app_intents())

    async def _edit_message(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        self._check_files(ctx)
        message = self._message_or_404(ctx, channel_id)
        if message.author.id != self.bot_user.id:
            raise FakeHTTPError(403, CODE_CANNOT_EDIT_OTHERS, "Cannot edit a message authored by another user")
        check_message(
            ctx.body,
            file_count=len(ctx.files),
            limits=self.limits,
            allowed_flags=_CHANNEL_MESSAGE_FLAGS,
            require_body=False,
            existing_attachments=len(message.attachments),
        )
        self._apply_edit(message, ctx.body, ctx.files)
        await self._announce_update(message)
        return 200, message.payload()

    async def _delete_message(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        message = self._message_or_404(ctx, channel_id)
        if message.author.id != self.bot_user.id:
            self._require_bot_permissions(channel_id, Permission.MANAGE_MESSAGES)
        message.deleted = True
        await self._announce_delete(message)
        return 204, None

    async def _typing(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        self._channel_or_404(ctx)
        return 204, None

    async def _add_reaction(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        channel_id = self._channel_or_404(ctx)
        self._require_bot_permissions(channel_id, Permission.ADD_REACTIONS | Permission.READ_MESSAGE_HISTORY)
        message = self._message_or_404(ctx, channel_id)
        if ctx.params["emoji"] not in message.reactions:
            message.reactions.append(ctx.params["emoji"])
        return 204, None

    # ------------------------------------------------------------------ guilds

    def _guild_or_404(self, ctx: RequestContext) -> FakeGuild:
        guild = self.guilds.get(int(ctx.params["guild_id"]))
        if guild is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_GUILD, "Unknown Guild")
        return guild

    async def _get_guild(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        guild = self._guild_or_404(ctx)
        data = guild.payload(members=[], joined_at=guild.created_at)
        for key in (
            "members",
            "channels",
            "threads",
            "presences",
            "voice_states",
            "stage_instances",
            "guild_scheduled_events",
            "soundboard_sounds",
            "joined_at",
            "large",
            "unavailable",
            "lazy",
            "member_count",
        ):
            data.pop(key, None)
        if ctx.query.get("with_counts") in _TRUE:
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return 200, data

    async def _get_roles(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        return 200, [role.payload() for role in self._guild_or_404(ctx).roles.values()]

    async def _get_channels(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        return 200, [channel.payload() for channel in self._guild_or_404(ctx).channels.values()]

    async def _get_member(self, ctx: RequestContext) -> Reply:
        self._require_auth(ctx)
        member = self._guild_or_404(ctx).members.get(int(ctx.params["user_id"]))
        if member is None:
            raise FakeHTTPError(404, CODE_UNKNOWN_MEMBER, "Unknown Member")
        return 200, member.payload()
