"""`python -m bot` as its own process, configured only by environment variables, against the fake Discord here.

One process boot serves most checks (commands, a gateway drop, an unexpected error, SIGTERM); a second boot on the
same database checks what survives a restart and SIGINT. The other tests are the ways start-up or the connection can
fail for good: each ends with one line on stderr, no traceback, and exit status 2 (the operator must fix something)
or 1 (Discord is unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from fakes.discord import FakeDiscord, FakeMessage, Intent, World
from fakes.runware import FakeRunware
from tests.discord.conftest import (
    REPO,
    assert_discord_rules_kept,
    bot_environment,
    embed_fields,
    invited_world,
    write_config,
)
from tests.discord.processes import BOT_COMMAND, BotProcess, clean_environment, start_bot

pytestmark = pytest.mark.slow

COMMANDS = {"balance", "budget", "settings", "queue", "imagine", "edit", "Edit image"}
REFUSED = "You need the Manage Server permission to do this."
ERROR_ID = re.compile(r"error id `([0-9a-f]{8})`")
INTENT_REFUSED = (
    "atelier: [discord] reply_editing = true needs the Message Content intent: switch on "
    '"Message Content Intent" in the developer portal (Bot tab, Privileged Gateway Intents), '
    'or set reply_editing = "auto" (reply editing then follows that switch)'
)

Launch = Callable[..., Awaitable[BotProcess]]


@pytest_asyncio.fixture
async def launch(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[Launch]:
    """Start `python -m bot` against the fake with `bot_environment` (extra variables as keywords); killed after."""
    started: list[BotProcess] = []
    default_config = write_config(tmp_path / "atelier.toml")

    async def start(*, config: Path = default_config, **extra: str) -> BotProcess:
        env = bot_environment(fake_discord, tmp_path / "atelier.sqlite3", config=config, **extra)
        started.append(await start_bot(fake_discord, env, cwd=tmp_path))
        return started[-1]

    try:
        yield start
    finally:
        for bot in started:
            bot.kill()
            with contextlib.suppress(TimeoutError):
                await bot.finish(timeout=10.0)


async def _answer(fake: FakeDiscord, world: World, name: str, user_id: int, **options: object) -> FakeMessage:
    """Run `/name` as `user_id` in the world's channel and return its private answer."""
    interaction = await fake.invoke_slash(
        name, user_id=user_id, guild_id=world.guild_id, channel_id=world.channel_id, options=options
    )
    message = await interaction.wait_message()
    assert interaction.ephemeral, f"/{name} answered publicly"
    return message


def _corrupt_a_job_row(database: Path, world: World) -> None:
    """Store a finished job of `world.other_member_id` naming a model this version does not know (as a downgrade
    after a newer version added one would leave it): reading it is a bug path, not a user error."""
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(database, timeout=10.0)) as conn, conn:
        conn.execute(
            "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format,"
            " count, prompt, estimate, created_at, updated_at, finished_at)"
            " VALUES ('corrupt', 'failed', ?, ?, ?, 'dall-e-9', '1024x1024', 'low', 'auto', 'png', 1, 'x', 0, ?, ?, ?)",
            (world.guild_id, world.channel_id, world.other_member_id, now, now, now),
        )


def _assert_stopped_cleanly(bot: BotProcess, status: int, database: Path) -> None:
    assert status == 0, bot.log
    assert "Shutting down" in bot.log
    assert "Closed the HTTP session and the database" in bot.log
    assert bot.lines[-1].endswith("Stopped cleanly"), bot.log
    # SQLite removes the write-ahead log when the last connection closes cleanly.
    assert database.exists() and not database.with_name(database.name + "-wal").exists()


