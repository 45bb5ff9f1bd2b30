"""`/settings channels`, `/settings roles` and `/settings blocklist`: where and who may generate, and what not.

The rules live in `bot.moderation.policy` (checked first in admission, on every entry point); this part shows and
changes them and adds its lines to `/settings show`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import discord
from discord import app_commands

from bot.discord.embeds import COLOUR
from bot.discord.tree import send_ephemeral
from bot.errors import InvalidRequestError
from bot.moderation.policy import GuildPolicy
from cogs._admin import log_admin_change
from cogs._checks import require_guild
from cogs.settings.group import SettingsBase, ShowField, settings

log = logging.getLogger(__name__)

AnyChannel = app_commands.AppCommandChannel | app_commands.AppCommandThread

PLACE_TYPES = [
    discord.ChannelType.text,
    discord.ChannelType.news,
    discord.ChannelType.forum,
    discord.ChannelType.voice,
    discord.ChannelType.stage_voice,
    discord.ChannelType.category,
    discord.ChannelType.public_thread,
    discord.ChannelType.private_thread,
    discord.ChannelType.news_thread,
]
"""The channels a rule can name: where members can run commands, and the categories that hold them."""


class PlaceTransformer(app_commands.Transformer):
    """A channel, category or thread option, taken as Discord resolved it (no cache needed)."""

    @property
    def type(self) -> discord.AppCommandOptionType:
        """A channel option."""
        return discord.AppCommandOptionType.channel

    @property
    def channel_types(self) -> list[discord.ChannelType]:
        """The kinds of channel offered."""
        return PLACE_TYPES

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> AnyChannel:
        """Return the resolved channel or thread."""
        if not isinstance(value, app_commands.AppCommandChannel | app_commands.AppCommandThread):
            raise app_commands.TransformerError(value, self.type, self)
        return value


Place = app_commands.Transform[AnyChannel, PlaceTransformer]

ACTIONS = [app_commands.Choice(name=name, value=name) for name in ("allow", "deny", "clear", "show")]
BLOCKLIST_ACTIONS = [app_commands.Choice(name=name, value=name) for name in ("add", "remove", "show", "test")]

FIELD_LIMIT = 1024
"""Discord's limit on an embed field's value."""

Text = app_commands.Range[str, 1, 4000]


def _listed(items: list[str], limit: int = FIELD_LIMIT) -> str:
    """Join items with commas, ending with "and N more" when they would not fit in `limit` characters."""
    shown: list[str] = []
    for number, item in enumerate(items):
        more = f" and {len(items) - number} more"
        if len(", ".join([*shown, item])) + len(more) > limit:
            return ", ".join(shown) + more
        shown.append(item)
    return ", ".join(shown)


def channels_text(channels: Mapping[int, bool]) -> str:
    """Say the channel rules in words: everywhere, or where (a category covers its channels, a channel its threads)."""
    allowed = [f"<#{ident}>" for ident, rule in sorted(channels.items()) if rule]
    denied = [f"<#{ident}>" for ident, rule in sorted(channels.items()) if not rule]
    text = f"Only in {_listed(allowed, 600)}" if allowed else "In every channel"
    return text + (f"; never in {_listed(denied, 300)}" if denied else "") + "."


def roles_text(roles: Mapping[int, bool]) -> str:
    """Say the role rules in words: everyone, or whose roles."""
    allowed = [f"<@&{ident}>" for ident, rule in sorted(roles.items()) if rule]
    denied = [f"<@&{ident}>" for ident, rule in sorted(roles.items()) if not rule]
    text = f"Members with {_listed(allowed, 600)}" if allowed else "Every member"
    return text + (f"; never members with {_listed(denied, 300)}" if denied else "") + "."


def blocklist_text(policy: GuildPolicy) -> str:
    """Say the blocklist's size, for `/settings show`."""
    size = len(policy.blocklist)
    if size == 0:
        return "Empty: every prompt passes."
    return f"{size} entr{'y' if size == 1 else 'ies'}; `/settings blocklist action:show` lists them."


def _quoted(entries: list[str]) -> list[str]:
    return [f"“{discord.utils.escape_markdown(entry)}”" for entry in entries]


