"""`ATELIER_SHARDS`: the bot on some of the gateway shards, with discord.py's sharded client.

Each process runs the shards its `ATELIER_SHARDS` range names (one gateway connection per shard); Discord sends each
server's events to the connection of shard `(guild_id >> 22) % COUNT`, and REST (answers, deliveries) works from
any process. The process running shard 0 syncs the commands (`AtelierBot.setup_hook`). `/healthz` counts the
gateway as up only while every shard of this process is connected.
"""

from __future__ import annotations

from typing import Any

from discord.ext import commands

from bot.discord.client import AtelierBot
from bot.settings import Settings

__all__ = ["ShardedAtelierBot", "bot_class"]


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
