"""`python -m bot` on Runbase alone, SIGKILLed between a run's create and storing its run id, then started again.

The run exists on Runbase (and was paid at creation), but its id was never stored: the next start must not create it
again, must end the job with a clear message to the member and an operator log line, and must charge at least what
Runbase took.
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from pathlib import Path

import pytest

from fakes.discord import FakeDiscord
from fakes.runbase import FakeRunbase, Fault
from tests.discord.conftest import assert_discord_rules_kept, invited_world
from tests.discord.test_process import Launch, launch

__all__ = ["launch"]

pytestmark = pytest.mark.slow


def charged(database: Path) -> tuple[int, int]:
    """(settle entries, their sum) in the bot's ledger, read from the file."""
    with contextlib.closing(sqlite3.connect(database, timeout=10.0)) as conn:
        query = "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'"
        count, total = conn.execute(query).fetchone()
    return int(count), int(total)


async def test_sigkill_between_create_and_storing_the_run_id_never_creates_again(
    fake_discord: FakeDiscord, fake_runbase: FakeRunbase, launch: Launch, tmp_path: Path
) -> None:
    fake = fake_discord
    world = invited_world(fake)
    env = {"RUNWARE_API_KEY": "", "RUNBASE_API_KEY": fake_runbase.api_key, "RUNBASE_API_URL": fake_runbase.url}
    first = await launch(**env)
    await fake.wait_ready(timeout=30.0)
    await fake.wait_synced(timeout=10.0)

    # Runbase makes (and charges) the run, then holds its answer: the bot has stored `creating`, not the run id.
    fake_runbase.fail_next(Fault.SLOW_AFTER_CREATE, endpoint="create", delay=120)
    interaction = await fake.invoke_slash(
        "imagine",
        user_id=world.member_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        options={"prompt": "a fox stopped mid-create", "model": "gpt-image-1"},
    )
    await fake.wait_until(lambda: len(fake_runbase.creates) == 1, timeout=30.0, what="the create to reach Runbase")
    assert fake_runbase.total_charged_micros == 50_000
    first.kill()
    await first.process.wait()

    second = await launch(**env)
    failure = await interaction.wait_message(lambda m: m.content.startswith("❌"), timeout=60.0)
    assert "not sent again" in failure.content and "Charged: $0.05" in failure.content
    await second.wait_line("OPERATOR: job", timeout=30.0)
    assert len(fake_runbase.creates) == 1
    count, total = charged(tmp_path / "atelier.sqlite3")
    assert (count, total) == (1, fake_runbase.total_charged_micros)  # the lost run's share, charged once
    assert await second.stop(signal.SIGTERM) == 0
    assert_discord_rules_kept(fake)
