"""`NotifyBus`: one PostgreSQL `LISTEN` connection per process, handing each NOTIFY to the code that subscribed.

The processes sharing a database tell each other what changed with `NOTIFY`, sent inside the transaction that made the
change (`bot.storage.queue.notify`, delivered when it commits). The bus is the receiving end: one psycopg
`AsyncConnection` in autocommit mode, `LISTEN` on every subscribed channel, `notifies()` read in a task of its own.

    bus = NotifyBus(url)
    bus.subscribe("atelier_queue", on_queue)       # on_queue(payload: str | None) -> None
    await bus.start()                              # returns once listening (or raises DatabaseUnreachableError)
    ...
    await bus.stop()

A half-open connection (the server or a NAT between gone without a word) is noticed: the connection has TCP
keepalives on, and every `ping_every` seconds the bus runs `SELECT 1`, reconnecting if it does not answer within
`ping_timeout` seconds.

A listener is a plain function called on the event loop with the payload. If the connection is lost the bus
reconnects (after `reconnect_delay`, doubling up to 30 s) and then calls every listener once with `None`: anything may
have been missed while it was away, so a listener must then act as if everything had changed (drop every cached row,
look at the queue again). A listener that raises is logged and does not stop the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

from bot.storage.postgres import redact

log = logging.getLogger(__name__)

Listener = Callable[[str | None], None]
"""Called with a NOTIFY's payload, or with None after a reconnect (messages may have been missed)."""

_MAX_DELAY = 30.0
_POLL = 1.0
"""How long one `notifies()` read waits before the bus checks for new channels to LISTEN on or a stop."""


class NotifyBus:
    """Receives the NOTIFYs of a PostgreSQL database on one connection and calls each channel's listeners."""

    def __init__(
        self, url: str, *, reconnect_delay: float = 0.5, ping_every: float = 15.0, ping_timeout: float = 10.0
    ) -> None:
        self._url = url
        self._delay = reconnect_delay
        self._ping_every = ping_every
        self._ping_timeout = ping_timeout
        self._listeners: dict[str, list[Listener]] = {}
        self._listening: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False
        self.connections = 0
        """How many times the bus connected (1 after start; more after reconnects)."""

    def subscribe(self, channel: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` with each payload sent on `channel`; return the function that unsubscribes it."""
        self._listeners.setdefault(channel, []).append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.get(channel, []).remove(listener)

        return unsubscribe

    async def start(self, within: float = 10.0) -> None:
        """Connect and LISTEN on every subscribed channel; return once listening (ConnectionError after `within` s)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run(), name="atelier-notify")
        waiter = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait({waiter, self._task}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            await self.stop()
            raise ConnectionError(f"the NOTIFY listener could not connect to {redact(self._url)} in {within:g}s")

    async def wait_listening(self) -> None:
        """Wait until the bus listens on every subscribed channel (after a start or a reconnect)."""
        while not (self._ready.is_set() and set(self._listeners) <= self._listening):  # noqa: ASYNC110 - tests
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._delay
        while not self._stopping:
            try:
                # TCP keepalives: a peer gone silent is also noticed by the kernel, within about a minute.
                connect = psycopg.AsyncConnection.connect(
                    self._url,
                    autocommit=True,
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                )
                async with await asyncio.wait_for(connect, self._ping_timeout + _POLL) as conn:
                    self._listening = set()
                    await self._listen_new(conn)
                    self.connections += 1
                    if self.connections > 1:
                        self._dispatch_all(None)  # messages may have been missed while reconnecting
                    self._ready.set()
                    delay = self._delay
                    pinged = loop.time()
                    while not self._stopping:
                        async for note in conn.notifies(timeout=_POLL):
                            self._dispatch(note.channel, note.payload)
                        await self._listen_new(conn)
                        if loop.time() - pinged >= self._ping_every:
                            await self._ping(conn)
                            pinged = loop.time()
            except (psycopg.Error, OSError) as exc:
                self._ready.clear()
                if self._stopping:
                    return
                log.warning(
                    "NOTIFY listener lost its connection (%s); reconnecting in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(_MAX_DELAY, delay * 2)

    async def _ping(self, conn: psycopg.AsyncConnection[object]) -> None:
        """Run `SELECT 1`; if it does not answer in time, close the connection (ConnectionError: reconnect).

        The query is not cancelled (psycopg would wait for the silent server to confirm the cancel): the connection is
        closed under it, which ends it with an error that is dropped.
        """
        ping = asyncio.ensure_future(conn.execute("SELECT 1"))
        done, _ = await asyncio.wait({ping}, timeout=self._ping_timeout)
        if ping in done:
            ping.result()
            return
        ping.add_done_callback(lambda task: task.cancelled() or task.exception())
        await conn.close()
        raise ConnectionError(f"the NOTIFY connection did not answer a ping in {self._ping_timeout:g}s")

    async def _listen_new(self, conn: psycopg.AsyncConnection[object]) -> None:
        for channel in list(self._listeners):
            if channel not in self._listening:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self._listening.add(channel)

    def _dispatch_all(self, payload: str | None) -> None:
        for channel in list(self._listeners):
            self._dispatch(channel, payload)

    def _dispatch(self, channel: str, payload: str | None) -> None:
        for listener in list(self._listeners.get(channel, ())):
            try:
                listener(payload)
            except Exception:
                log.exception("a NOTIFY listener of %s failed", channel)
