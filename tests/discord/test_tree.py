"""The error sentences of the command tree, for errors raised before or around a command's own code."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord import app_commands

from bot.billing.errors import BudgetInputError
from bot.discord.tree import describe_error


async def _callback(interaction: discord.Interaction[Any]) -> None:
    """Do nothing."""


COMMAND = app_commands.Command(name="x", description="x", callback=_callback)


@pytest.mark.parametrize(
    ("error", "sentence"),
    [
        (app_commands.MissingPermissions(["manage_guild"]), "You need the Manage Server permission to do this."),
        (app_commands.BotMissingPermissions(["attach_files"]), "I need the Attach Files permission here to do this."),
        (app_commands.NoPrivateMessage(), "This command only works in a server."),
        (
            app_commands.CommandInvokeError(COMMAND, BudgetInputError("A grant needs a reason.")),
            "A grant needs a reason.",
        ),
        (
            app_commands.CommandSignatureMismatch(COMMAND),
            "This command has just been updated; please try again in a minute.",
        ),
        (app_commands.CheckFailure(), "You can't use this command here."),
    ],
)
def test_expected_errors_have_specific_sentences(error: app_commands.AppCommandError, sentence: str) -> None:
    """Check failures and domain errors become one specific sentence for the user."""
    assert describe_error(error) == sentence


@pytest.mark.parametrize("original", [RuntimeError("bug"), KeyError("x"), discord.DiscordException("outage")])
def test_unexpected_errors_have_no_sentence(original: Exception) -> None:
    """Anything that is not a domain error or a check failure is unexpected (shown with an error id instead)."""
    assert describe_error(app_commands.CommandInvokeError(COMMAND, original)) is None
