"""What a test makes "users" do: slash and context-menu commands, button clicks, modal submits, messages.

Option payloads are built from the command definitions the bot actually synced, so a test cannot send an option the
bot never registered (the error names what exists instead).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from ._core import FakeDiscordCore
from ._models import FakeChannel, FakeGuild, FakeInteraction, FakeMember, FakeMessage, FakeRole, FakeUser, StoredBlob
from ._rules import walk_components

__all__ = ["FakeDiscordUsageError", "InjectMixin"]

_OPTION_TYPES = {
    1: "SUB_COMMAND",
    2: "SUB_COMMAND_GROUP",
    3: "STRING",
    4: "INTEGER",
    5: "BOOLEAN",
    6: "USER",
    7: "CHANNEL",
    8: "ROLE",
    9: "MENTIONABLE",
    10: "NUMBER",
    11: "ATTACHMENT",
}
_SELECT_TYPES = {3, 5, 6, 7, 8}


class FakeDiscordUsageError(ValueError):
    """A test asked the fake for something a real Discord client could not do (unknown option, bad choice, …)."""


def _snowflake_of(value: Any) -> int:
    if isinstance(value, (FakeUser, FakeMember, FakeRole, FakeChannel, FakeMessage, StoredBlob)):
        return value.id
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise FakeDiscordUsageError(f"expected an id or a fake object, got {value!r}")
    return int(value)


class InjectMixin(FakeDiscordCore):
    """The injection half of the fake's public API."""

    # ------------------------------------------------------------------ plumbing

    async def _require_session(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        try:
            await self.wait_until(self._live_sessions, timeout=timeout, what="an identified gateway session")
        except TimeoutError:
            raise RuntimeError(
                "no bot has IDENTIFYed with the fake gateway; start the bot and `await fake.wait_ready()` first"
            ) from None

    def _context(
        self, user_id: int, guild_id: int | None, channel_id: int | None
    ) -> tuple[FakeGuild, FakeChannel, FakeMember]:
        if channel_id is not None and guild_id is None:
            found = self._find_channel(channel_id)
            if found is None:
                raise FakeDiscordUsageError(f"unknown channel {channel_id}")
            guild_id = found[0].id
        if guild_id is None:
            if len(self.guilds) != 1:
                raise FakeDiscordUsageError(f"pass guild_id: the fake has {len(self.guilds)} guilds")
            guild_id = next(iter(self.guilds))
        guild = self.guild(guild_id)
        if channel_id is None:
            if not guild.channels:
                raise FakeDiscordUsageError(f"guild {guild_id} has no channels; add one with add_channel()")
            channel_id = next(iter(guild.channels))
        channel = guild.channels.get(channel_id)
        if channel is None:
            raise FakeDiscordUsageError(f"guild {guild_id} has no channel {channel_id}")
        member = guild.members.get(user_id)
        if member is None:
            raise FakeDiscordUsageError(f"user {user_id} is not a member of guild {guild_id}; add_member() first")
        return guild, channel, member

    def _new_interaction(
        self,
        *,
        type: int,
        name: str,
        data: dict[str, Any],
        guild: FakeGuild,
        channel: FakeChannel,
        member: FakeMember,
        message: FakeMessage | None = None,
        opened_by: FakeInteraction | None = None,
    ) -> FakeInteraction:
        interaction_id = self.new_id()
        token = secrets.token_urlsafe(48)
        permissions = guild.permissions_in(member, channel)
        bot_member = guild.members.get(self.bot_user.id)
        app_permissions = guild.permissions_in(bot_member, channel) if bot_member else 0
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "guild": {"id": str(guild.id), "locale": "en-US", "features": []},
            "guild_id": str(guild.id),
            "channel": channel.payload(permissions=permissions),
            "channel_id": str(channel.id),
            "member": member.payload(permissions=permissions),
            "token": token,
            "version": 1,
            "app_permissions": str(app_permissions),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": self.attachment_size_limit,
        }
        if message is not None:
            payload["message"] = message.payload()
        interaction = FakeInteraction(
            self,
            interaction_id=interaction_id,
            token=token,
            type=type,
            name=name,
            user=member.user,
            guild_id=guild.id,
            channel_id=channel.id,
            payload=payload,
            message=message,
            opened_by=opened_by,
        )
        self.interactions[interaction_id] = interaction
        self._interactions_by_token[token] = interaction
        return interaction

    async def _dispatch_interaction(
        self, interaction: FakeInteraction, via_shard: int | None = None
    ) -> FakeInteraction:
        # The clock starts before the frame leaves: an in-process bot can answer before the send returns.
        interaction.dispatched_at = self.clock.monotonic()
        if via_shard is None:
            await self._broadcast(
                "INTERACTION_CREATE", lambda _session: interaction.payload, guild_id=interaction.guild_id
            )
            return interaction
        sessions = [s for s in self._live_sessions() if s.shard is not None and s.shard[0] == via_shard]
        if not sessions:
            raise FakeDiscordUsageError(f"no identified session runs shard {via_shard}")
        for session in sessions:
            await session.dispatch("INTERACTION_CREATE", interaction.payload)
        self._notify()
        return interaction

    def _find_command(self, name: str, kind: int, guild_id: int) -> dict[str, Any]:
        for scope in (guild_id, None):
            for command in self.commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == kind:
                    return command
        known = sorted(
            {
                f"{c['name']} ({'guild' if scope else 'global'})"
                for scope in (guild_id, None)
                for c in self.commands.get(scope, [])
                if c.get("type", 1) == kind
            }
        )
        kind_name = {1: "slash", 2: "user context-menu", 3: "message context-menu"}[kind]
        raise FakeDiscordUsageError(
            f"the bot has not synced a {kind_name} command {name!r} for guild {guild_id} or globally; "
            f"synced: {known or 'none'} (sync_count={self.sync_count})"
        )

    @staticmethod
    def _command_data(command: dict[str, Any], **fields: Any) -> dict[str, Any]:
        """The interaction ``data`` head for ``command``: id, name, type and, for guild commands, guild_id."""
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        data.update(fields)
        if not data.get("resolved"):
            data.pop("resolved", None)
        return data

    # ------------------------------------------------------------------ options

    def _resolve_value(
        self,
        option_type: int,
        value: Any,
        guild: FakeGuild,
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        label: str,
    ) -> str:
        """Record a USER/CHANNEL/ROLE/MENTIONABLE/ATTACHMENT value in ``resolved`` and return its id string."""
        if option_type == 11:
            if not isinstance(value, StoredBlob):
                raise FakeDiscordUsageError(f"{label} is an ATTACHMENT option: pass a StoredBlob from store_blob()")
            data = value.payload()
            data["ephemeral"] = True
            resolved.setdefault("attachments", {})[str(value.id)] = data
            return str(value.id)
        ident = _snowflake_of(value)
        if option_type in (6, 9) and ident in self.users:
            resolved.setdefault("users", {})[str(ident)] = self.users[ident].payload()
            member = guild.members.get(ident)
            if member is not None:
                resolved.setdefault("members", {})[str(ident)] = member.payload(
                    with_user=False, permissions=guild.permissions_in(member, channel)
                )
            return str(ident)
        if option_type in (8, 9) and ident in guild.roles:
            resolved.setdefault("roles", {})[str(ident)] = guild.roles[ident].payload()
            return str(ident)
        if option_type == 7 and ident in guild.channels:
            target = guild.channels[ident]
            bot_member = guild.members.get(self.bot_user.id)
            data = target.payload(permissions=guild.permissions_in(bot_member, target) if bot_member else 0)
            resolved.setdefault("channels", {})[str(ident)] = {
                key: data[key]
                for key in ("id", "name", "type", "permissions", "guild_id", "parent_id", "nsfw", "position")
            }
            return str(ident)
        what = {6: "user", 7: "channel", 8: "role", 9: "user or role"}[option_type]
        raise FakeDiscordUsageError(f"{label}: {ident} is not a known {what} of guild {guild.id}")

    def _coerce(
        self,
        definition: dict[str, Any],
        value: Any,
        guild: FakeGuild,
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        label: str,
    ) -> Any:
        option_type = definition["type"]
        if option_type in (6, 7, 8, 9, 11):
            return self._resolve_value(option_type, value, guild, channel, resolved, label)
        if option_type == 3 and not isinstance(value, str):
            raise FakeDiscordUsageError(f"{label} is a STRING option; got {value!r}")
        if option_type == 4 and (isinstance(value, bool) or not isinstance(value, int)):
            raise FakeDiscordUsageError(f"{label} is an INTEGER option; got {value!r}")
        if option_type == 10 and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise FakeDiscordUsageError(f"{label} is a NUMBER option; got {value!r}")
        if option_type == 5 and not isinstance(value, bool):
            raise FakeDiscordUsageError(f"{label} is a BOOLEAN option; got {value!r}")
        choices = definition.get("choices")
        if choices and value not in [choice["value"] for choice in choices]:
            raise FakeDiscordUsageError(
                f"{label} must be one of the synced choices {[c['value'] for c in choices]}; got {value!r}"
            )
        if option_type == 3:
            low, high = definition.get("min_length", 0), definition.get("max_length", 6000)
            if not low <= len(value) <= high:
                raise FakeDiscordUsageError(f"{label} must be {low}..{high} characters; got {len(value)}")
        if option_type in (4, 10):
            low, high = definition.get("min_value"), definition.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise FakeDiscordUsageError(f"{label} must be within [{low}, {high}]; got {value!r}")
        return value

    def _build_options(
        self,
        definitions: Sequence[dict[str, Any]],
        values: Mapping[str, Any],
        guild: FakeGuild,
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        path: str,
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        by_name = {definition["name"]: definition for definition in definitions}
        unknown = sorted(set(values) - set(by_name))
        if unknown:
            raise FakeDiscordUsageError(f"/{path} has no option(s) {unknown}; its options are {list(by_name)}")
        options: list[dict[str, Any]] = []
        for name, definition in by_name.items():
            label = f"/{path} option {name!r} ({_OPTION_TYPES.get(definition['type'], definition['type'])})"
            if name not in values:
                if definition.get("required") and name != focused:
                    raise FakeDiscordUsageError(f"{label} is required")
                continue
            if name == focused:
                options.append({"name": name, "type": definition["type"], "value": str(values[name]), "focused": True})
                continue
            value = self._coerce(definition, values[name], guild, channel, resolved, label)
            options.append({"name": name, "type": definition["type"], "value": value})
        return options

    def _command_options(
        self,
        command: dict[str, Any],
        subcommand: str | None,
        values: Mapping[str, Any],
        guild: FakeGuild,
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        focused: str | None = None,
    ) -> list[dict[str, Any]]:
        definitions: list[dict[str, Any]] = command.get("options") or []
        nested = [d for d in definitions if d["type"] in (1, 2)]
        if not subcommand:
            if nested:
                raise FakeDiscordUsageError(
                    f"/{command['name']} needs a subcommand; it has {[d['name'] for d in nested]}"
                )
            return self._build_options(definitions, values, guild, channel, resolved, command["name"], focused)
        parts = subcommand.split()
        path = command["name"]
        chain: list[dict[str, Any]] = []
        level = definitions
        for part in parts:
            match = next((d for d in level if d["name"] == part and d["type"] in (1, 2)), None)
            if match is None:
                raise FakeDiscordUsageError(
                    f"/{path} has no subcommand {part!r}; it has {[d['name'] for d in level if d['type'] in (1, 2)]}"
                )
            chain.append(match)
            path = f"{path} {part}"
            level = match.get("options") or []
        if chain[-1]["type"] != 1:
            raise FakeDiscordUsageError(f"/{path} is a subcommand group; name one of its subcommands")
        leaf = self._build_options(level, values, guild, channel, resolved, path, focused)
        options: list[dict[str, Any]] = leaf
        for definition in reversed(chain):
            options = [{"name": definition["name"], "type": definition["type"], "options": options}]
        return options

    # ------------------------------------------------------------------ public injection API

    async def invoke_slash(
        self,
        name: str,
        *,
        user_id: int,
        guild_id: int | None = None,
        channel_id: int | None = None,
        options: Mapping[str, Any] | None = None,
        subcommand: str | None = None,
        attachments: Mapping[str, StoredBlob] | None = None,
        via_shard: int | None = None,
    ) -> FakeInteraction:
        """Run ``/name [subcommand] options…`` as ``user_id``; ``name`` may also be ``"budget default"``.

        Values are checked against the synced definition (types, choices, bounds, required). ATTACHMENT options take
        a :class:`StoredBlob`, in ``options`` or ``attachments``; USER/ROLE/CHANNEL options take ids or fake objects.
        ``via_shard`` is a test override: the interaction goes to the sessions of that shard instead of its guild's
        (what a process sees during a reshard or a rolling restart, when the ranges of old and new processes overlap
        or a guild's shard moved); the process answers it without the guild in its cache.
        """
        command_name, _, rest = name.partition(" ")
        subcommand = subcommand or rest or None
        await self._require_session()
        guild, channel, member = self._context(user_id, guild_id, channel_id)
        command = self._find_command(command_name, 1, guild.id)
        resolved: dict[str, dict[str, Any]] = {}
        values = {**(options or {}), **(attachments or {})}
        options_payload = self._command_options(command, subcommand, values, guild, channel, resolved)
        data = self._command_data(command, options=options_payload, resolved=resolved)
        interaction = self._new_interaction(
            type=2,
            name=f"{command_name} {subcommand}" if subcommand else command_name,
            data=data,
            guild=guild,
            channel=channel,
            member=member,
        )
        return await self._dispatch_interaction(interaction, via_shard)

    async def invoke_autocomplete(
        self,
        name: str,
        *,
        user_id: int,
        focused: str,
        value: str = "",
        options: Mapping[str, Any] | None = None,
        subcommand: str | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """Send an autocomplete request (type 4) while ``focused`` holds the partial text ``value``."""
        command_name, _, rest = name.partition(" ")
        subcommand = subcommand or rest or None
        await self._require_session()
        guild, channel, member = self._context(user_id, guild_id, channel_id)
        command = self._find_command(command_name, 1, guild.id)
        resolved: dict[str, dict[str, Any]] = {}
        values = {**(options or {}), focused: value}
        options_payload = self._command_options(command, subcommand, values, guild, channel, resolved, focused)
        data = self._command_data(command, options=options_payload, resolved=resolved)
        interaction = self._new_interaction(
            type=4, name=command_name, data=data, guild=guild, channel=channel, member=member
        )
        return await self._dispatch_interaction(interaction)

    async def invoke_message_command(self, name: str, message: FakeMessage, *, user_id: int) -> FakeInteraction:
        """Run the message context-menu command ``name`` on ``message`` (the target always carries its content)."""
        await self._require_session()
        if message.deleted:
            raise FakeDiscordUsageError(f"message {message.id} was deleted")
        guild, channel, member = self._context(user_id, message.guild_id, message.channel_id)
        command = self._find_command(name, 3, guild.id)
        data = self._command_data(
            command, target_id=str(message.id), resolved={"messages": {str(message.id): message.payload()}}
        )
        interaction = self._new_interaction(type=2, name=name, data=data, guild=guild, channel=channel, member=member)
        return await self._dispatch_interaction(interaction)

    async def invoke_user_command(
        self,
        name: str,
        target_user_id: int,
        *,
        user_id: int,
        guild_id: int | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """Run the user context-menu command ``name`` on ``target_user_id``."""
        await self._require_session()
        guild, channel, member = self._context(user_id, guild_id, channel_id)
        command = self._find_command(name, 2, guild.id)
        resolved: dict[str, dict[str, Any]] = {}
        target = self._resolve_value(6, target_user_id, guild, channel, resolved, f"target of {name!r}")
        data = self._command_data(command, target_id=target, resolved=resolved)
        interaction = self._new_interaction(type=2, name=name, data=data, guild=guild, channel=channel, member=member)
        return await self._dispatch_interaction(interaction)

    def _clickable(self, message: FakeMessage, custom_id: str, user_id: int, kinds: set[int]) -> dict[str, Any]:
        if message.deleted:
            raise FakeDiscordUsageError(f"message {message.id} was deleted")
        if message.id not in self.messages:
            raise FakeDiscordUsageError(f"message {message.id} is not one the fake holds")
        component = message.find_component(custom_id)
        if component is None or component.get("type") not in kinds:
            raise FakeDiscordUsageError(
                f"message {message.id} has no such component {custom_id!r}; buttons: {message.button_custom_ids()}"
            )
        if component.get("disabled"):
            raise FakeDiscordUsageError(f"component {custom_id!r} of message {message.id} is disabled")
        if message.ephemeral:
            owner = self.interactions.get(message.interaction_id or 0)
            if owner is not None and owner.user.id != user_id:
                raise FakeDiscordUsageError(f"message {message.id} is ephemeral: only user {owner.user.id} sees it")
        return component

    async def click_button(self, message: FakeMessage, custom_id: str, *, user_id: int) -> FakeInteraction:
        """Click the button ``custom_id`` on a message the fake holds (as returned to or sent by the bot)."""
        await self._require_session()
        component = self._clickable(message, custom_id, user_id, {2})
        guild, channel, member = self._context(user_id, message.guild_id, message.channel_id)
        data = {"custom_id": custom_id, "component_type": 2, "id": component.get("id")}
        interaction = self._new_interaction(
            type=3, name=custom_id, data=data, guild=guild, channel=channel, member=member, message=message
        )
        return await self._dispatch_interaction(interaction)

    async def choose_select(
        self, message: FakeMessage, custom_id: str, values: Sequence[Any], *, user_id: int
    ) -> FakeInteraction:
        """Pick ``values`` in the select menu ``custom_id`` (option values, or ids/fake objects for entity selects)."""
        await self._require_session()
        component = self._clickable(message, custom_id, user_id, _SELECT_TYPES)
        guild, channel, member = self._context(user_id, message.guild_id, message.channel_id)
        kind = component["type"]
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind, "id": component.get("id")}
        if kind == 3:
            allowed = [option["value"] for option in component.get("options", [])]
            wrong = [v for v in values if v not in allowed]
            if wrong:
                raise FakeDiscordUsageError(f"select {custom_id!r} has no option(s) {wrong}; options: {allowed}")
            data["values"] = list(values)
        else:
            resolved: dict[str, dict[str, Any]] = {}
            option_type = {5: 6, 6: 8, 7: 9, 8: 7}[kind]
            data["values"] = [
                self._resolve_value(option_type, v, guild, channel, resolved, f"select {custom_id!r}") for v in values
            ]
            data["resolved"] = resolved
        interaction = self._new_interaction(
            type=3, name=custom_id, data=data, guild=guild, channel=channel, member=member, message=message
        )
        return await self._dispatch_interaction(interaction)

    def _modal_echo(
        self,
        component: dict[str, Any],
        values: Mapping[str, Any],
        used: set[str],
        resolved: dict[str, dict[str, Any]],
        guild: FakeGuild,
        channel: FakeChannel,
    ) -> dict[str, Any]:
        kind = component["type"]
        echo: dict[str, Any] = {"type": kind, "id": component.get("id")}
        if kind == 1:
            echo["components"] = [
                self._modal_echo(child, values, used, resolved, guild, channel) for child in component["components"]
            ]
        elif kind == 18:
            echo["component"] = self._modal_echo(component["component"], values, used, resolved, guild, channel)
        elif kind == 4:
            custom_id = component["custom_id"]
            used.add(custom_id)
            value = values.get(custom_id, component.get("value") or "")
            if not isinstance(value, str):
                raise FakeDiscordUsageError(f"text input {custom_id!r} takes a string; got {value!r}")
            if component.get("required", True) and not value:
                raise FakeDiscordUsageError(f"text input {custom_id!r} is required")
            low, high = component.get("min_length") or 0, component.get("max_length") or 4000
            if value and not low <= len(value) <= high:
                raise FakeDiscordUsageError(
                    f"text input {custom_id!r} must be {low}..{high} characters; got {len(value)}"
                )
            echo.update(custom_id=custom_id, value=value)
        elif kind in _SELECT_TYPES or kind == 19:
            custom_id = component["custom_id"]
            used.add(custom_id)
            chosen = values.get(custom_id, [])
            chosen = [chosen] if isinstance(chosen, (str, StoredBlob)) else list(chosen)
            if kind == 3:
                echo.update(custom_id=custom_id, values=chosen)
            else:
                option_type = {5: 6, 6: 8, 7: 9, 8: 7, 19: 11}[kind]
                echo.update(
                    custom_id=custom_id,
                    values=[
                        self._resolve_value(option_type, v, guild, channel, resolved, f"modal field {custom_id!r}")
                        for v in chosen
                    ],
                )
        return echo

    async def submit_modal(
        self, opened_by: FakeInteraction, values: Mapping[str, Any], *, user_id: int | None = None
    ) -> FakeInteraction:
        """Submit the modal ``opened_by`` received (type-9 callback), echoing its ``custom_id`` and component tree.

        ``values`` maps each field's ``custom_id`` to its text (or the chosen values of a select / file upload).
        """
        await self._require_session()
        modal = opened_by.modal
        if modal is None:
            raise FakeDiscordUsageError(f"{opened_by!r} did not open a modal (no accepted type-9 callback)")
        guild, channel, member = self._context(user_id or opened_by.user.id, opened_by.guild_id, opened_by.channel_id)
        fields = {c["custom_id"] for _, c in walk_components(modal["components"]) if "custom_id" in c}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise FakeDiscordUsageError(
                f"modal {modal['custom_id']!r} has no field(s) {unknown}; fields: {sorted(fields)}"
            )
        used: set[str] = set()
        resolved: dict[str, dict[str, Any]] = {}
        components = [self._modal_echo(c, values, used, resolved, guild, channel) for c in modal["components"]]
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        message = opened_by.message if opened_by.type == 3 else None
        interaction = self._new_interaction(
            type=5,
            name=modal["custom_id"],
            data=data,
            guild=guild,
            channel=channel,
            member=member,
            message=message,
            opened_by=opened_by,
        )
        return await self._dispatch_interaction(interaction)

    async def user_message(
        self,
        channel_id: int,
        *,
        user_id: int,
        content: str = "",
        attachments: Sequence[StoredBlob] = (),
        embeds: Sequence[Mapping[str, Any]] = (),
        reply_to: FakeMessage | None = None,
        mentions: Sequence[int] = (),
        ping_reply: bool = True,
    ) -> FakeMessage:
        """Post a message as ``user_id`` and deliver it as MESSAGE_CREATE.

        ``mentions`` adds users to the mention list (as ``<@id>`` in ``content`` also does); a reply pings the
        replied-to author when ``ping_reply`` (Discord's default). Attachments are re-hosted under the channel.
        ``embeds`` are stored as given, as Discord stores them: a link preview of a link in ``content`` (type
        ``image`` with the picture in ``thumbnail``, see :meth:`external_image`), or a rich embed as a bot's or
        webhook's message carries. The Message Content intent rule applies to what the bot receives.
        """
        await self._require_session()
        guild, channel, member = self._context(user_id, None, channel_id)
        message = FakeMessage(
            id=self.new_id(),
            channel_id=channel.id,
            guild_id=guild.id,
            author=member.user,
            timestamp=self.clock.iso(),
            content=content,
            attachments=[self._rehost(blob, channel.id) for blob in attachments],
            embeds=[dict(embed) for embed in embeds],
            type=19 if reply_to is not None else 0,
        )
        message.mentions, message.mention_role_ids, message.mention_everyone = self._mentions_in(content, guild.id)
        for ident in mentions:
            user = self.users.get(ident)
            if user is None:
                raise FakeDiscordUsageError(f"unknown user {ident} in mentions")
            if user not in message.mentions:
                message.mentions.append(user)
        if reply_to is not None:
            message.referenced = reply_to
            message.message_reference = {
                "type": 0,
                "channel_id": str(reply_to.channel_id),
                "message_id": str(reply_to.id),
                "guild_id": str(guild.id),
            }
            if ping_reply and reply_to.author not in message.mentions and reply_to.author.id != user_id:
                message.mentions.append(reply_to.author)
        self._store_message(message)
        await self._announce_create(message)
        return message
