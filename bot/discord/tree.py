"""The command tree: one place that answers interactions privately and turns every error into a short reply.

`send_ephemeral()` is the only way the bot answers with a private message, whatever state the interaction is in.
`AtelierTree.on_error` maps domain errors (`AtelierError`, see `user_sentence`: the domain carries data, the
sentences with Discord markup are written here) and discord.py's check failures to specific sentences, and logs
anything unexpected with its traceback under a short error id that the user also sees, so an operator can find
the traceback the user is talking about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.billing.errors import BudgetExceededError
from bot.errors import AtelierError
from bot.jobs.errors import RESTARTING
from bot.money import format_usd

if TYPE_CHECKING:
    from discord.ext import commands

log = logging.getLogger(__name__)

_ORIGINAL_FILLED = "atelier.original_filled"
"""`Interaction.extras` key: the deferred "thinking…" message has already been replaced by a real answer."""
_PUBLIC_THINKING = "atelier.public_thinking"
"""`Interaction.extras` key: the "thinking…" message is public (a result will replace it), so errors must not."""

UNKNOWN_INTERACTION = 10062
"""Discord's error code for an interaction that was not acknowledged within 3 s (its token is then invalid)."""
INVALID_WEBHOOK_TOKEN = 50027
"""Discord's error code for an interaction token used after its 15 minutes."""

SHUTTING_DOWN_MESSAGE = RESTARTING

_PERMISSION_NAMES = {"manage_guild": "Manage Server", "manage_messages": "Manage Messages"}


def new_error_id() -> str:
    """Return a short random id that ties a user's error message to one logged traceback."""
    return secrets.token_hex(4)


async def defer_public(interaction: discord.Interaction[Any]) -> int | None:
    """Acknowledge with a public "thinking…" message that a result will replace; return that message's id.

    Errors sent afterwards with `send_ephemeral` still reach only the user: the public placeholder is removed first.
    """
    interaction.extras[_PUBLIC_THINKING] = True
    response = await interaction.response.defer(thinking=True)
    return response.message_id if response is not None else None


def mark_answered(interaction: discord.Interaction[Any]) -> None:
    """Record that the deferred "thinking…" message now shows a real answer, so later errors go as follow-ups."""
    interaction.extras[_ORIGINAL_FILLED] = True


def _permission_list(names: list[str]) -> str:
    return ", ".join(_PERMISSION_NAMES.get(name, name.replace("_", " ").title()) for name in names)


async def send_ephemeral(
    interaction: discord.Interaction[Any],
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
) -> bool:
    """Answer privately, whether the interaction is unanswered, deferred or answered; False if it no longer can be.

    Unanswered: the initial response. Deferred with "thinking…": that loading message is replaced (Discord's
    recommended way; a follow-up would only edit it implicitly), unless it is public (`defer_public`): then it is
    deleted and the answer is an ephemeral follow-up. Already answered: an ephemeral follow-up. Expired
    (token older than 15 minutes, or the initial 3 s missed): nothing can be sent, so the reason is logged.
    """
    message: dict[str, Any] = {}
    if content is not None:
        message["content"] = content
    if embed is not None:
        message["embed"] = embed
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(ephemeral=True, **message)
            return True
        if interaction.is_expired():
            log.warning("Interaction %s expired before it could be answered: %r", interaction.id, content)
            return False
        deferred = interaction.response.type is discord.InteractionResponseType.deferred_channel_message
        if deferred and not interaction.extras.get(_ORIGINAL_FILLED):
            interaction.extras[_ORIGINAL_FILLED] = True
            if interaction.extras.get(_PUBLIC_THINKING):
                # The placeholder is visible to everyone; the error is only for the user, so the placeholder goes.
                with contextlib.suppress(discord.NotFound):
                    await interaction.delete_original_response()
                await interaction.followup.send(ephemeral=True, **message)
                return True
            await interaction.edit_original_response(content=content, embed=embed)
            return True
        await interaction.followup.send(ephemeral=True, **message)
        return True
    except discord.HTTPException as exc:
        if exc.code in (UNKNOWN_INTERACTION, INVALID_WEBHOOK_TOKEN):
            log.warning("Interaction %s can no longer be answered (%s): %r", interaction.id, exc.text, content)
        else:
            log.exception("Answering interaction %s failed", interaction.id)
        return False


