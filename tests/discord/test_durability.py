"""Durability with a real process: `python -m bot` is killed (SIGKILL) while its Runware task runs, then started
again; the result is posted once, charged once, and Runware saw the task submitted once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from fakes.discord import FakeDiscord
from fakes.runware import FakeRunware
from tests.discord.conftest import (
    REPO,
    assert_discord_rules_kept,
    bot_environment,
    embed_fields,
    invited_world,
    write_config,
)
from tests.discord.helpers import has_images, image_size

pytestmark = pytest.mark.slow

_OURS = ("DISCORD_", "ATELIER_", "RUNWARE_", "LOG_LEVEL")


async def _start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(_OURS)}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> str:
    """SIGTERM the process (if it still runs) and return its stderr."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30.0)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return stderr.decode()


def _ledger(database: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT kind, COUNT(*), SUM(amount) FROM ledger GROUP BY kind").fetchall()
    return {kind: (count, total) for kind, count, total in rows}


async def test_sigkill_while_the_task_runs_posts_once_and_charges_once(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    """Killed after Runware accepted the task: the next start polls the stored task UUID (no new submission),
    posts the result in the original response, and settles the hold once."""
    fake, world = fake_discord, invited_world(fake_discord)
    database = tmp_path / "atelier.sqlite3"
    config = write_config(tmp_path / "atelier.toml")
    async with FakeRunware(latency=3.0) as runware:
        env = bot_environment(fake, database, runware_url=runware.url, config=config)
        first = await _start(env, tmp_path)
        try:
            await fake.wait_ready(timeout=30.0)
            await fake.wait_synced(timeout=10.0)
            interaction = await fake.invoke_slash(
                "imagine",
                user_id=world.member_id,
                guild_id=world.guild_id,
                channel_id=world.channel_id,
                options={"prompt": "a fox that survives a crash"},
            )
            await fake.wait_until(
                lambda: runware.tasks_submitted("imageInference"), timeout=20.0, what="the Runware submission"
            )
        finally:
            if first.returncode is None:
                first.kill()  # SIGKILL: no shutdown code runs
            await first.wait()
        await fake.wait_disconnected()
        task_uuid = runware.tasks_submitted("imageInference")[0]["taskUUID"]
        state = runware.task(task_uuid)
        assert state is not None and not state.done, "the task was still running when the bot died"
        assert not any(has_images(message) for message in fake.channel_messages(world.channel_id))

        second = await _start(env, tmp_path)
        try:
            await fake.wait_ready(timeout=30.0)
            message = await interaction.wait_message(has_images, timeout=30.0)
            await fake.wait_until(lambda: "settle" in _ledger(database), timeout=10.0, what="the charge to be recorded")
        finally:
            stderr = await _stop(second)

        assert second.returncode == 0, stderr
        assert runware.submissions_of(task_uuid) == 1
        posted = [m for m in fake.channel_messages(world.channel_id) if has_images(m)]
        assert posted == [message] and message is interaction.original_message()
        assert image_size(message.attachments[0].data) == (1024, 1024)
        cost = runware.total_cost_micros
        assert embed_fields(message)["Cost"] == "$0.011" and cost == 11_000
        ledger = _ledger(database)
        assert ledger["hold"] == (1, 11_000)
        assert ledger["settle"] == (1, cost)
        assert "release" not in ledger
        with sqlite3.connect(database) as conn:
            states = conn.execute("SELECT state, task_uuid FROM jobs").fetchall()
        assert states == [("succeeded", task_uuid)]
    assert_discord_rules_kept(fake)