async def test_bot_process_serves_members_and_admins_resumes_and_stops_cleanly_on_sigterm_and_sigint(
    fake_discord: FakeDiscord, launch: Launch, tmp_path: Path
) -> None:
    """`python -m bot` configured only by environment variables: boots and syncs; answers /balance; an admin's
    /budget is what a member then sees; a member's /budget is refused by the bot itself (the fake delivers it, as
    Discord does once a server opens the command to everyone); a dropped gateway is RESUMEd and it keeps answering;
    an unexpected error shows an error id whose traceback is in the log; SIGTERM stops it cleanly (exit 0, database
    closed). Started again on the same database it keeps the budget, does not re-sync, and SIGINT stops it cleanly."""
    fake = fake_discord
    world = invited_world(fake)
    database = tmp_path / "atelier.sqlite3"

    bot = await launch()
    await fake.wait_ready(timeout=30.0)
    synced = await fake.wait_synced(timeout=10.0)
    assert {command["name"] for command in synced[None]} == COMMANDS
    # The fake's application has Message Content switched on, so the default `reply_editing = "auto"` asks for it.
    assert [identify["intents"] for identify in fake.identifies] == [
        Intent.GUILDS | Intent.GUILD_MESSAGES | Intent.MESSAGE_CONTENT
    ]

    before = await _answer(fake, world, "balance", world.member_id)
    assert embed_fields(before)["Allowance"] == "$1.00 per month"

    default = await _answer(fake, world, "budget default", world.admin_id, amount="2.50")
    assert default.content == "The default allowance is now **$2.50** per member per period."
    after = await _answer(fake, world, "balance", world.member_id)
    assert embed_fields(after)["Allowance"] == "$2.50 per month"

    refused = await _answer(fake, world, "budget default", world.member_id, amount="50")
    assert refused.content == REFUSED
    unchanged = await _answer(fake, world, "balance", world.member_id)
    assert embed_fields(unchanged)["Allowance"] == "$2.50 per month"

    await fake.kill_gateway(4000)
    await bot.wait_line("Gateway session resumed")
    assert len(fake.identifies) == 1 and len(fake.resumes) == 1
    assert fake.gateway_connections[-1].startswith("/resume-gateway/")
    resumed = await _answer(fake, world, "balance", world.member_id)
    assert embed_fields(resumed)["Allowance"] == "$2.50 per month"

    _corrupt_a_job_row(database, world)
    broken = await _answer(fake, world, "balance", world.other_member_id)
    match = ERROR_ID.search(broken.content)
    assert match, broken.content
    logged = await bot.wait_line(f"Unexpected error {match.group(1)} in /balance")
    traceback_line = await bot.wait_line("Traceback (most recent call last):", after=logged)
    await bot.wait_line("ValueError: 'dall-e-9' is not a valid ModelName", after=traceback_line)

    _assert_stopped_cleanly(bot, await bot.stop(signal.SIGTERM), database)
    assert bot.log.count("Traceback") == 1, "only the unexpected error has a traceback"
    await fake.wait_disconnected()

    again = await launch()
    await fake.wait_ready(timeout=30.0)
    await again.wait_line("Commands unchanged (global")
    restarted = await _answer(fake, world, "balance", world.member_id)
    assert embed_fields(restarted)["Allowance"] == "$2.50 per month"
    assert fake.sync_count == 1
    assert len(fake.identifies) == 2

    _assert_stopped_cleanly(again, await again.stop(signal.SIGINT), database)
    assert "Traceback" not in again.log
    assert_discord_rules_kept(fake)


async def test_invalid_token_is_one_line_and_exit_status_2(fake_discord: FakeDiscord, launch: Launch) -> None:
    """A token Discord refuses ends start-up with one clear line naming DISCORD_TOKEN, no traceback, status 2."""
    bot = await launch(DISCORD_TOKEN="not-the-token")

    assert await bot.finish() == 2
    assert "Traceback" not in bot.log
    assert bot.lines[-1] == (
        "atelier: DISCORD_TOKEN: Discord refused the token (401 Unauthorized); "
        "copy it again from the developer portal's Bot tab"
    )
    assert "not-the-token" not in bot.log
    assert fake_discord.identify_attempts == []
    assert fake_discord.openapi_failures == []


