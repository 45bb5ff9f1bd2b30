"""Checks the cogs run themselves: a command is used in a server, the member may manage it (re-checked by the bot)."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands


def require_guild(interaction: discord.Interaction[Any]) -> int:
    """Return the server id, or refuse with "This command only works in a server"."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def require_manage_guild(interaction: discord.Interaction[Any]) -> bool:
    """Allow only members with Manage Server (or Administrator) in a server; raise the matching check failure.

    Discord's `default_member_permissions` is only a default that each server can change in its Integrations
    settings, so admin commands check the member's resolved permissions from the interaction themselves.
    """
    require_guild(interaction)
    permissions = interaction.permissions
    if not (permissions.administrator or permissions.manage_guild):
        raise app_commands.MissingPermissions(["manage_guild"])
    return True
