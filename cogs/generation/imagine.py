"""`/imagine`: images from a prompt, optionally guided by uploaded reference images."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.tree import defer_public
from bot.jobs.requests import RequestKind
from cogs._checks import require_guild
from cogs._options import Count, Prompt, generation_options
from cogs.generation.flow import RequestFlow
from cogs.generation.references import reference_from_attachment


class Imagine(commands.Cog):
    """The `/imagine` command; the request flow does the rest."""

    def __init__(self, flow: RequestFlow) -> None:
        self.flow = flow

    @app_commands.command(name="imagine")
    @generation_options
    @app_commands.describe(
        prompt="What to draw (up to 6000 characters)",
        reference="A reference image to guide the result",
        reference2="Another reference image",
        reference3="Another reference image",
        reference4="Another reference image",
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: Prompt,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        count: Count | None = None,
        output_format: str | None = None,
        reference: discord.Attachment | None = None,
        reference2: discord.Attachment | None = None,
        reference3: discord.Attachment | None = None,
        reference4: discord.Attachment | None = None,
    ) -> None:
        """Generate images from a prompt, optionally guided by reference images."""
        response_id = await defer_public(interaction)  # acknowledge within Discord's 3 s before any other work
        options = await self.flow.options(
            require_guild(interaction),
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            count=count,
        )
        attachments = [item for item in (reference, reference2, reference3, reference4) if item is not None]
        references = [reference_from_attachment(attachment) for attachment in attachments]
        await self.flow.generate(interaction, response_id, prompt, options, references, RequestKind.IMAGINE)
