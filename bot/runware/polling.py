"""Cheaper polling: `getResponse` polls batched into one request, and a schedule that follows the expected finish time.

`PollBatcher`: Runware's REST body is an array of tasks and several may share one POST (reference §1.1), each answered
on its own (`data` items and `errors` both carry their `taskUUID`). Polls asked for in the same event-loop turn go out
as one request. A task whose answer in a batch is anything but result items (an error naming it, no item at all, or
the whole request failing) is asked again on its own, so the caller sees exactly what a lone poll would have told it:
batching changes how many requests are sent, never what a poll means. A lone poll is sent as it always was.

`FinishEstimate`: how long tasks take from acknowledgement to their last image, learnt from the tasks this client
waited for. The first poll goes out at that time, but never later than the configured `poll_max_interval_seconds`
(the configured initial delay until a task has been seen through);
once a task is past it the polls come close together (a tenth of the elapsed time, at least `MIN_STEP`), so a
finished task waits little for the poll that sees it; a task running much longer than expected is polled with the
configured backoff again. The estimate is nudged down when the first poll already finds a task finished, so it follows
a provider that got faster too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bot.runware.errors import RunwareError
from bot.runware.transport import Response

Post = Callable[[list[dict[str, Any]]], Awaitable[Response]]

MAX_BATCH = 50
"""Most getResponse tasks in one request."""

MIN_STEP = 0.05
"""The shortest pause between two polls of a task (seconds)."""

_DENSE_FRACTION = 0.1
_DENSE_UNTIL = 2.0
"""Dense polling lasts until a task has run this many times its expected time; then the configured backoff resumes."""
_ALPHA = 0.3
_EARLY_NUDGE = 0.9


class PollBatcher:
    """Sends the getResponse polls asked for in one event-loop turn as one request; see the module docstring."""

    def __init__(self, post: Post, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._post = post
        self._max_batch = max_batch
        self._asked: list[tuple[str, asyncio.Future[Response]]] = []
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        self.requests_sent = 0
        """How many getResponse requests this batcher sent (for tests and the benchmark)."""

    async def get_response(self, task_uuid: str) -> Response:
        """Return Runware's answer about one task, as a lone `getResponse` would have answered (errors raised)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        self._asked.append((task_uuid, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        asked = [(task_uuid, future) for task_uuid, future in self._asked if not future.done()]
        self._asked = []
        for start in range(0, len(asked), self._max_batch):
            task = asyncio.get_running_loop().create_task(self._send(asked[start : start + self._max_batch]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, asked: list[tuple[str, asyncio.Future[Response]]]) -> None:
        by_task: dict[str, list[asyncio.Future[Response]]] = {}
        for task_uuid, future in asked:
            by_task.setdefault(task_uuid, []).append(future)
        if len(by_task) == 1:
            await self._alone(*next(iter(by_task.items())))
            return
        try:
            self.requests_sent += 1
            response = await self._post([{"taskType": "getResponse", "taskUUID": task_uuid} for task_uuid in by_task])
        except RunwareError:
            await asyncio.gather(*(self._alone(task_uuid, futures) for task_uuid, futures in by_task.items()))
            return
        unsure: list[str] = []
        if any(item.task_uuid is None for item in response.items):
            unsure = list(by_task)
        else:
            for task_uuid, futures in by_task.items():
                items = [item for item in response.items if item.task_uuid == task_uuid]
                named = any(error.task_uuid == task_uuid for error in response.errors)
                if named or not items:
                    unsure.append(task_uuid)
                    continue
                _answer(futures, Response(status=response.status, items=items, errors=[]))
        if unsure:
            await asyncio.gather(*(self._alone(task_uuid, by_task[task_uuid]) for task_uuid in unsure))

    async def _alone(self, task_uuid: str, futures: list[asyncio.Future[Response]]) -> None:
        """Ask about one task in a request of its own and hand the answer (or the error) to everyone who asked."""
        if all(future.done() for future in futures):
            return
        try:
            self.requests_sent += 1
            response = await self._post([{"taskType": "getResponse", "taskUUID": task_uuid}])
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        _answer(futures, response)


def _answer(futures: list[asyncio.Future[Response]], response: Response) -> None:
    for future in futures:
        if not future.done():
            future.set_result(response)


class FinishEstimate:
    """The expected time from a task's acknowledgement to its last image, and the poll schedule that follows it."""

    def __init__(self, *, initial_delay: float, max_interval: float) -> None:
        self._initial = initial_delay
        self._max_interval = max_interval
        self._expected: float | None = None

    @property
    def expected(self) -> float | None:
        """The expected task time in seconds, or None before any task was seen through."""
        return self._expected

    def first_delay(self) -> float:
        """Return how long to wait after the acknowledgement before the first poll."""
        if self._expected is None:
            return self._initial
        return max(MIN_STEP, min(self._expected, self._max_interval))

    def next_delay(self, backoff: float, elapsed: float) -> float:
        """Return the pause before the next poll of a task still running `elapsed` s after its acknowledgement.

        `backoff` is the pause the configured backoff would take; it is kept before the expected time, and again
        once the task has run twice that long.
        """
        expected = self._expected
        if expected is None or elapsed < expected * 0.8 or elapsed > expected * _DENSE_UNTIL:
            return backoff
        return max(MIN_STEP, min(elapsed * _DENSE_FRACTION, backoff))

    def observe(self, *, missed_at: float | None, seen_at: float) -> None:
        """Learn from a finished task: its last miss (None: the first poll saw it done) and the poll that saw it done.

        It finished between the two; with no miss, only "by `seen_at`" is known, so the sample is a little earlier.
        """
        sample = seen_at * _EARLY_NUDGE if missed_at is None else (missed_at + seen_at) / 2
        if sample <= 0:
            return
        self._expected = sample if self._expected is None else self._expected + _ALPHA * (sample - self._expected)
