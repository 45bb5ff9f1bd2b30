"""`/imagine`: images from a prompt, optionally guided by uploaded reference images."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.jobs.requests import RequestKind
from cogs._options import Count, Prompt, generation_options
from cogs.generation.flow import RequestFlow


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
        resolution: str | None = None,
        reference: discord.Attachment | None = None,
        reference2: discord.Attachment | None = None,
        reference3: discord.Attachment | None = None,
        reference4: discord.Attachment | None = None,
    ) -> None:
        """Generate images from a prompt, optionally guided by reference images."""
        await self.flow.command(
            interaction,
            prompt,
            (reference, reference2, reference3, reference4),
            RequestKind.IMAGINE,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            count=count,
            resolution=resolution,
        )
