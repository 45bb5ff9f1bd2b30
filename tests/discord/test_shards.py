"""Gateway shards across processes (`ATELIER_SHARDS`): three `python -m bot` processes on shards 0/3, 1/3 and 2/3
share one PostgreSQL database; the fake Discord routes each guild's events to the connection of its shard and
refuses an IDENTIFY with a wrong shard."""

from __future__ import annotations

import asyncio
import json
import socket

import aiohttp
import pytest

from bot.discord.invite import required_permissions
from fakes.discord import FakeDiscord, FakeInteraction, World
from tests.discord.conftest import assert_discord_rules_kept
from tests.discord.processes import Fleet, fleet

__all__ = ["fleet"]

pytestmark = pytest.mark.slow

SKIPS_SYNC = "the process running shard 0 syncs the commands"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class GatewayRelay:
    """A TCP relay on 127.0.0.1 in front of the fake's gateway that counts the connections made through it."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("ws://").rstrip("/").rsplit(":", 1)
        self._target = (host, int(port))
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The relay's `ws://` URL (what DISCORD_GATEWAY_URL is set to)."""
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def start(self) -> None:
        """Listen on a free port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)

    async def close(self) -> None:
        """Stop listening and cut the relayed connections."""
        for pipe in self._pipes:
            pipe.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                sink.close()

        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


def sharded_worlds(fake: FakeDiscord, count: int) -> list[World]:
    """One default world (guild, channel, members) per shard of `count`, the bot invited with its permissions."""
    fake.shard_count = count
    fake.require_shards = True
    fake.bot_permissions = required_permissions().value
    return [fake.default_world(shard=shard) for shard in range(count)]


async def imagine(fake: FakeDiscord, world: World, prompt: str) -> FakeInteraction:
    """Run /imagine as the world's member in its channel; return the interaction once its result is posted."""
    interaction = await fake.invoke_slash(
        "imagine",
        user_id=world.member_id,
        guild_id=world.guild_id,
        channel_id=world.channel_id,
        options={"prompt": prompt},
    )
    await interaction.wait_message(lambda message: bool(message.attachments), timeout=30.0)
    return interaction


async def test_three_processes_on_three_shards_answer_and_deliver_imagine_from_every_shard(
    fleet: Fleet, fake_discord: FakeDiscord
) -> None:
    """Shards 0-0/3, 1-1/3 and 2-2/3 in three processes: each IDENTIFYs as its shard and gets only its guild; the
    commands are synced once (by the process on shard 0); /imagine from a guild on every shard is acknowledged in
    time by the process of that shard, and delivered once (by whichever process claimed the job from the shared
    queue); a fourth process asking for shard 0 of 2 is refused with 4010
    and stops with one line naming ATELIER_SHARDS (exit 2); after a SIGKILL of shard 2's process, a replacement on
    shard 2 answers again."""
    fake = fake_discord
    worlds = sharded_worlds(fake, 3)
    bots = [await fleet.start(f"{shard}-{shard}/3") for shard in range(3)]
    for shard, bot in enumerate(bots):
        await fake.wait_ready(timeout=60.0, shard=shard)
        await bot.wait_line("Job service started", timeout=60.0)

    assert sorted(identify["shard"] for identify in fake.identifies) == [[0, 3], [1, 3], [2, 3]]
    for session in fake.sessions:
        ready = json.loads(session.buffer[0][1])
        assert session.shard is not None and ready["t"] == "READY"
        assert [int(guild["id"]) for guild in ready["d"]["guilds"]] == [worlds[session.shard[0]].guild_id]
    assert fake.sync_count == 1, fake.summary()
    assert [bot.count(SKIPS_SYNC) for bot in bots] == [0, 1, 1]
    assert bots[0].count("Synced ") == 1

    interactions = await asyncio.gather(
        *(imagine(fake, world, f"a lantern on shard {shard}") for shard, world in enumerate(worlds))
    )
    # Each process admitted exactly the request of its own shard's guild; the shared queue lets any process run and
    # deliver it, and each job is delivered once.
    assert [bot.count(" admitted for member ") for bot in bots] == [1, 1, 1]
    await fake.wait_until(
        lambda: sum(bot.count(" delivered ") for bot in bots) == 3, timeout=30.0, what="three deliveries"
    )
    assert all(interaction.acknowledged for interaction in interactions)
    assert [len([m for m in i.messages() if m.attachments]) for i in interactions] == [1, 1, 1]

    refused = await fleet.start("0-0/2")
    assert await refused.finish(timeout=60.0) == 2
    failures = [line for line in refused.lines if line.startswith("atelier:")]
    assert failures == [
        "atelier: ATELIER_SHARDS: the gateway closed the connection with 4010 Invalid shard for shards 0-0/2: every "
        "process needs the COUNT Discord expects, and FIRST-LAST within it"
    ], refused.log
    assert "Traceback" not in refused.log
    assert (4010, "Invalid shard.") in fake.gateway_closes
    assert fake.sync_count == 1, "a restart of a process on shard 0 syncs only when the commands changed"

    assert await fleet.kill(bots[2]) == -9
    replacement = await fleet.start("2-2/3")
    await replacement.wait_line("Job service started", timeout=60.0)
    await imagine(fake, worlds[2], "a lantern after the restart")
    assert replacement.count(" admitted for member ") == 1
    live = [bots[0], bots[1], replacement]
    await fake.wait_until(
        lambda: sum(bot.count(" delivered ") for bot in live) == 3 + 1 - bots[2].count(" delivered "),
        timeout=30.0,
        what="the request after the restart delivered once",
    )
    assert_discord_rules_kept(fake)


