"""What the bot asks discord.py not to do (`bot.discord.lean`): one connection per request, unused events."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.discord.lean import CONNECTIONS_PER_HOST, count_interactions, skip_unused_events
from tests.discord.conftest import Atelier


async def test_a_burst_of_commands_shares_a_capped_set_of_connections(atelier: Atelier) -> None:
    """100 commands at once over a 0.2 s round trip: every one acknowledged, over at most the cap of connections.

    Without the cap, each of the 100 concurrent acknowledgements opened its own connection (against the real
    Discord, a TLS handshake each).
    """
    fake = atelier.fake
    fake.api_latency = 0.2
    before = set(fake.api_peers)
    members = atelier.world.member_ids
    answered = await asyncio.gather(*(atelier.slash("balance", user_id=members[index % 2]) for index in range(100)))
    assert all(interaction.acknowledged for interaction in answered)
    assert all(interaction.ack_latency is None or interaction.ack_latency < 3.0 for interaction in answered)
    opened = fake.api_peers - before
    cap = CONNECTIONS_PER_HOST + atelier.bot.settings.app.limits.delivery_concurrency  # uploads get their own room
    assert CONNECTIONS_PER_HOST // 2 <= len(opened) <= cap


def test_the_running_bot_skips_and_counts_in_discord_pys_own_event_table(atelier: Atelier) -> None:
    """The wiring, on the table discord.py's gateway reads (pinned 2.7.x: the gateway keeps this very dict)."""
    parsers = atelier.bot._connection.parsers
    assert parsers["MESSAGE_UPDATE"].__qualname__ == "_ignore"
    assert parsers["MESSAGE_CREATE"].__qualname__ == "skip_unused_events.<locals>.message_create"
    assert parsers["INTERACTION_CREATE"].__qualname__ == "count_interactions.<locals>.interaction_create"


def test_unused_events_and_the_bots_own_messages_are_not_parsed() -> None:
    parsed: list[tuple[str, Any]] = []
    parsers: dict[str, Any] = {
        name: (lambda data, name=name: parsed.append((name, data)))
        for name in ("MESSAGE_CREATE", "MESSAGE_UPDATE", "INTERACTION_CREATE")
    }
    me: list[int | None] = [None]
    skip_unused_events(parsers, lambda: me[0])
    own = {"id": "1", "author": {"id": "42"}}
    member = {"id": "2", "author": {"id": "7"}}
    parsers["MESSAGE_CREATE"](own)  # before login the bot's id is unknown: parsed as before
    me[0] = 42
    parsers["MESSAGE_CREATE"](own)
    parsers["MESSAGE_CREATE"](member)
    parsers["MESSAGE_CREATE"]({"id": "3"})  # no author (never sent by Discord): parsed, not guessed at
    parsers["MESSAGE_UPDATE"](member)
    parsers["INTERACTION_CREATE"]({"id": "4"})
    assert parsed == [
        ("MESSAGE_CREATE", own),
        ("MESSAGE_CREATE", member),
        ("MESSAGE_CREATE", {"id": "3"}),
        ("INTERACTION_CREATE", {"id": "4"}),
    ]


def test_interactions_are_counted_as_they_are_parsed() -> None:
    parsed: list[Any] = []
    counted: list[int] = []
    parsers: dict[str, Any] = {"INTERACTION_CREATE": parsed.append}
    count_interactions(parsers, counted.append)
    parsers["INTERACTION_CREATE"]({"id": "1", "type": 2})
    parsers["INTERACTION_CREATE"]({"id": "2", "type": 3})
    assert counted == [2, 3]
    assert parsed == [{"id": "1", "type": 2}, {"id": "2", "type": 3}]
