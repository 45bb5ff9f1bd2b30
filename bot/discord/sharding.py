"""The bot on its gateway shards, with discord.py's sharded client (`ATELIER_SHARDS`, contract §5.4).

Unset, the process runs all the shards: discord.py asks `GET /gateway/bot` for Discord's recommended count and
opens one connection per shard (one shard for a small bot), so Discord's "sharding required" (close 4011, past
2,500 servers) cannot happen. Set, each process runs the shards its range names and connects to
`DISCORD_GATEWAY_URL` without asking. Discord sends each server's events to the connection of shard
`(guild_id >> 22) % COUNT`, and REST (answers, deliveries) works from any process. The process running shard 0 syncs
the commands (`AtelierBot.setup_hook`). `/healthz` counts the gateway as up only while every shard of this process is
connected.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from discord import PrivilegedIntentsRequired
from discord.ext import commands
from discord.shard import EventItem, EventType

from bot.discord.client import AtelierBot, ShardingRefusedError
from bot.discord.intents import ReplyEditingState
from bot.settings import Settings
from bot.settings.shards import ShardRange

__all__ = ["ShardedAtelierBot", "refusal_advice"]

log = logging.getLogger(__name__)


class ShardedAtelierBot(AtelierBot, commands.AutoShardedBot):
    """The bot on its shards: discord.py's sharded client, one gateway connection per shard.

    discord.py waits 5 s between two IDENTIFYs of one process (Discord's `max_concurrency` of 1).
    """

    @staticmethod
    def _sharding(settings: Settings) -> dict[str, Any]:
        """Return the shard ids and the total count from `ATELIER_SHARDS`; unset, none (Discord's recommended count)."""
        shards = settings.shards
        if shards is None:
            return {}
        return {"shard_ids": shards.ids, "shard_count": shards.count}

    def _own_shard_ids(self) -> frozenset[int | None]:
        """Return the shards this process runs: its range, or all of Discord's recommended count once known."""
        if self.shard_ids is not None:
            return frozenset(self.shard_ids)
        return frozenset(range(self.shard_count or 0))

    async def setup_hook(self) -> None:
        """Set the bot up (`AtelierBot.setup_hook`), then let a shard refused the Message Content intent retry.

        Without `ATELIER_SHARDS` but with `DISCORD_GATEWAY_URL`, the recommended count is asked here, so that
        discord.py connects to that URL (asked later by discord.py itself, it would connect where Discord says).
        """
        await super().setup_hook()
        if self.shard_count is None and self.settings.discord_gateway_url is not None:
            self.shard_count, _, _ = await self.http.get_bot_gateway()
        # discord.py's sharded client closes itself on a 4014 of any shard; in auto mode that shard should identify
        # again without the intent instead. Each `Shard` takes this queue's `put_nowait` when it is launched, which
        # is after `setup_hook` (discord.py pinned at 2.7.x, whose queue attribute this is).
        self._AutoShardedClient__queue = _IntentFallbackQueue(self)

    def _refused_message_content(self) -> bool:
        """Turn reply editing off after a 4014 in auto mode; return whether the shard should identify again."""
        if self.settings.app.discord.reply_editing != "auto":
            return False
        if self._gateway_intents.message_content:
            self._gateway_intents.message_content = False
            self.reply_editing = ReplyEditingState(mode="auto", allowed=True, refused_at_gateway=True)
            log.warning(
                "Discord refused the Message Content intent (gateway close 4014) although the application's "
                "flags allowed it; reply editing is off until the next start. %s",
                self.reply_editing.advice(),
            )
        return self.reply_editing.refused_at_gateway

    async def on_shard_ready(self, shard_id: int) -> None:
        """Mark one shard's connection up for `/healthz`."""
        self._gateway_state(shard_id, up=True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        """Mark one shard's connection up again after a RESUME."""
        self._gateway_state(shard_id, up=True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """Mark one shard's connection down until it is ready or resumed again."""
        self._gateway_state(shard_id, up=False)


class _IntentFallbackQueue(asyncio.PriorityQueue[EventItem]):
    """discord.py's shard event queue, where a shard's 4014 in auto mode becomes a fresh IDENTIFY of that shard."""

    def __init__(self, bot: ShardedAtelierBot) -> None:
        super().__init__()
        self._bot = bot

    def put_nowait(self, item: EventItem) -> None:
        """Queue the event; a Message Content refusal the bot can do without becomes a reconnect of its shard."""
        if (
            item.type == EventType.terminate
            and isinstance(item.error, PrivilegedIntentsRequired)
            and self._bot._refused_message_content()
        ):
            item = EventItem(EventType.reconnect, item.shard, item.error)
        super().put_nowait(item)


def refusal_advice(error: ShardingRefusedError, shards: ShardRange | None) -> str:
    """Return the one line an operator reads when the gateway refused the shard: what Discord said, what to change."""
    if error.code == 4011:
        change = "a larger COUNT in ATELIER_SHARDS" if shards is not None else "ATELIER_SHARDS (for example 0-1/2)"
        return f"{error}: the bot is in too many servers for {shards or 'one connection'}; set {change}"
    running = f"shards {shards}" if shards is not None else "Discord's recommended shard count"
    return f"{error} for {running}: every process needs the COUNT Discord expects, and FIRST-LAST within it"
