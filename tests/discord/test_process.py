"""The bot as its own process, configured only by environment variables, against the fake Discord in this process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.discord.conftest import REPO, assert_discord_rules_kept, bot_environment, embed_fields
from tests.fakes.discord import FakeDiscord

pytestmark = pytest.mark.slow

BOT_COMMAND = [sys.executable, "-c", "import sys; from bot.app import main_run; sys.exit(main_run())"]
"""How the test starts the bot; becomes `[sys.executable, "-m", "bot"]` once the CLI runs the bot by default."""

_OURS = ("DISCORD_", "ATELIER_", "RUNWARE_", "LOG_LEVEL")


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(_OURS)}
    return await asyncio.create_subprocess_exec(
        *BOT_COMMAND,
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20.0)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_bot_process_boots_syncs_answers_and_stops_cleanly_on_sigterm(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """`python -m bot` with the two URL variables logs in, syncs, answers /balance, and exits 0 on SIGTERM."""
    world = fake_discord.default_world()
    process = await _start(bot_environment(fake_discord, tmp_path / "atelier.sqlite3"), tmp_path)
    try:
        await fake_discord.wait_ready(timeout=30.0)
        await fake_discord.wait_synced(timeout=10.0)
        interaction = await fake_discord.invoke_slash(
            "balance", user_id=world.member_id, guild_id=world.guild_id, channel_id=world.channel_id
        )
        message = await interaction.wait_message()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        status, stderr = await _finish(process)

    assert interaction.ephemeral
    assert embed_fields(message)["Allowance"] == "$1.00 per month"
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "Stopped cleanly" in stderr
    assert (tmp_path / "atelier.sqlite3").exists()
    assert_discord_rules_kept(fake_discord)


async def test_invalid_token_is_one_line_and_exit_status_2(fake_discord: FakeDiscord, tmp_path: Path) -> None:
    """A token Discord refuses ends start-up with one clear line naming DISCORD_TOKEN, no traceback, status 2."""
    env = bot_environment(fake_discord, tmp_path / "atelier.sqlite3", DISCORD_TOKEN="not-the-token")
    status, stderr = await _finish(await _start(env, tmp_path))

    assert status == 2
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("atelier: DISCORD_TOKEN: Discord refused the token")
    assert "not-the-token" not in stderr
    assert fake_discord.sessions == []
    assert fake_discord.openapi_failures == []


async def test_missing_token_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    """Without DISCORD_TOKEN the bot does not start: one line naming the variable, status 2."""
    env = {"ATELIER_DATABASE": str(tmp_path / "atelier.sqlite3"), "ATELIER_CONFIG": str(REPO / "config/atelier.toml")}
    status, stderr = await _finish(await _start(env, tmp_path))

    assert status == 2
    assert stderr.splitlines() == [
        "atelier: DISCORD_TOKEN: is required to run the bot; set it in the environment or .env"
    ]
