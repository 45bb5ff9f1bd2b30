"""Real `python -m bot` processes for end-to-end tests, against the fakes running in the test's event loop.

`BotProcess` is one process whose stderr (the log, and any one-line failure) is collected as it comes. `Fleet`
starts several on ONE PostgreSQL database (a fresh copy of the migrated template from `tests.postgres_server`), the
fake Discord and the fake Runware, each with its own `ATELIER_SHARDS` range and working folder, and can SIGKILL one.
Use it through the `fleet` fixture (import it into the test module, as `from tests.discord.processes import fleet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from fakes.discord import FakeDiscord
from fakes.runware import FakeRunware
from tests.discord.conftest import REPO, bot_environment, write_config
from tests.postgres_server import PostgresServer

__all__ = ["BOT_COMMAND", "BotProcess", "Fleet", "clean_environment", "fleet", "start_bot"]

BOT_COMMAND = [sys.executable, "-m", "bot"]
"""How the tests start the bot: the CLI with no subcommand runs it."""

_OURS = ("DISCORD_", "ATELIER_", "RUNWARE_", "RUNBASE_", "LOG_LEVEL", "LOG_FORMAT")


def clean_environment() -> dict[str, str]:
    """This process's environment without any variable the bot reads (so only what a test sets applies)."""
    return {key: value for key, value in os.environ.items() if not key.startswith(_OURS)}


class BotProcess:
    """One `python -m bot` process; its stderr (the log, and any one-line failure) is collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process, fake: FakeDiscord, name: str = "bot") -> None:
        self.process = process
        self.name = name
        self.lines: list[str] = []
        self._fake = fake
        self._reader = asyncio.create_task(self._read())

    def __repr__(self) -> str:
        return f"<BotProcess {self.name} pid={self.process.pid} returncode={self.process.returncode}>"

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode().rstrip("\n"))

    @property
    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return "\n".join(self.lines)

    def count(self, needle: str) -> int:
        """How many lines of the log so far contain `needle`."""
        return sum(needle in line for line in self.lines)

    async def wait_line(self, needle: str, *, after: int = 0, timeout: float = 10.0) -> int:  # noqa: ASYNC109
        """Wait until a line from index `after` on contains `needle`; return its index."""
        return (
            await self._fake.wait_until(
                lambda: next((i + 1 for i, line in enumerate(self.lines[after:], after) if needle in line), None),
                timeout=timeout,
                what=lambda: f"{needle!r} in the log of {self.name}:\n{self.log}",
            )
            - 1
        )

    async def finish(self, timeout: float = 30.0) -> int:  # noqa: ASYNC109
        """Wait for the process to exit on its own (killed after `timeout`); return its exit status."""
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.process.wait()
            raise
        await self._reader
        assert self.process.returncode is not None
        return self.process.returncode

    async def stop(self, sig: signal.Signals) -> int:
        """Send `sig` and return the exit status."""
        self.process.send_signal(sig)
        return await self.finish()

    def kill(self) -> None:
        """SIGKILL the process if it still runs."""
        if self.process.returncode is None:
            self.process.kill()


async def start_bot(fake: FakeDiscord, env: dict[str, str], *, cwd: Path, name: str = "bot") -> BotProcess:
    """Start `python -m bot` in `cwd` with exactly `env` for the bot's variables (see `bot_environment`)."""
    process = await asyncio.create_subprocess_exec(
        *BOT_COMMAND,
        cwd=cwd,
        env={**clean_environment(), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return BotProcess(process, fake, name)


class Fleet:
    """Bot processes sharing one PostgreSQL database, the fake Discord and the fake Runware."""

    def __init__(self, fake: FakeDiscord, runware: FakeRunware, database_url: str, folder: Path, config: Path) -> None:
        self.fake = fake
        self.runware = runware
        self.database_url = database_url
        self.folder = folder
        self.config = config
        self.bots: list[BotProcess] = []

    def configure(self, changes: dict[str, str]) -> None:
        """Rewrite the shared config file with `{"section.key": "toml value"}` changes (read by processes started
        after this)."""
        write_config(self.config, changes)

    async def start(self, shards: str | None, **extra: str) -> BotProcess:
        """Start one process running `shards` (`ATELIER_SHARDS`; None: unsharded), with `extra` variables."""
        name = f"shards {shards}" if shards else "unsharded"
        cwd = self.folder / f"bot{len(self.bots)}"
        cwd.mkdir()
        env = bot_environment(
            self.fake, cwd / "unused.sqlite3", runware_url=self.runware.url, config=self.config, **extra
        )
        env.update(ATELIER_DATABASE=self.database_url, RUNWARE_API_KEY=self.runware.api_key)
        if shards is not None:
            env["ATELIER_SHARDS"] = shards
        bot = await start_bot(self.fake, env, cwd=cwd, name=name)
        self.bots.append(bot)
        return bot

    async def kill(self, bot: BotProcess) -> int:
        """SIGKILL `bot` (no shutdown at all: leases, holds and sockets are left as a crash leaves them)."""
        bot.kill()
        return await bot.finish()

    async def close(self) -> None:
        """SIGKILL every process still running and wait for them."""
        for bot in self.bots:
            bot.kill()
        for bot in self.bots:
            with contextlib.suppress(TimeoutError):
                await bot.finish(timeout=10.0)


@pytest_asyncio.fixture
async def fleet(
    fake_discord: FakeDiscord, fake_runware: FakeRunware, postgres_server: PostgresServer, tmp_path: Path
) -> AsyncIterator[Fleet]:
    """A `Fleet` on a fresh PostgreSQL database (dropped after the test); the processes are SIGKILLed at the end."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    harness = Fleet(
        fake_discord, fake_runware, postgres_server.url(name), tmp_path, write_config(tmp_path / "atelier.toml")
    )
    try:
        yield harness
    finally:
        await harness.close()
        postgres_server.drop_database(name)
