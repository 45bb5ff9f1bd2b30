"""A member's own account: `/balance` (allowance, spend, reset time, recent jobs) and `/queue` (unfinished jobs)."""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.billing.ledger import Ledger
from bot.discord.embeds import queue_embed, status_embed
from bot.discord.tokens import channel_parents
from bot.discord.tree import mark_answered, send_ephemeral
from bot.discord.views import queue_view
from bot.jobs.service import GenerationService
from bot.storage.jobs import JobRepository
from cogs._checks import require_guild
from cogs._context import role_ids, services_of

log = logging.getLogger(__name__)

RECENT_JOBS = 5


class Account(commands.Cog):
    """Commands about the member's own budget and jobs."""

    def __init__(self, ledger: Ledger, jobs: JobRepository, generation: GenerationService) -> None:
        self._ledger = ledger
        self._jobs = jobs
        self._generation = generation

    @app_commands.command(name="balance")
    @app_commands.guild_only()
    async def balance(self, interaction: discord.Interaction[Any]) -> None:
        """Show your image budget here: allowance, spent, reserved, remaining, reset time, team budget, recent jobs."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        places = (interaction.channel_id, *channel_parents(interaction.channel)) if interaction.channel_id else ()
        status = await self._ledger.status(guild_id, interaction.user.id, role_ids(interaction.user), places=places)
        jobs = await self._jobs.list_recent_for_member(guild_id, interaction.user.id, RECENT_JOBS)
        await send_ephemeral(interaction, embed=status_embed("Your budget", status, jobs=jobs))

    @app_commands.command(name="queue")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        """Show your queued and running image jobs here, with their place in the queue, and cancel them."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge within Discord's 3 s first
        guild_id = require_guild(interaction)
        entries = await self._generation.queue_for_member(guild_id, interaction.user.id)
        mark_answered(interaction)
        await interaction.edit_original_response(
            embed=queue_embed(entries), view=queue_view([entry.job.id for entry in entries])
        )


async def setup(bot: commands.Bot) -> None:
    """Add the cog with the services it needs (the Cancel buttons of `/queue` are handled by the request flow)."""
    services = services_of(bot)
    await bot.add_cog(Account(services.ledger, services.jobs, services.generation))
