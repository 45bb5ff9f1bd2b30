"""What the admin command groups (`/budget`, `/settings`) share besides their permission check: the change log line."""

from __future__ import annotations

import logging
from typing import Any

import discord


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
