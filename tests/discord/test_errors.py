"""Error handling end to end: unexpected exceptions get an error id (shown and logged), in every response state."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.billing.errors import BudgetExceededError
from bot.discord.tree import describe_error
from bot.errors import InvalidRequestError
from tests.discord.conftest import Atelier

ERROR_ID = re.compile(r"error id `([0-9a-f]{8})`")


class Boom(RuntimeError):
    """The unexpected failure the test commands raise."""


async def _raise_before_answering(interaction: discord.Interaction[Any]) -> None:
    raise Boom("exploded before answering")


async def _raise_after_defer(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    raise Boom("exploded after deferring")


async def _raise_after_answer(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.send_message("Working on it…", ephemeral=True)
    raise Boom("exploded after answering")


async def _refuse(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    raise InvalidRequestError("That prompt is too short.")


TEST_COMMANDS = {
    "explode-early": _raise_before_answering,
    "explode-deferred": _raise_after_defer,
    "explode-answered": _raise_after_answer,
    "refuse": _refuse,
}


@pytest.fixture
async def with_test_commands(atelier: Atelier) -> Atelier:
    """The running bot with test-only commands added to its tree and synced (production has none of them)."""
    for name, callback in TEST_COMMANDS.items():
        atelier.bot.tree.add_command(app_commands.Command(name=name, description="test only", callback=callback))
    synced = atelier.fake.sync_count
    assert await atelier.bot.sync_commands()
    await atelier.fake.wait_synced(synced + 1)
    return atelier


@pytest.mark.parametrize(
    ("command", "ack_type", "message_kind"),
    [
        ("explode-early", 4, "initial response"),
        ("explode-deferred", 5, "edited thinking message"),
        ("explode-answered", 4, "follow-up"),
    ],
)
async def test_unexpected_exception_shows_an_error_id_and_logs_the_traceback(
    with_test_commands: Atelier, caplog: pytest.LogCaptureFixture, command: str, ack_type: int, message_kind: str
) -> None:
    """Whatever the interaction's state, the user gets a private message with an id that names a logged traceback."""
    atelier = with_test_commands
    caplog.set_level(logging.ERROR, logger="bot.discord.tree")

    interaction = await atelier.slash(command, user_id=atelier.world.member_id)
    message = await interaction.wait_message(lambda m: "error id" in m.content)

    assert interaction.ack_type == ack_type, message_kind
    assert message.ephemeral
    match = ERROR_ID.search(message.content)
    assert match, message.content
    records = [record for record in caplog.records if match.group(1) in record.getMessage()]
    assert len(records) == 1
    assert records[0].exc_info is not None and isinstance(records[0].exc_info[1], Boom)
    assert f"/{command}" in records[0].getMessage()
    if command == "explode-answered":
        first, *later = interaction.messages()
        assert first.content == "Working on it…" and message in later


async def test_domain_error_is_a_short_private_sentence_without_a_traceback(
    with_test_commands: Atelier, caplog: pytest.LogCaptureFixture
) -> None:
    """An `AtelierError` is shown as its own sentence, with no error id and nothing logged as an error."""
    atelier = with_test_commands
    caplog.set_level(logging.INFO, logger="bot.discord.tree")

    message = await atelier.answer("refuse", user_id=atelier.world.member_id)

    assert message.content == "That prompt is too short."
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_late_acknowledgement_is_logged_not_raised(
    with_test_commands: Atelier, caplog: pytest.LogCaptureFixture
) -> None:
    """A command that misses Discord's 3 s is rejected by the fake (10062); the bot logs it and keeps running."""
    atelier = with_test_commands
    caplog.set_level(logging.WARNING, logger="bot.discord.tree")
    atelier.fake.ack_deadline = 0.05

    async def slow(interaction: discord.Interaction[Any]) -> None:
        await asyncio.sleep(0.2)
        await interaction.response.defer(ephemeral=True)

    atelier.bot.tree.add_command(app_commands.Command(name="slow", description="test only", callback=slow))
    await atelier.bot.sync_commands()
    await atelier.fake.wait_synced(3)

    interaction = await atelier.slash("slow", user_id=atelier.world.member_id)
    record = await interaction.wait_response()

    assert (record.status, record.code) == (404, 10062)
    await atelier.fake.wait_until(lambda: any("lost its interaction" in r.getMessage() for r in caplog.records))
    # This test breaks the rule on purpose; clear it so the fixture checks that nothing else went wrong.
    assert len(atelier.fake.late_acks) == 1
    atelier.fake.late_acks.clear()
    atelier.fake.errors.clear()
    del atelier.fake.interactions[interaction.id]
    atelier.fake.ack_deadline = 3.0
    balance = await atelier.answer("balance", user_id=atelier.world.member_id)
    assert balance.embeds


async def test_error_after_the_token_expired_is_logged_with_its_id(
    with_test_commands: Atelier, caplog: pytest.LogCaptureFixture
) -> None:
    """When the 15-minute token has run out nothing can be shown; the error id and the reason are still logged."""
    atelier = with_test_commands
    caplog.set_level(logging.WARNING, logger="bot.discord.tree")
    resume = asyncio.Event()

    async def stalled(interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await resume.wait()
        raise Boom("exploded after the token expired")

    atelier.bot.tree.add_command(app_commands.Command(name="stalled", description="test only", callback=stalled))
    await atelier.bot.sync_commands()
    interaction = await atelier.slash("stalled", user_id=atelier.world.member_id)
    atelier.fake.advance_time(16 * 60)
    resume.set()

    await atelier.fake.wait_until(lambda: any("can no longer be answered" in r.getMessage() for r in caplog.records))
    logged = [r for r in caplog.records if r.exc_info is not None and isinstance(r.exc_info[1], Boom)]
    assert len(logged) == 1 and "Unexpected error" in logged[0].getMessage()
    assert [(e.status, e.code) for e in atelier.fake.errors] == [(401, 50027)]
    assert not [m for m in interaction.messages() if "error id" in m.content]
    atelier.fake.errors.clear()


FEB_1 = datetime(2025, 2, 1, tzinfo=UTC)


def test_a_budget_refusal_is_written_by_the_wing_with_the_reset_as_a_discord_timestamp() -> None:
    """The domain error carries the numbers; the member reads what it needs, what is left and when the budget
    resets, as a timestamp each reader sees relative to now (moved here from tests/billing/test_ledger.py)."""
    member = BudgetExceededError("member", 50_000, 30_000, FEB_1)
    server = BudgetExceededError("server", 700_000, 600_000, FEB_1)
    blocked = BudgetExceededError("blocked", 0, 0, FEB_1)

    assert describe_error(member) == (
        f"This needs about $0.05 but you have $0.03 left; your budget resets <t:{int(FEB_1.timestamp())}:R>."
    )
    assert describe_error(server) == (
        "This needs about $0.70 but the server has only $0.60 left in its budget; "
        f"the server budget resets <t:{int(FEB_1.timestamp())}:R>."
    )
    assert describe_error(blocked) == (
        "You are blocked from generating images on this server; ask an admin if you think this is a mistake."
    )
