"""The bot as a process on PostgreSQL (`ATELIER_DATABASE=postgresql://...`): a bad URL and an unreachable server are
one clear line (exit 2, exit 1), and an /imagine is answered, delivered and settled with the ledger in PostgreSQL."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import psycopg
import pytest

from fakes.discord import FakeDiscord
from fakes.runware import FakeRunware
from tests.discord.conftest import invited_world
from tests.discord.test_process import Launch, launch
from tests.postgres_server import PostgresServer

__all__ = ["launch"]

pytestmark = pytest.mark.slow


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_bad_postgres_url_is_one_line_and_exit_2(launch: Launch, tmp_path: Path) -> None:
    """A PostgreSQL URL without a database name is a bad setting: one line naming the variable, exit 2."""
    bot = await launch(ATELIER_DATABASE="postgresql://bot@db.example:5432/")

    assert await bot.finish() == 2
    assert bot.lines == [
        "atelier: ATELIER_DATABASE: is a PostgreSQL URL without a database name; expected "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    ]
    assert not (tmp_path / "atelier.sqlite3").exists()


async def test_an_unreachable_postgres_server_is_one_line_and_exit_1(launch: Launch, tmp_path: Path) -> None:
    """Nothing listens at the URL: one line that names the server (never the password), exit 1, no SQLite file."""
    port = closed_port()
    bot = await launch(ATELIER_DATABASE=f"postgresql://bot:hunter2-secret@127.0.0.1:{port}/atelier")

    assert await bot.finish() == 1
    failures = [line for line in bot.lines if line.startswith("atelier:")]
    assert len(failures) == 1, bot.log
    assert failures[0].startswith(
        f"atelier: ATELIER_DATABASE: cannot connect to the PostgreSQL database postgresql://bot:***@127.0.0.1:{port}/"
    ), failures[0]
    assert "hunter2-secret" not in bot.log
    assert "Traceback" not in bot.log
    assert not (tmp_path / "atelier.sqlite3").exists()


async def test_imagine_is_delivered_and_settled_with_the_ledger_in_postgres(
    fake_discord: FakeDiscord, fake_runware: FakeRunware, launch: Launch, postgres_server: PostgresServer
) -> None:
    """The whole bot on PostgreSQL: migrated on start, an /imagine delivered, its hold settled at the reported cost."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    try:
        world = invited_world(fake_discord)
        bot = await launch(
            ATELIER_DATABASE=postgres_server.url(name),
            RUNWARE_API_URL=fake_runware.url,
            RUNWARE_API_KEY=fake_runware.api_key,
        )
        await bot.wait_line("Job service started", timeout=30.0)
        interaction = await fake_discord.invoke_slash(
            "imagine",
            user_id=world.member_id,
            guild_id=world.guild_id,
            channel_id=world.channel_id,
            options={"prompt": "a lantern on a quay"},
        )
        await interaction.wait_message(lambda message: bool(message.attachments), timeout=30.0)
        await bot.wait_line("delivered", timeout=20.0)
        assert await bot.stop(signal.SIGTERM) == 0

        with psycopg.connect(postgres_server.url(name)) as conn:
            rows = conn.execute(
                "SELECT kind, amount, member_id FROM ledger WHERE guild_id = %s ORDER BY id", (world.guild_id,)
            ).fetchall()
            state = conn.execute("SELECT state FROM jobs WHERE member_id = %s", (world.member_id,)).fetchall()
        assert [kind for kind, _, _ in rows] == ["hold", "settle"], rows
        assert {member for _, _, member in rows} == {world.member_id}
        assert rows[1][1] == fake_runware.total_cost_micros > 0
        assert state == [("succeeded",)]
    finally:
        postgres_server.drop_database(name)