async def test_without_atelier_shards_one_process_runs_every_shard_discord_recommends(
    fleet: Fleet, fake_discord: FakeDiscord
) -> None:
    """Contract §5.4, `ATELIER_SHARDS` unset: past the limit of one connection (the fake recommends 2 shards and
    closes an unsharded IDENTIFY with 4011) one process asks `GET /gateway/bot`, IDENTIFYs as shard 0 and shard 1 of 2,
    syncs the commands once, answers and delivers /imagine from a guild on each shard, and `/healthz` is up only once
    both shards are connected. Both connect at `DISCORD_GATEWAY_URL` (here a relay in front of the fake)."""
    fake = fake_discord
    worlds = sharded_worlds(fake, 2)
    port = free_port()
    relay = GatewayRelay(fake.gateway_url)
    await relay.start()
    try:
        await _run_unsharded(fleet, fake, worlds, port, relay)
    finally:
        await relay.close()


async def _run_unsharded(fleet: Fleet, fake: FakeDiscord, worlds: list[World], port: int, relay: GatewayRelay) -> None:
    bot = await fleet.start(None, ATELIER_METRICS_PORT=str(port), DISCORD_GATEWAY_URL=relay.url)
    await fake.wait_ready(timeout=60.0, shard=0)
    await fake.wait_ready(timeout=60.0, shard=1)
    await bot.wait_line("Job service started", timeout=60.0)

    assert [identify["shard"] for identify in fake.identifies] == [[0, 2], [1, 2]]
    assert relay.connections == 2, "both shards connect at DISCORD_GATEWAY_URL, not where GET /gateway/bot says"
    assert fake.gateway_closes == []
    assert fake.sync_count == 1 and bot.count(SKIPS_SYNC) == 0
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.status == 200, await response.text()

    interactions = await asyncio.gather(
        *(imagine(fake, world, f"a lantern on shard {shard}") for shard, world in enumerate(worlds))
    )
    assert all(interaction.acknowledged for interaction in interactions)
    assert [len([m for m in i.messages() if m.attachments]) for i in interactions] == [1, 1]
    assert bot.count(" admitted for member ") == 2
    assert "Traceback" not in bot.log
    assert_discord_rules_kept(fake)