async def test_token_reset_while_running_is_one_line_and_exit_status_2(
    fake_discord: FakeDiscord, launch: Launch
) -> None:
    """When the token is reset in the developer portal the gateway refuses it (close 4004 on RESUME): the bot stops
    with one line naming DISCORD_TOKEN, no traceback, status 2."""
    invited_world(fake_discord)
    bot = await launch()
    await fake_discord.wait_ready(timeout=30.0)

    await fake_discord.reset_token()

    assert await bot.finish() == 2
    assert fake_discord.gateway_closes == [(4000, "token reset"), (4004, "Authentication failed.")]
    assert "Traceback" not in bot.log
    assert bot.lines[-1] == (
        "atelier: DISCORD_TOKEN: Discord refused the token (the gateway closed the connection with 4004 "
        "Authentication failed); copy it again from the developer portal's Bot tab"
    )


async def test_message_content_intent_off_in_the_portal_is_one_line_and_exit_status_2(
    fake_discord: FakeDiscord, launch: Launch, tmp_path: Path
) -> None:
    """With `reply_editing = true` but Message Content Intent off for the application (its flags say so), the bot
    says how to fix it in one line, without a traceback, and exits 2, before it even connects to the gateway."""
    fake_discord.privileged_intents = Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES
    invited_world(fake_discord)
    config = write_config(tmp_path / "reply-editing.toml", {"discord.reply_editing": "true"})

    bot = await launch(config=config)

    assert await bot.finish() == 2
    assert fake_discord.identify_attempts == [] and fake_discord.gateway_closes == []
    assert "Traceback" not in bot.log
    assert bot.lines[-1] == INTENT_REFUSED
    assert [line for line in bot.lines if line.startswith("atelier:")] == [INTENT_REFUSED]


async def test_default_config_with_the_switch_off_starts_normally_without_the_intent(
    fake_discord: FakeDiscord, launch: Launch
) -> None:
    """The default config (`reply_editing = "auto"`) with the portal's switch off: the bot identifies without the
    Message Content intent and runs; never a 4014 close."""
    fake_discord.privileged_intents = 0
    invited_world(fake_discord)

    bot = await launch()
    await fake_discord.wait_ready()

    assert fake_discord.gateway_closes == []
    assert not fake_discord.identifies[0]["intents"] & Intent.MESSAGE_CONTENT
    assert bot.process.returncode is None


async def test_discord_unavailable_at_login_is_one_line_and_exit_status_1(
    fake_discord: FakeDiscord, launch: Launch
) -> None:
    """A server error from Discord on login is one line saying Discord is unavailable, no traceback, status 1."""
    fake_discord.plan_error("GET", r"^/users/@me$", 503)

    bot = await launch()

    assert await bot.finish() == 1
    assert "Traceback" not in bot.log
    assert bot.lines[-1] == "atelier: Discord is unavailable (HTTP 503 Service Unavailable); try again later"
    assert fake_discord.identify_attempts == []


async def test_a_login_refused_other_than_by_the_token_is_one_line_and_exit_status_2(
    fake_discord: FakeDiscord, launch: Launch
) -> None:
    """A 4xx on login that is not about the token (say a proxy at DISCORD_API_BASE answering 403) is one line naming
    the endpoint, no traceback, status 2: a setting to fix, not an outage to wait out."""
    fake_discord.plan_error("GET", r"^/users/@me$", 403)

    bot = await launch()

    assert await bot.finish() == 2
    assert "Traceback" not in bot.log
    assert bot.lines[-1].startswith("atelier: DISCORD_API_BASE: ")
    assert "refused the bot's login (HTTP 403 Forbidden: " in bot.lines[-1]
    assert bot.lines[-1].endswith("check DISCORD_API_BASE and DISCORD_TOKEN")
    assert fake_discord.identify_attempts == []


async def test_empty_token_is_one_line_and_exit_status_2(launch: Launch) -> None:
    """With DISCORD_TOKEN empty the bot does not start: one line naming the variable, status 2."""
    bot = await launch(DISCORD_TOKEN="")

    assert await bot.finish() == 2
    assert bot.lines == [
        "atelier: DISCORD_TOKEN: is empty, but it is required to run the bot; set it in the environment or .env"
    ]


