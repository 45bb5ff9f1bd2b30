"""Work the bot asks discord.py not to do: a connection per request in a burst, and events nothing here reads.

**Connections.** discord.py's own session has no connection limit, so a burst of 200 interactions opened 200
connections to Discord at once, one per acknowledgement (against the real API each is a TLS handshake, a few ms of
CPU). `discord_connector` caps the connections per host at `CONNECTIONS_PER_HOST`: a request beyond the cap waits
for the first connection that is free, which a kept-alive connection is again after one round trip. Deliveries
(large uploads) are bounded by `[limits] delivery_concurrency`, and the cap is raised by that many, so uploads never
take the room acknowledgements share.

**Events.** With the Guild Messages intent (reply editing needs it), Discord sends the bot a MESSAGE_CREATE for each
of its own messages and a MESSAGE_UPDATE for each edit: two per job, each built into a `discord.Message` that nothing
reads. Nothing here listens for edits (`on_message_edit`, `on_raw_message_edit`), and the bot never acts on its own
messages (no prefix commands; reply editing reads members' replies). `skip_unused_events` drops MESSAGE_UPDATE and
the bot's own MESSAGE_CREATE before discord.py parses them, and `count_interactions` counts interactions for the
metrics in the parse rather than in a listener (a task per interaction). It replaces entries of discord.py's event table
(`ConnectionState.parsers`, which its gateway reads per event): pinned at 2.7.x, and `tests/discord` covers it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

CONNECTIONS_PER_HOST = 64
"""Connections open at once to one Discord host for everything but uploads (which get as many more as they may run
at once). The gateway is another host in production; a proxy serving both would give each shard's socket one."""

SKIPPED_EVENTS = ("MESSAGE_UPDATE",)
"""Gateway events dropped unparsed: nothing in the bot listens for them."""


def discord_connector(deliveries: int) -> aiohttp.TCPConnector:
    """Return the connector for discord.py's session (call it in a running loop).

    `deliveries` (`[limits] delivery_concurrency`, at most 64) is added to `CONNECTIONS_PER_HOST`: uploads, which may
    hold a connection for seconds, never take the room the short requests (acknowledgements first) share.
    """
    return aiohttp.TCPConnector(limit=0, limit_per_host=CONNECTIONS_PER_HOST + deliveries)


def skip_unused_events(parsers: dict[str, Callable[[Any], None]], own_id: Callable[[], int | None]) -> None:
    """Drop `SKIPPED_EVENTS`, and every MESSAGE_CREATE whose author is `own_id()`, before they are parsed."""
    for name in SKIPPED_EVENTS:
        parsers[name] = _ignore
    parse_create = parsers["MESSAGE_CREATE"]

    def message_create(data: Any) -> None:
        author = data.get("author") or {}
        me = own_id()
        if me is not None and author.get("id") == str(me):
            return
        parse_create(data)

    parsers["MESSAGE_CREATE"] = message_create


def count_interactions(parsers: dict[str, Callable[[Any], None]], count: Callable[[int], None]) -> None:
    """Call `count(type)` with each INTERACTION_CREATE's raw type as it arrives, then parse it as before.

    Counting here, in the parse, instead of in an `on_interaction` listener saves discord.py a task per interaction
    (it runs each listener as a task of its own), in the burst where every acknowledgement waits for the loop.
    """
    parse = parsers["INTERACTION_CREATE"]

    def interaction_create(data: Any) -> None:
        try:
            count(data.get("type", 0))
        except Exception:  # a metric must never cost an interaction its answer
            log.exception("could not count an interaction")
        parse(data)

    parsers["INTERACTION_CREATE"] = interaction_create


def _ignore(_data: Any) -> None:
    """Drop a gateway event nothing reads."""
