"""What the cogs read off discord.py's objects: the services the bot was given, and a member's role ids."""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.discord.client import AtelierBot, Services


def services_of(bot: commands.Bot) -> Services:
    """Return the services the composition root gave the bot (extensions are only loaded into an `AtelierBot`)."""
    if not isinstance(bot, AtelierBot):
        raise TypeError(f"Atelier's extensions need an AtelierBot, not {type(bot).__name__}")
    return bot.services


def role_ids(user: discord.Member | discord.User) -> list[int]:
    """Return the ids of a member's roles (without @everyone); a user outside the server has none."""
    if not isinstance(user, discord.Member):
        return []
    return [role.id for role in user.roles if not role.is_default()]