async def _check(fake: FakeDiscord, runware_url: str, tmp_path: Path, config: Path) -> tuple[int, list[str]]:
    """Run `python -m bot check` against the fakes; return its exit status and its `intents:` lines."""
    env = bot_environment(fake, tmp_path / "check.sqlite3", runware_url=runware_url, config=config)
    process = await asyncio.create_subprocess_exec(
        *BOT_COMMAND,
        "check",
        cwd=tmp_path,
        env={**clean_environment(), "PYTHONPATH": str(REPO), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60.0)
    lines = stdout.decode().splitlines()
    assert fake.token not in stdout.decode()
    assert process.returncode is not None
    return process.returncode, [line for line in lines if line.startswith("intents:")]


@pytest.mark.parametrize(
    ("flags", "mode", "status", "line"),
    [
        (1 << 19, '"auto"', 0, "intents: ok: Reply editing is on (auto: the developer portal allows it)"),
        (
            0,
            '"auto"',
            0,
            "intents: ok: Reply editing is off: the Message Content intent is not switched on in the developer "
            'portal. Switch on "Message Content Intent" in the Discord developer portal',
        ),
        (1 << 19, "false", 0, "intents: ok: Reply editing is off: `reply_editing = false` under `[discord]`"),
        (0, "true", 1, "intents: FAILED: reply_editing = true needs the Message Content intent, which is off: switch"),
    ],
)
async def test_check_says_whether_reply_editing_is_on_and_what_to_switch_on(
    fake_discord: FakeDiscord,
    fake_runware: FakeRunware,
    tmp_path: Path,
    flags: int,
    mode: str,
    status: int,
    line: str,
) -> None:
    """`check` reads the application's flags with the token and says whether reply editing is on and, if not, what
    to switch on; `reply_editing = true` with the switch off fails the check (the bot would not start)."""
    fake_discord.application_flags = flags
    config = write_config(tmp_path / "check.toml", {"discord.reply_editing": mode})

    code, lines = await _check(fake_discord, fake_runware.url, tmp_path, config)

    assert code == status, lines
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert [request.path for request in fake_discord.requests if "applications" in request.path] == [
        "/applications/@me"
    ]


async def test_json_logs_are_one_object_per_line_and_never_show_a_secret(
    fake_discord: FakeDiscord, fake_runware: FakeRunware, launch: Launch
) -> None:
    """`LOG_FORMAT=json` at DEBUG: a run that uses the token, the Runware key and interaction tokens (an /imagine
    delivered through its interaction), with the Runbase key set too, writes only JSON lines, none holding any of
    them; job lines carry ids."""
    world = invited_world(fake_discord)
    runbase_key = "sk-runbase-secret-for-the-log-test"  # set too: every secret the settings know
    bot = await launch(
        LOG_FORMAT="json",
        LOG_LEVEL="DEBUG",
        RUNWARE_API_URL=fake_runware.url,
        RUNWARE_API_KEY=fake_runware.api_key,
        RUNBASE_API_KEY=runbase_key,
    )
    await bot.wait_line("Job service started")
    interaction = await fake_discord.invoke_slash(
        "imagine",
        user_id=world.member_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        options={"prompt": "a lantern"},
    )
    await interaction.wait_message(lambda message: bool(message.attachments), timeout=20.0)
    await bot.wait_line("delivered")
    assert await bot.stop(signal.SIGTERM) == 0

    records = [json.loads(line) for line in bot.lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    delivered = next(record for record in records if "delivered" in record["message"])
    assert delivered["job_id"] in delivered["message"] and delivered["guild_id"] == world.guild_id
    secrets = [
        fake_discord.token,
        fake_runware.api_key,
        runbase_key,
        *(i.token for i in fake_discord.interactions.values()),
    ]
    assert all(len(secret) >= 8 for secret in secrets)
    for secret in secrets:
        assert not [line for line in bot.lines if secret in line], f"a secret reached the log: {secret[:4]}…"
    assert_discord_rules_kept(fake_discord)


async def test_a_failed_start_with_json_logs_is_one_line_and_creates_no_database(
    launch: Launch, tmp_path: Path
) -> None:
    """A bad setting stops the start before logging begins: one line on stderr, exit 2, no database file."""
    bot = await launch(LOG_FORMAT="json", ATELIER_METRICS_PORT="99999")

    assert await bot.finish() == 2
    assert bot.lines == ["atelier: ATELIER_METRICS_PORT: must be a port number from 1 to 65535"]
    assert not (tmp_path / "atelier.sqlite3").exists()
