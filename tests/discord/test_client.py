"""The client end to end: boot, intents, command sync only on change, dev-guild sync, gateway resume, shutdown."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from bot.discord.client import (
    EXTENSIONS,
    DiscordUnavailableError,
    InvalidTokenError,
    ShardingRefusedError,
    commands_hash,
    connection_failure,
)
from bot.discord.intents import PrivilegedIntentError
from bot.discord.tree import SHUTTING_DOWN_MESSAGE
from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, inference_tasks, job_id_of, result_of

GUILDS_INTENT = 1
GUILD_MESSAGES_INTENT = 1 << 9
MESSAGE_CONTENT_INTENT = 1 << 15
COMMANDS = {"balance", "budget", "settings", "queue", "imagine", "edit", "Edit image"}


def _names(commands: list[dict[str, Any]]) -> set[str]:
    return {command["name"] for command in commands}


def test_every_extension_imports_and_has_setup() -> None:
    """Each module in the explicit extension tuple imports and ends with an async `setup()`."""
    for name in EXTENSIONS:
        module = importlib.import_module(name)
        assert inspect.iscoroutinefunction(module.setup), name


def test_commands_hash_ignores_order_and_sees_any_change() -> None:
    """The sync hash is the same for the same definitions in any order, and differs for any changed field."""
    first = {"name": "a", "type": 1, "description": "x", "options": []}
    second = {"name": "b", "type": 1, "description": "y"}
    assert commands_hash([first, second]) == commands_hash([second, first])
    assert commands_hash([first, second]) != commands_hash([first, {**second, "description": "z"}])


async def test_boot_identifies_with_minimum_intents_and_syncs_once(atelier: Atelier) -> None:
    """The bot logs in, syncs its commands globally once, and identifies with the least it needs.

    Guild messages (not privileged) bring replies that mention the bot; Message Content is asked for only because
    the fake's application has it switched on in the portal (`reply_editing = "auto"`, the default).
    """
    fake = atelier.fake

    assert [identify["intents"] for identify in fake.identifies] == [
        GUILDS_INTENT | GUILD_MESSAGES_INTENT | MESSAGE_CONTENT_INTENT
    ]
    assert fake.sync_count == 1
    assert _names(fake.commands[None]) == COMMANDS
    assert atelier.bot.is_ready()
    assert atelier.bot.get_guild(atelier.world.guild_id) is not None


async def test_restart_does_not_resync_unchanged_commands(atelier: Atelier) -> None:
    """The definitions' hash is stored in SQLite: a restart with the same commands skips the sync, a change syncs."""
    fake = atelier.fake
    await atelier.stop()
    await atelier.start()
    assert fake.sync_count == 1
    assert len(fake.identifies) == 2

    async def ping(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message("pong", ephemeral=True)

    atelier.bot.tree.add_command(app_commands.Command(name="ping", description="test only", callback=ping))
    assert await atelier.bot.sync_commands()
    assert not await atelier.bot.sync_commands()
    assert fake.sync_count == 2
    assert _names(fake.commands[None]) == COMMANDS | {"ping"}

    await atelier.stop()
    await atelier.start()
    assert fake.sync_count == 3
    assert _names(fake.commands[None]) == COMMANDS


async def test_dev_guild_gets_the_commands_instead_of_a_global_sync(atelier: Atelier) -> None:
    """With ATELIER_DEV_GUILD the commands are synced to that guild (instant in Discord) and work there."""
    fake = atelier.fake
    guild_id = atelier.world.guild_id
    await atelier.stop()
    fake.commands.clear()

    await atelier.start(ATELIER_DEV_GUILD=str(guild_id))

    assert _names(fake.commands[guild_id]) == COMMANDS
    assert None not in fake.commands
    message = await atelier.answer("balance", user_id=atelier.world.member_id)
    assert message.embeds[0]["title"] == "Your budget"


async def test_dev_guild_after_a_global_sync_warns_once_and_the_next_global_start_syncs_again(
    atelier: Atelier, caplog: pytest.LogCaptureFixture
) -> None:
    """Switching ATELIER_DEV_GUILD on after a global sync leaves the global commands in Discord (another instance of
    the application may use them) and says so once; once they are cleared as the README shows (PUT []), the next
    start without ATELIER_DEV_GUILD syncs them again instead of trusting its stored hash."""
    fake, guild_id = atelier.fake, atelier.world.guild_id
    caplog.set_level(logging.WARNING, logger="bot.discord.client")
    await atelier.stop()

    await atelier.start(ATELIER_DEV_GUILD=str(guild_id))
    await atelier.stop()
    await atelier.start(ATELIER_DEV_GUILD=str(guild_id))

    assert _names(fake.commands[None]) == _names(fake.commands[guild_id]) == COMMANDS
    warnings = [record.getMessage() for record in caplog.records if "synced globally before" in record.getMessage()]
    assert len(warnings) == 1 and "README" in warnings[0]

    url = f"{fake.api_base}/applications/{fake.application_id}/commands"
    headers = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http, http.put(url, json=[], headers=headers) as response:
        assert response.status == 200
    assert fake.commands[None] == []
    syncs = fake.sync_count

    await atelier.stop()
    await atelier.start()

    assert fake.sync_count == syncs + 1
    assert _names(fake.commands[None]) == COMMANDS


@pytest.mark.parametrize(
    ("flags", "mode", "asked"),
    [
        (1 << 19, "auto", True),  # GATEWAY_MESSAGE_CONTENT_LIMITED: the portal's switch, unverified application
        (1 << 18, "auto", True),  # GATEWAY_MESSAGE_CONTENT: a verified application granted the intent
        (1 << 13 | 1 << 15, "auto", False),  # other privileged intents only
        (0, "auto", False),
        (1 << 19, "false", False),
        (1 << 19, "true", True),
    ],
)
async def test_reply_editing_asks_for_message_content_exactly_when_the_portal_allows_it(
    atelier: Atelier, flags: int, mode: str, asked: bool
) -> None:
    """`[discord] reply_editing`: auto asks for the Message Content intent exactly when the application's flags
    allow it, false never asks, true asks; whatever the flags, the bot connects (never a 4014 close)."""
    atelier.fake.application_flags = flags
    await atelier.restart(discord__reply_editing=f'"{mode}"' if mode == "auto" else mode)

    last = atelier.fake.identifies[-1]["intents"]
    assert last == GUILDS_INTENT | GUILD_MESSAGES_INTENT | (MESSAGE_CONTENT_INTENT if asked else 0)
    assert atelier.bot.intents.message_content is asked and atelier.bot.reply_editing.on is asked
    assert atelier.fake.gateway_closes == []


async def test_auto_mode_refused_at_the_gateway_reconnects_without_the_intent(atelier: Atelier) -> None:
    """If the portal's switch goes off while the bot runs, the next IDENTIFY is closed with 4014: with the default
    `auto` the bot identifies again without Message Content and keeps answering, instead of dying."""
    fake = atelier.fake
    assert atelier.bot.reply_editing.on
    fake.application_flags = 0
    await fake.kill_gateway(4000, resumable=False)

    await fake.wait_until(lambda: len(fake.identifies) == 2, timeout=15.0, what="a second IDENTIFY")
    await fake.wait_ready()

    assert (4014, "Disallowed intent(s).") in fake.gateway_closes
    assert fake.identifies[-1]["intents"] == GUILDS_INTENT | GUILD_MESSAGES_INTENT
    assert not atelier.bot.intents.message_content and not atelier.bot.reply_editing.on
    message = await atelier.answer("balance", user_id=atelier.world.member_id)
    assert message.embeds[0]["title"] == "Your budget"


async def test_gateway_drop_is_resumed(atelier: Atelier) -> None:
    """When the gateway connection drops, the bot RESUMEs the same session and keeps answering commands."""
    fake = atelier.fake
    await fake.kill_gateway(4000)

    await fake.wait_until(lambda: fake.resumes, timeout=10.0, what="a RESUME")
    await fake.wait_ready()

    assert len(fake.identifies) == 1
    assert len(fake.resumes) == 1
    message = await atelier.answer("balance", user_id=atelier.world.member_id)
    assert message.embeds[0]["title"] == "Your budget"


async def test_shutdown_lets_running_commands_finish_and_turns_new_ones_away(atelier: Atelier) -> None:
    """On SIGTERM a running command still completes its answer; a command or a button click arriving meanwhile is
    told (privately) to retry, and starts nothing."""
    result = await result_of(await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="a calm sea"))
    await idle(atelier)
    release = asyncio.Event()

    async def slow(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await release.wait()
        await interaction.edit_original_response(content="finished")

    atelier.bot.tree.add_command(app_commands.Command(name="slow", description="test only", callback=slow))
    await atelier.bot.sync_commands()
    running = await atelier.slash("slow", user_id=atelier.world.member_id)
    tree = atelier.bot.atelier_tree
    assert tree.in_flight == 1

    stopping = asyncio.create_task(atelier.stop())
    await atelier.fake.wait_until(lambda: tree.closing, what="the shutdown to begin")
    refused = await atelier.answer("balance", user_id=atelier.world.member_id)
    click = await atelier.fake.click_button(
        result, f"atelier:reroll:{job_id_of(result)}", user_id=atelier.world.member_id
    )
    click_refused = await click.wait_message(lambda m: m.ephemeral)
    release.set()
    await asyncio.wait_for(stopping, timeout=10.0)

    assert refused.content == SHUTTING_DOWN_MESSAGE
    assert click_refused.content == SHUTTING_DOWN_MESSAGE and click.ack_type == 4
    assert len(inference_tasks(atelier)) == 1, "the reroll never started"
    assert (await running.wait_message()).content == "finished"


async def test_requests_are_checked_against_discords_openapi_spec(openapi_spec: object, atelier: Atelier) -> None:
    """Validation is really on in these tests when the spec is available, so an empty failure list means something."""
    assert atelier.fake.openapi_skip_reason is None
    await atelier.answer("budget show", user_id=atelier.world.admin_id)
    assert atelier.fake.requests
    assert atelier.fake.openapi_failures == []


def test_connection_failures_become_one_line_errors_and_bugs_keep_their_traceback() -> None:
    """What stops discord.py connecting becomes the bot's own error for `run_bot`'s one-line messages: close 4004 is
    the token, 4014 the Message Content intent, 4010 and 4011 the shards (`ATELIER_SHARDS`), other final close codes
    and server errors (a failed `GET /gateway/bot` too) mean Discord is unavailable; anything else is not translated,
    so it keeps its traceback."""

    def closed(code: int) -> discord.ConnectionClosed:
        return discord.ConnectionClosed(None, shard_id=None, code=code)  # type: ignore[arg-type]

    token = connection_failure(closed(4004))
    sharding = connection_failure(closed(4011))

    assert isinstance(token, InvalidTokenError)
    assert str(token) == "the gateway closed the connection with 4004 Authentication failed"
    assert isinstance(connection_failure(discord.PrivilegedIntentsRequired(None)), PrivilegedIntentError)
    assert isinstance(sharding, ShardingRefusedError) and sharding.code == 4011
    assert str(sharding) == "the gateway closed the connection with 4011 Sharding required"
    invalid = connection_failure(closed(4010))
    assert isinstance(invalid, ShardingRefusedError) and str(invalid).endswith("4010 Invalid shard")
    assert isinstance(connection_failure(closed(4012)), DiscordUnavailableError)
    assert str(connection_failure(closed(4999))) == "the gateway closed the connection with 4999"
    # Without ATELIER_SHARDS the sharded client asks GET /gateway/bot for the shard count first.
    assert isinstance(connection_failure(discord.GatewayNotFound()), DiscordUnavailableError)
    assert connection_failure(RuntimeError("a bug")) is None


async def test_the_start_up_reconcile_is_handed_to_the_job_service(atelier: Atelier) -> None:
    """The composition root reconciles before connecting and keeps the report; the job service resumes with it
    (`tests/jobs/test_resume.py`: it then does not read the whole ledger a second time)."""
    started = atelier.bot._jobs_started
    assert started is not None and atelier.bot.reconciled is not None
    report = await asyncio.wait_for(started, 10)
    assert report is not None and report.reconcile is atelier.bot.reconciled
