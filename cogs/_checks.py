"""Checks and conversions shared by the cogs: permission re-checks done by the bot itself, ids from members."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import AtelierBot, Services


def services_of(bot: commands.Bot) -> Services:
    """Return the services the composition root gave the bot (extensions are only loaded into an `AtelierBot`)."""
    if not isinstance(bot, AtelierBot):
        raise TypeError(f"Atelier's extensions need an AtelierBot, not {type(bot).__name__}")
    return bot.services


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


def role_ids(user: discord.Member | discord.User) -> list[int]:
    """Return the ids of a member's roles (without @everyone); a user outside the server has none."""
    if not isinstance(user, discord.Member):
        return []
    return [role.id for role in user.roles if not role.is_default()]


def log_admin_change(
    log: logging.Logger, area: str, interaction: discord.Interaction[Any], change: str, *args: object
) -> None:
    """Log an admin's change of `area` (`Budget`, `Generation settings`) with the server and who made it."""
    log.info(
        "%s change in guild %s by %s (%s): " + change,
        area,
        interaction.guild_id,
        interaction.user,
        interaction.user.id,
        *args,
    )