class AccessSettings(SettingsBase):
    """`/settings channels`, `/settings roles`, `/settings blocklist` (a part of `SettingsCommands`)."""

    async def show_fields(self, guild_id: int) -> list[ShowField]:
        """Add the channel and role rules and the blocklist's size to `/settings show`."""
        policy = await self._services.policy.rules(guild_id)
        mine = [
            ShowField("Channels", channels_text(policy.channels)),
            ShowField("Roles", roles_text(policy.roles)),
            ShowField("Blocklist", blocklist_text(policy)),
        ]
        return [*mine, *await super().show_fields(guild_id)]

    @settings.command(name="channels")
    @app_commands.describe(
        action="allow or deny a channel, category or thread; clear its rule (or all); show the rules",
        channel="The channel, category (covers its channels) or thread; a channel's rule covers its threads",
    )
    @app_commands.choices(action=ACTIONS)
    async def channels(
        self, interaction: discord.Interaction[Any], action: app_commands.Choice[str], channel: Place | None = None
    ) -> None:
        """Choose the channels where members may generate images (none allowed: everywhere)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        policy = self._services.policy
        actor = interaction.user.id
        if action.value == "show":
            await send_ephemeral(
                interaction, embed=_rules_embed("Channels", channels_text((await policy.rules(guild_id)).channels))
            )
            return
        if action.value in ("allow", "deny"):
            if channel is None:
                raise InvalidRequestError(
                    f"Name the channel to {action.value}: `/settings channels action:{action.value} channel:#…`."
                )
            await policy.set_channel(guild_id, channel.id, action.value == "allow", actor_id=actor)
            done = f"{channel.mention} is now **{'allowed' if action.value == 'allow' else 'denied'}**."
        else:
            removed = await policy.clear_channel(guild_id, None if channel is None else channel.id, actor_id=actor)
            target = "every channel rule" if channel is None else f"the rule of {channel.mention}"
            done = f"Cleared {target}." if removed else "There was no rule to clear."
        log_admin_change(
            log, "Access", interaction, "channels %s %s", action.value, None if channel is None else channel.id
        )
        rules = (await policy.rules(guild_id)).channels
        await send_ephemeral(interaction, done, embed=_rules_embed("Channels", channels_text(rules)))

    @settings.command(name="roles")
    @app_commands.describe(
        action="allow or deny a role; clear its rule (or all); show the rules",
        role="The role",
    )
    @app_commands.choices(action=ACTIONS)
    async def roles(
        self, interaction: discord.Interaction[Any], action: app_commands.Choice[str], role: discord.Role | None = None
    ) -> None:
        """Choose the roles whose members may generate images (none allowed: everyone); denied roles never may."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        policy = self._services.policy
        actor = interaction.user.id
        if action.value == "show":
            await send_ephemeral(
                interaction, embed=_rules_embed("Roles", roles_text((await policy.rules(guild_id)).roles))
            )
            return
        if action.value in ("allow", "deny"):
            if role is None:
                raise InvalidRequestError(
                    f"Name the role to {action.value}: `/settings roles action:{action.value} role:@…`."
                )
            if role.is_default():
                raise InvalidRequestError(
                    "@everyone is every member: with no role allowed everyone may generate already, and to stop "
                    "everyone use `/settings channels`."
                )
            await policy.set_role(guild_id, role.id, action.value == "allow", actor_id=actor)
            done = f"{role.mention} is now **{'allowed' if action.value == 'allow' else 'denied'}**."
        else:
            removed = await policy.clear_role(guild_id, None if role is None else role.id, actor_id=actor)
            target = "every role rule" if role is None else f"the rule of {role.mention}"
            done = f"Cleared {target}." if removed else "There was no rule to clear."
        log_admin_change(log, "Access", interaction, "roles %s %s", action.value, None if role is None else role.id)
        rules = (await policy.rules(guild_id)).roles
        await send_ephemeral(interaction, done, embed=_rules_embed("Roles", roles_text(rules)))

    @settings.command(name="blocklist")
    @app_commands.describe(
        action="add or remove an entry, show the list, or test a prompt against it",
        text="The word or phrase (add, remove), or the prompt to test",
    )
    @app_commands.choices(action=BLOCKLIST_ACTIONS)
    async def blocklist(
        self, interaction: discord.Interaction[Any], action: app_commands.Choice[str], text: Text | None = None
    ) -> None:
        """Words and phrases a prompt may not contain (whole words, any case or width)."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        policy = self._services.policy
        if action.value == "show":
            entries = (await policy.rules(guild_id)).blocklist.entries
            body = _listed(_quoted(entries), 4000) if entries else "Empty: every prompt passes."
            embed = discord.Embed(title=f"Blocklist ({len(entries)})", description=body, colour=COLOUR)
            await send_ephemeral(interaction, embed=embed)
            return
        if text is None or not text.strip():
            raise InvalidRequestError(f"Give the text: `/settings blocklist action:{action.value} text:…`.")
        if action.value == "test":
            hit = await policy.test(guild_id, text)
            answer = (
                "✅ That prompt passes."
                if hit is None
                else f"⛔ That prompt is refused: it contains {_quoted([hit])[0]}."
            )
            await send_ephemeral(interaction, answer)
            return
        if action.value == "add":
            await policy.add_block(guild_id, text, actor_id=interaction.user.id)
            entry = _quoted([" ".join(text.split())])[0]
            answer = f"Added {entry}: prompts containing it, in any case or width, are refused."
        else:
            removed = await policy.remove_block(guild_id, text, actor_id=interaction.user.id)
            answer = f"Removed {_quoted([removed])[0]}."
        log_admin_change(log, "Access", interaction, "blocklist %s %r", action.value, text)
        await send_ephemeral(interaction, answer)


def _rules_embed(title: str, text: str) -> discord.Embed:
    return discord.Embed(title=title, description=text, colour=COLOUR)
