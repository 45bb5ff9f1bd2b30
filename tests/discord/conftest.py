"""End-to-end harness: the real bot (composition root, discord.py, SQLite) against the fake Discord and the fake
Runware on 127.0.0.1.

`atelier` starts the fake with a default world and gives the test an `Atelier` handle that boots the bot in this
event loop exactly as `bot.app.run_bot` does (same `open_bot`, same `AtelierBot.serve`), only with a short
`guild_ready_timeout` and a config file with fast Runware polling (`write_config`). On teardown it stops the bot
and checks the rules every test must keep: every interaction acknowledged in time, no request rejected by the fake,
none failing the OpenAPI check.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest_asyncio

from bot.app import open_bot
from bot.discord.client import AtelierBot, discord_endpoints
from bot.discord.invite import required_permissions
from bot.settings import Settings, load_settings
from fakes.config_file import copy_config, project_config
from fakes.discord import FakeDiscord, FakeInteraction, FakeMessage, World
from fakes.runware import DEFAULT_API_KEY, FakeRunware

REPO = Path(__file__).resolve().parents[2]

FAST_POLLING = {
    "runware.poll_initial_delay_seconds": "0.05",
    "runware.poll_max_interval_seconds": "0.2",
    "limits.status_after_seconds": "0",
}
"""Config changes that keep end-to-end tests fast: Runware is polled every 50-200 ms instead of every 2-5 s, and a
job's status is shown at admission (the tests that need it set `status_after_seconds` back to a delay)."""


def write_config(path: Path, changes: dict[str, str] | None = None) -> Path:
    """Write the project's config file to `path` with `{"section.key": "toml value"}` changes; return `path`.

    Every changed key must already be in the file (the project's file lists every setting).
    """
    return copy_config(path, {**FAST_POLLING, **(changes or {})})


def invited_world(fake: FakeDiscord) -> World:
    """The fake's default world, with the bot's role holding exactly what `python -m bot invite` asks for.

    Everything else the bot may do comes from `@everyone` (Discord's defaults), as in a server it was invited to.
    """
    fake.bot_permissions = required_permissions().value
    return fake.default_world()


