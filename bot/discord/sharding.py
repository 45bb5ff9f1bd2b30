"""`ATELIER_SHARDS`: the bot on some of the gateway shards, with discord.py's sharded client.

Each process runs the shards its `ATELIER_SHARDS` range names (one gateway connection per shard); Discord sends each
server's events to the connection of shard `(guild_id >> 22) % COUNT`, and REST (answers, deliveries) works from
any process. The process running shard 0 syncs the commands (`AtelierBot.setup_hook`). `/healthz` counts the
gateway as up only while every shard of this process is connected.
"""

from __future__ import annotations

from typing import Any

from discord.ext import commands

from bot.discord.client import AtelierBot, ShardingRefusedError
from bot.settings import Settings
from bot.settings.shards import ShardRange

__all__ = ["ShardedAtelierBot", "bot_class", "refusal_advice"]


class ShardedAtelierBot(AtelierBot, commands.AutoShardedBot):
    """The bot on the shards `ATELIER_SHARDS` names: discord.py's sharded client, one gateway connection per shard.

    With the shard count given, discord.py connects to `DiscordWebSocket.DEFAULT_GATEWAY` without asking
    `GET /gateway/bot`, and waits 5 s between two IDENTIFYs of one process (Discord's `max_concurrency` of 1).
    """

    @staticmethod
    def _sharding(settings: Settings) -> dict[str, Any]:
        """Return the shard ids and the total count from `ATELIER_SHARDS`."""
        shards = settings.shards
        assert shards is not None, "ShardedAtelierBot needs ATELIER_SHARDS"
        return {"shard_ids": shards.ids, "shard_count": shards.count}

    async def on_shard_ready(self, shard_id: int) -> None:
        """Mark one shard's connection up for `/healthz`."""
        self._gateway_state(shard_id, up=True)

    async def on_shard_resumed(self, shard_id: int) -> None:
        """Mark one shard's connection up again after a RESUME."""
        self._gateway_state(shard_id, up=True)

    async def on_shard_disconnect(self, shard_id: int) -> None:
        """Mark one shard's connection down until it is ready or resumed again."""
        self._gateway_state(shard_id, up=False)


def bot_class(settings: Settings) -> type[AtelierBot]:
    """Return the client class: `ShardedAtelierBot` when `ATELIER_SHARDS` is set, else `AtelierBot`."""
    return AtelierBot if settings.shards is None else ShardedAtelierBot


def refusal_advice(error: ShardingRefusedError, shards: ShardRange | None) -> str:
    """Return the one line an operator reads when the gateway refused the shard: what Discord said, what to change."""
    if error.code == 4011:
        change = "a larger COUNT in ATELIER_SHARDS" if shards is not None else "ATELIER_SHARDS (for example 0-1/2)"
        return f"{error}: the bot is in too many servers for {shards or 'one connection'}; set {change}"
    running = f"shards {shards}" if shards is not None else "the unsharded connection"
    return f"{error} for {running}: every process needs the COUNT Discord expects, and FIRST-LAST within it"
