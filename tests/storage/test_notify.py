"""`NotifyBus` on a real PostgreSQL server: a NOTIFY sent in a unit's transaction reaches the subscribers when it
commits (not before, not if it rolls back), channels subscribed after the start are heard, and after the listening
connection is killed the bus reconnects and tells every subscriber that it may have missed something (`None`)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from bot.storage.database import Database
from bot.storage.notify import NotifyBus
from bot.storage.queue import notify
from tests.postgres_server import PostgresServer


@pytest_asyncio.fixture
async def pg(postgres_server: PostgresServer) -> AsyncIterator[tuple[Database, str]]:
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    try:
        async with await Database.open(url) as database:
            yield database, url
    finally:
        postgres_server.drop_database(name)


async def wait_for(heard: list[str | None], count: int) -> None:
    async with asyncio.timeout(5):
        while len(heard) < count:  # noqa: ASYNC110 - a list filled by the bus's listener
            await asyncio.sleep(0.01)


async def test_a_notify_reaches_subscribers_when_its_transaction_commits(pg: tuple[Database, str]) -> None:
    """Sent inside a unit: heard once it commits; a unit that raises sends nothing."""
    db, url = pg
    bus = NotifyBus(url)
    heard: list[str | None] = []
    bus.subscribe("atelier_test", heard.append)
    await bus.start()
    try:

        def failing(conn: sqlite3.Connection) -> None:
            notify(conn, "atelier_test", "rolled back")
            raise RuntimeError("refused")

        with pytest.raises(RuntimeError):
            await db.run(failing)
        await db.run(lambda conn: notify(conn, "atelier_test", "42"))
        await wait_for(heard, 1)
        await asyncio.sleep(0.1)
        assert heard == ["42"]

        later: list[str | None] = []
        bus.subscribe("atelier_later", later.append)  # after the start: listened to within a poll
        await asyncio.wait_for(bus.wait_listening(), 5)
        await db.run(lambda conn: notify(conn, "atelier_later", "x"))
        await wait_for(later, 1)
        assert later == ["x"]
    finally:
        await bus.stop()


async def test_the_bus_reconnects_and_says_it_may_have_missed_messages(pg: tuple[Database, str]) -> None:
    """The listening connection is terminated: subscribers hear `None`, then new messages again."""
    db, url = pg
    bus = NotifyBus(url, reconnect_delay=0.05)
    heard: list[str | None] = []
    bus.subscribe("atelier_test", heard.append)
    await bus.start()
    try:
        await db.run(
            lambda conn: conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            ).fetchall()
        )
        await wait_for(heard, 1)
        assert heard == [None] and bus.connections == 2
        await db.run(lambda conn: notify(conn, "atelier_test", "after"))
        await wait_for(heard, 2)
        assert heard == [None, "after"]
    finally:
        await bus.stop()


async def test_the_bus_notices_a_half_open_connection_and_reconnects(pg: tuple[Database, str]) -> None:
    """A connection whose peer falls silent (a proxy that stops forwarding, as a dead NAT): the ping does not answer,
    the bus reconnects and hears new messages again."""
    db, url = pg
    parts = urlsplit(url)
    assert parts.port is not None
    links: list[asyncio.Task[None]] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(parts.hostname, parts.port)
        links.append(asyncio.ensure_future(pump(client_reader, server_writer)))
        links.append(asyncio.ensure_future(pump(server_reader, client_writer)))

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    bus = NotifyBus(
        urlunsplit(parts._replace(netloc=f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{port}")),
        reconnect_delay=0.05,
        ping_every=0.2,
        ping_timeout=0.5,
    )
    heard: list[str | None] = []
    bus.subscribe("atelier_test", heard.append)
    await bus.start()
    try:
        for task in list(links):  # the first connection falls silent (its sockets stay open); new ones get through
            task.cancel()
        await wait_for(heard, 1)
        assert heard == [None] and bus.connections == 2
        await db.run(lambda conn: notify(conn, "atelier_test", "after"))
        await wait_for(heard, 2)
        assert heard == [None, "after"]
    finally:
        await bus.stop()
        for task in links:
            task.cancel()
        proxy.close()
