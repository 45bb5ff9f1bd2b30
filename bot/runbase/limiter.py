"""One limiter per Runbase key: at most 20 requests reach Runbase in any 10 s, shared fairly between creates and polls.

Runbase allows 20 requests per 10 seconds per key, creates and polls together (reference §5). `SlidingWindow` is the
rule itself, kept pure so it can be checked on its own. Runbase counts a request when it arrives, somewhere between
the moment it was sent and the moment its answer came back, and the time on the way is unknown (a loaded machine can
hold a request for longer than any fixed margin). So a request counts from when it is sent until `window` seconds
after its answer: a new one may start only while fewer than `limit` are in flight or answered within the last
`window` seconds. That holds at Runbase's end whatever the delays. `RunbaseLimiter` queues the requests of one key,
grants them in that order as the window allows (`async with limiter.request(kind):` around the send), and alternates
between the two kinds when both wait, so polling never starves creating nor the other way round. A 429 pauses every
grant for a backoff that doubles while 429s repeat. `poll_interval` spreads polls over the budget: 1-2 s for a few
runs, slower for many.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import StrEnum

__all__ = ["RequestKind", "RunbaseLimiter", "SlidingWindow"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

RUNBASE_LIMIT = 20
RUNBASE_WINDOW_SECONDS = 10.0


class RequestKind(StrEnum):
    """What a request is for; the limiter alternates between kinds when both wait."""

    CREATE = "create"
    POLL = "poll"


class SlidingWindow:
    """The requests in flight and those answered in the last `window` seconds, and when the next may start."""

    def __init__(self, limit: int = RUNBASE_LIMIT, window: float = RUNBASE_WINDOW_SECONDS, margin: float = 0.0) -> None:
        if limit < 1 or window <= 0 or margin < 0:
            raise ValueError("limit must be at least 1, window positive and margin not negative")
        self.limit = limit
        self.window = window
        self.margin = margin
        self.in_flight = 0
        self._answers: deque[float] = deque()

    def next_start(self, now: float) -> float | None:
        """Return the earliest moment (not before `now`) at which one more request may start.

        None when that depends on a request still in flight: the next answer frees a place.
        """
        span = self.window + self.margin
        while self._answers and self._answers[0] <= now - span:
            self._answers.popleft()
        excess = self.in_flight + len(self._answers) - self.limit
        if excess < 0:
            return now
        if excess >= len(self._answers):
            return None
        return self._answers[excess] + span

    def start(self) -> None:
        """Note that a request was sent."""
        self.in_flight += 1

    def finish(self, moment: float) -> None:
        """Note that a request's answer (or failure) came at `moment` (not before the previous answer)."""
        self.in_flight = max(0, self.in_flight - 1)
        self._answers.append(moment)

    def record(self, moment: float) -> None:
        """Note a request sent and answered at `moment` (no time on the way)."""
        self.start()
        self.finish(moment)


class RunbaseLimiter:
    """Grant request starts for one key: never more than `limit` in any `window` seconds, whatever the load.

    Share one instance among everything that uses the key (one client per key does). `clock` and `sleep` must agree
    (the defaults: `time.monotonic` and `asyncio.sleep`).
    """

    def __init__(
        self,
        limit: int = RUNBASE_LIMIT,
        window: float = RUNBASE_WINDOW_SECONDS,
        *,
        margin: float = 0.25,
        min_poll_interval: float = 1.0,
        max_poll_interval: float = 30.0,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not 0 < min_poll_interval <= max_poll_interval:
            raise ValueError("poll intervals must be positive, the minimum not above the maximum")
        self._window = SlidingWindow(limit, window, margin)
        self._clock = clock
        self._sleep = sleep
        self.min_poll_interval = min_poll_interval
        self.max_poll_interval = max_poll_interval
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._waiting: dict[RequestKind, deque[asyncio.Future[None]]] = {kind: deque() for kind in RequestKind}
        self._last: RequestKind = RequestKind.POLL
        self._paused_until = 0.0
        self._strikes = 0
        self._dispatcher: asyncio.Task[None] | None = None
        self._answer = asyncio.Event()
        self.active_runs = 0
        """Runs being polled right now (`run_started`/`run_finished`): what `poll_interval` spreads the budget over."""
        self.granted: dict[RequestKind, int] = dict.fromkeys(RequestKind, 0)
        """Requests granted so far, per kind."""

    @property
    def limit(self) -> int:
        """Requests allowed per window."""
        return self._window.limit

    @property
    def window(self) -> float:
        """The window in seconds."""
        return self._window.window

    @asynccontextmanager
    async def request(self, kind: RequestKind) -> AsyncIterator[None]:
        """Wait until one request of `kind` may start, and hold its place until it is answered (send it inside).

        Cancelling while waiting gives up the turn.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[kind].append(future)
        self._wake()
        await future
        try:
            yield
        finally:
            self._window.finish(self._clock())
            self._answer.set()
            self._wake()

    def _wake(self) -> None:
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    def rate_limited(self) -> None:
        """Runbase answered 429 `RATE_LIMITED`: pause every grant, twice as long as the last time (capped)."""
        self._strikes += 1
        pause = min(self._backoff_max, self._backoff_base * 2.0 ** (self._strikes - 1))
        self._paused_until = max(self._paused_until, self._clock() + pause)

    def answered(self) -> None:
        """Note that a request went through: the next 429 starts the backoff afresh."""
        self._strikes = 0

    def run_started(self) -> None:
        """One more run is being polled."""
        self.active_runs += 1

    def run_finished(self) -> None:
        """Note that a polled run has ended (or is no longer polled)."""
        self.active_runs = max(0, self.active_runs - 1)

    def poll_interval(self) -> float:
        """How long each run waits between polls: half the budget spread over the active runs, within the bounds.

        With the real limit (2 requests a second) one run is polled every second, two every 2 s, ten every 10 s; the
        other half of the budget stays for creates.
        """
        polls_per_second = self.limit / self.window / 2
        wanted = max(1, self.active_runs) / polls_per_second
        return min(self.max_poll_interval, max(self.min_poll_interval, wanted))

    async def _dispatch(self) -> None:
        while True:
            kind = self._next_kind()
            if kind is None:
                return
            now = self._clock()
            free = self._window.next_start(now)
            if free is None:  # wait for an answer: it frees a place (a pause may then still apply)
                self._answer.clear()
                await self._answer.wait()
                continue
            start = max(free, self._paused_until)
            if start > now:
                await self._sleep(start - now)
                continue
            future = self._waiting[kind].popleft()
            self._window.start()
            self.granted[kind] += 1
            self._last = kind
            future.set_result(None)

    def _next_kind(self) -> RequestKind | None:
        """Pick the kind to grant next: the other kind than last time when both wait; None when nobody waits."""
        for queue in self._waiting.values():
            while queue and queue[0].done():  # a waiter that was cancelled gave up its turn
                queue.popleft()
        waiting = [kind for kind in RequestKind if self._waiting[kind]]
        if not waiting:
            return None
        if len(waiting) == 2:
            return RequestKind.CREATE if self._last is RequestKind.POLL else RequestKind.POLL
        return waiting[0]
