"""The generation extension: every way a member asks for images, through one request flow.

- `flow`: `RequestFlow`, the one way from a request to a job (acknowledge, check, admit, confirm, status), and what
  the buttons of Atelier's messages ask for (Reroll, Edit, Delete, Cancel, Confirm);
- `answers`: how the member hears about a request while it is admitted (the words, in the interaction);
- `imagine`: the `/imagine` command;
- `edit`: `/edit`, the **Edit image** message command and replies that mention the bot;
- `references`: attachments and a message's images as references.

`setup()` builds the flow once and hands it to each cog; the flow binds the buttons to itself
(`bot.discord.views.bind_buttons`) while it is loaded.
"""

from __future__ import annotations

from discord.ext import commands

from bot.discord.client import AtelierBot
from cogs._context import services_of
from cogs._options import offer_served_options
from cogs.generation.edit import Editing
from cogs.generation.flow import RequestFlow
from cogs.generation.imagine import Imagine


async def setup(bot: commands.Bot) -> None:
    """Build the request flow, bind the buttons to it, and add the flow and the commands that use it."""
    services = services_of(bot)
    assert isinstance(bot, AtelierBot)
    flow = RequestFlow(bot, services.generation, services.server_options, services.delivery)
    await bot.add_cog(flow)
    await bot.add_cog(Imagine(flow))
    await bot.add_cog(Editing(bot, flow))
    for name in ("imagine", "edit"):  # only the models (and the resolution) the configured providers serve
        offer_served_options(bot.tree.get_command(name), services.generation.routing)