def _command_name(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    return f"/{command.qualified_name}" if command is not None else f"interaction type {interaction.type.name}"


def budget_refusal(error: BudgetExceededError) -> str:
    """Say why a request does not fit the budget: what it needs, what is left, and when the budget resets."""
    if error.scope == "blocked":
        return "You are blocked from generating images on this server; ask an admin if you think this is a mistake."
    needed, remaining = format_usd(error.needed), format_usd(error.remaining)
    resets = discord.utils.format_dt(error.resets_at, "R")
    if error.scope == "server":
        return (
            f"This needs about {needed} but the server has only {remaining} left in its budget; "
            f"the server budget resets {resets}."
        )
    if error.scope == "pool":
        return (
            f"This needs about {needed} but the team budget of <#{error.pool_id}> has only {remaining} left; "
            f"it resets {resets}."
        )
    return f"This needs about {needed} but you have {remaining} left; your budget resets {resets}."


def user_sentence(error: AtelierError) -> str:
    """Return what a member reads for a domain error (the wing writes the words that need Discord markup)."""
    if isinstance(error, BudgetExceededError):
        return budget_refusal(error)
    return error.user_message


def describe_error(error: BaseException) -> str | None:
    """Return the sentence for an error the user can act on, or None if it is unexpected (a bug or an outage)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    if isinstance(error, app_commands.TransformerError) and isinstance(error.__cause__, AtelierError):
        return user_sentence(error.__cause__)
    if isinstance(error, AtelierError):
        return user_sentence(error)
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command only works in a server."
    if isinstance(error, app_commands.MissingPermissions):
        return f"You need the {_permission_list(error.missing_permissions)} permission to do this."
    if isinstance(error, app_commands.BotMissingPermissions):
        return f"I need the {_permission_list(error.missing_permissions)} permission here to do this."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.TransformerError):
        if error.type is discord.AppCommandOptionType.user:
            return "That user is not a member of this server."
        return f"`{error.value}` is not a valid {error.type.name.replace('_', ' ')}."
    if isinstance(error, app_commands.CommandSignatureMismatch | app_commands.CommandNotFound):
        return "This command has just been updated; please try again in a minute."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    return None


async def report_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Tell the user what went wrong, privately; log anything unexpected with a traceback and a short error id."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    if isinstance(original, discord.HTTPException) and original.code in (UNKNOWN_INTERACTION, INVALID_WEBHOOK_TOKEN):
        # The interaction is gone (acknowledged too late, or after 15 minutes): nothing can be shown to the user.
        log.error(
            "%s for guild %s, user %s lost its interaction: %s",
            _command_name(interaction),
            interaction.guild_id,
            interaction.user.id,
            original.text,
            exc_info=original,
        )
        return
    message = describe_error(error)
    if message is not None:
        log.info(
            "%s refused (user %s, guild %s): %s",
            _command_name(interaction),
            interaction.user.id,
            interaction.guild_id,
            message,
        )
        await send_ephemeral(interaction, message)
        return
    error_id = new_error_id()
    log.error(
        "Unexpected error %s in %s (guild %s, channel %s, user %s)",
        error_id,
        _command_name(interaction),
        interaction.guild_id,
        interaction.channel_id,
        interaction.user.id,
        exc_info=original,
    )
    await send_ephemeral(
        interaction,
        f"Something went wrong on my side (error id `{error_id}`). Please try again, "
        "and give the error id to the server's admins if it keeps happening.",
    )


async def accept_interaction(interaction: discord.Interaction[Any]) -> bool:
    """Let a button or modal run unless the bot is shutting down (`AtelierTree.accept`); True if it may run."""
    tree = getattr(interaction.client, "tree", None)
    return await tree.accept(interaction) if isinstance(tree, AtelierTree) else True


class AtelierTree(app_commands.CommandTree["commands.Bot"]):
    """The bot's command tree: error replies in one place, and a record of in-flight commands for a clean shutdown."""

    def __init__(self, client: commands.Bot, *, fallback_to_global: bool = True) -> None:
        super().__init__(client, fallback_to_global=fallback_to_global)
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closing = False

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Refuse new commands while shutting down; otherwise remember the running command until it finishes."""
        return await self.accept(interaction)

    async def accept(self, interaction: discord.Interaction[Any]) -> bool:
        """Turn an interaction away while shutting down (telling the user); else track its task until it finishes.

        discord.py asks `interaction_check` only for commands; buttons and modals call this themselves (see
        `accept_interaction`), so a shutdown waits for their work too and refuses new clicks the same way.
        """
        if self._closing:
            if interaction.type is not discord.InteractionType.autocomplete:
                await send_ephemeral(interaction, SHUTTING_DOWN_MESSAGE)
            return False
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return True

    async def on_error(self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /) -> None:
        """Turn an error of any command into a short private reply (and a logged traceback if unexpected)."""
        await report_error(interaction, error)

    @property
    def closing(self) -> bool:
        """True once a shutdown has begun: new commands are turned away."""
        return self._closing

    @property
    def in_flight(self) -> int:
        """How many commands are running now."""
        return len(self._in_flight)

    async def drain(self, grace_seconds: float) -> int:
        """Stop accepting commands and wait up to `grace_seconds` for running ones; return how many did not finish."""
        self._closing = True
        current = asyncio.current_task()
        pending = {task for task in self._in_flight if task is not current and not task.done()}
        if pending:
            log.info("Waiting up to %.0f s for %d running command(s)", grace_seconds, len(pending))
            _, pending = await asyncio.wait(pending, timeout=grace_seconds)
        if pending:
            log.warning("%d command(s) still running at shutdown; they are abandoned", len(pending))
        return len(pending)