def bot_environment(
    fake: FakeDiscord,
    database: Path,
    *,
    runware_url: str = "http://127.0.0.1:9/v1",
    config: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """Return the environment `python -m bot` needs to run against `fake` (and a Runware at `runware_url`)."""
    return {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": fake.api_base,
        "DISCORD_GATEWAY_URL": fake.gateway_url,
        "RUNWARE_API_URL": runware_url,
        "RUNWARE_API_KEY": DEFAULT_API_KEY,
        "ATELIER_DATABASE": str(database),
        "ATELIER_CONFIG": str(config or project_config()),
        **extra,
    }


def assert_discord_rules_kept(fake: FakeDiscord) -> None:
    """Fail if the bot broke a Discord rule, sent a request the spec rejects or the fake cannot serve, or left an
    interaction unanswered."""
    assert fake.late_acks == [], f"interactions acknowledged after {fake.ack_deadline} s: {fake.late_acks}"
    assert fake.errors == [], f"requests the fake rejected: {fake.errors}"
    assert fake.openapi_failures == [], f"requests failing Discord's OpenAPI spec: {fake.openapi_failures}"
    assert fake.internal_errors == [], f"the fake itself failed: {fake.internal_errors}"
    unhandled = [f"{request.method} {request.path}" for request in fake.unhandled]
    assert unhandled == [], f"requests to routes the fake does not serve (404, possibly swallowed): {unhandled}"
    for interaction in fake.interactions.values():
        assert interaction.acknowledged, f"{interaction!r} was never acknowledged"
        assert interaction.ack_latency is not None and interaction.ack_latency < fake.ack_deadline


class Atelier:
    """One fake Discord with a default world, a fake Runware, and the bot running against them in this event loop."""

    def __init__(self, fake: FakeDiscord, world: World, database: Path, runware: FakeRunware, config: Path) -> None:
        self.fake = fake
        self.world = world
        self.database = database
        self.runware = runware
        self.config = config
        self._stack: AsyncExitStack | None = None
        self._stop = asyncio.Event()
        self._serving: asyncio.Task[None] | None = None
        self._bot: AtelierBot | None = None

    @property
    def bot(self) -> AtelierBot:
        """The running bot."""
        assert self._bot is not None, "start() the bot first"
        return self._bot

    def settings(self, **extra: str) -> Settings:
        """Build settings the way the CLI does, from an environment pointing at the fakes."""
        environment = bot_environment(
            self.fake, self.database, runware_url=self.runware.url, config=self.config, **extra
        )
        return load_settings(environment, env_file=None)

    def configure(self, **changes: str) -> None:
        """Rewrite the config file with `section__key="toml value"` changes; they apply from the next `start()`."""
        write_config(self.config, {key.replace("__", "."): value for key, value in changes.items()})

    async def restart(self, **changes: str) -> AtelierBot:
        """Stop the bot, apply config changes (see `configure`), and start it again on the same database."""
        await self.stop()
        if changes:
            self.configure(**changes)
        return await self.start()

    async def start(self, **extra_env: str) -> AtelierBot:
        """Boot the bot (composition root, login, command sync, gateway) and wait until the fake saw it ready."""
        assert self._stack is None, "the bot is already running"
        settings = self.settings(**extra_env)
        identified = len(self.fake.identifies)
        async with AsyncExitStack() as stack:
            stack.enter_context(discord_endpoints(settings.discord_api_base, settings.discord_gateway_url))
            bot = await stack.enter_async_context(open_bot(settings, guild_ready_timeout=0.05))
            self._stop = asyncio.Event()
            self._serving = asyncio.create_task(bot.serve(settings.require_discord_token(), self._stop))
            await self.fake.wait_until(
                lambda: len(self.fake.identifies) > identified, timeout=10.0, what="the bot to IDENTIFY"
            )
            await self.fake.wait_ready()
            await asyncio.wait_for(bot.wait_until_ready(), timeout=10.0)
            self._stack = stack.pop_all()
        self._bot = bot
        return bot

    async def stop(self) -> None:
        """Shut the bot down the way SIGTERM does, and close its session and database."""
        if self._stack is None:
            return
        self._stop.set()
        assert self._serving is not None
        await asyncio.wait_for(self._serving, timeout=15.0)
        await self._stack.aclose()
        self._stack = None
        self._bot = None

    async def slash(self, name: str, *, user_id: int, **options: object) -> FakeInteraction:
        """Run `/name` as `user_id` in the world's channel and wait for its initial response."""
        interaction = await self.fake.invoke_slash(
            name, user_id=user_id, guild_id=self.world.guild_id, channel_id=self.world.channel_id, options=options
        )
        await interaction.wait_response()
        return interaction

    async def answer(self, name: str, *, user_id: int, **options: object) -> FakeMessage:
        """Run `/name` and return the (ephemeral) answer that replaced the "thinking…" message."""
        interaction = await self.slash(name, user_id=user_id, **options)
        message = await interaction.wait_message()
        assert interaction.ephemeral, f"/{name} answered publicly"
        return message


@pytest_asyncio.fixture
async def atelier(fake_discord: FakeDiscord, fake_runware: FakeRunware, tmp_path: Path) -> AsyncIterator[Atelier]:
    """The fakes with the invited world and the bot started against them; Discord's rules checked at the end."""
    world = invited_world(fake_discord)
    config = write_config(tmp_path / "atelier.toml")
    harness = Atelier(fake_discord, world, tmp_path / "atelier.sqlite3", fake_runware, config)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.stop()
    assert_discord_rules_kept(fake_discord)


def embed_fields(message: FakeMessage, index: int = 0) -> dict[str, str]:
    """Return one embed's fields as name -> value."""
    return {field["name"]: field["value"] for field in message.embeds[index].get("fields", [])}
