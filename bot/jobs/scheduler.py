"""A fair in-process scheduler: round-robin across members, a global and a per-member concurrency limit.

Each member has a FIFO of waiting job ids; members with waiting jobs sit in a rotating order. Whenever a slot may
have opened (a job was added, finished, or removed), `_pump` starts jobs: it takes the first member in the order
that is under the per-member limit, starts that member's oldest job and moves the member to the back. So a member
who queued eight jobs gets one start per turn like everyone else, and a member with one job waits at most one
round, never behind the other's whole batch.

The scheduler holds no durable state: the job rows are the truth (state `queued` or `submitted`), and the service
re-adds them on start-up. `stop()` stops starting jobs, gives running ones a grace period, then cancels the rest:
a cancelled run leaves its job in `queued` or `submitted`, to be resumed by the next process, so a SIGTERM never
loses work.

A slot is a provider slot: once a job's provider work is done (its images exist), the worker hands the slot back with
`release_slot` and the next job starts at once, while the first one downloads and posts its images (bounded by the
worker's own delivery limit). `wake()` starts jobs after a limit rose.

Lanes: each job has a provider (`submit(..., provider=)`), and `lanes` maps a provider to its current adaptive limit
(`bot.jobs.concurrency.AdaptiveLimit.current`). A job starts only when its provider's lane has room, as well as the
global and per-member limits; a member whose next job's lane is full is passed over for that turn (keeping its place
in the rotation), so it never blocks other members' jobs on another lane. A provider without a lane is limited only
by the global and per-member limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", int, str)

RunJob = Callable[[str], Awaitable[None]]
"""Runs one job to its end, given its id; the scheduler logs (and otherwise ignores) whatever it raises."""


class JobScheduler(Protocol):
    """What the service, the worker, admission and approvals ask of a scheduler.

    This in-process `Scheduler`, or `bot.jobs.shared.SharedScheduler`, the one queue of every process on a PostgreSQL
    database.
    """

    def start(self, run_job: RunJob, *, elsewhere: Callable[[str], None] | None = None) -> None: ...  # noqa: D102
    def submit(self, job_id: str, member_id: int, provider: str = "") -> int | None: ...  # noqa: D102
    def remove(self, job_id: str) -> bool: ...  # noqa: D102
    def cancel_running(self, job_id: str) -> bool: ...  # noqa: D102
    def release_slot(self, job_id: str) -> bool: ...  # noqa: D102
    def wake(self) -> None: ...  # noqa: D102
    def position(self, job_id: str) -> int | None: ...  # noqa: D102
    def positions(self) -> dict[str, int]: ...  # noqa: D102
    @property
    def waiting_count(self) -> int: ...  # noqa: D102
    @property
    def running_count(self) -> int: ...  # noqa: D102
    async def wait_idle(self) -> None: ...  # noqa: D102
    async def stop(self, grace: float = 10.0) -> None: ...  # noqa: D102


class Scheduler:
    """Runs jobs fairly: never more than `global_limit` at once, nor more than `per_member_limit` for one member."""

    def __init__(
        self,
        global_limit: int,
        per_member_limit: int,
        *,
        lanes: Mapping[str, Callable[[], int]] | None = None,
    ) -> None:
        if global_limit < 1 or per_member_limit < 1:
            raise ValueError("concurrency limits must be at least 1")
        self._global_limit = global_limit
        self._lanes = dict(lanes or {})
        self._provider_of: dict[str, str] = {}
        self._running_per_lane: dict[str, int] = {}
        self._released: set[str] = set()
        self._per_member_limit = per_member_limit
        self._waiting: dict[int, deque[str]] = {}
        self._order: deque[int] = deque()
        self._member_of: dict[str, int] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._running_per_member: dict[int, int] = {}
        self._run_job: RunJob | None = None
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, run_job: RunJob, *, elsewhere: Callable[[str], None] | None = None) -> None:
        """Start running queued jobs with `run_job`; jobs added before this wait until now.

        `elsewhere` is for a shared queue (`bot.jobs.shared`: called with a job submitted here that another process
        took); in one process every job runs here, so it is never called.
        """
        self._run_job = run_job
        self._stopping = False
        self._pump()

    def submit(self, job_id: str, member_id: int, provider: str = "") -> int | None:
        """Queue a member's job on `provider`'s lane; return its position (1-based), or None if it started or runs."""
        if job_id in self._member_of:
            return self.position(job_id)
        self._provider_of[job_id] = provider
        queue = self._waiting.get(member_id)
        if queue is None:
            queue = self._waiting[member_id] = deque()
            self._order.append(member_id)
        queue.append(job_id)
        self._member_of[job_id] = member_id
        self._idle.clear()
        self._pump()
        return self.position(job_id)

    def remove(self, job_id: str) -> bool:
        """Take a waiting job out of the queue; True if it was waiting (a running job is not touched)."""
        member = self._member_of.get(job_id)
        if member is None or job_id in self._running:
            return False
        queue = self._waiting.get(member)
        if queue is None or job_id not in queue:
            return False
        queue.remove(job_id)
        del self._member_of[job_id]
        self._provider_of.pop(job_id, None)
        if not queue:
            self._waiting.pop(member, None)
            with contextlib.suppress(ValueError):
                self._order.remove(member)
        self._check_idle()
        return True

    def cancel_running(self, job_id: str) -> bool:
        """Cancel a running job's task (its state must already have been changed by the caller); True if running."""
        task = self._running.get(job_id)
        if task is None:
            return False
        task.cancel()
        return True

    def release_slot(self, job_id: str) -> bool:
        """Give a running job's slot to the next job (its provider work is done); True if it held one.

        The job keeps running (it is still cancelled by `stop` and counted by `wait_idle`), but it no longer counts
        against the global or the per-member limit.
        """
        if job_id not in self._running or job_id in self._released:
            return False
        self._released.add(job_id)
        member = self._member_of.get(job_id)
        if member is not None:
            _decrement(self._running_per_member, member)
        _decrement(self._running_per_lane, self._provider_of.get(job_id, ""))
        self._pump()
        return True

    def wake(self) -> None:
        """Start waiting jobs if slots opened (called when the adaptive limit rose)."""
        self._pump()

    def is_waiting(self, job_id: str) -> bool:
        """Return True for a job in the queue that has not started."""
        return job_id in self._member_of and job_id not in self._running

    def waiting_order(self) -> list[str]:
        """Return the waiting job ids in the order the round-robin would start them (if every member had a slot)."""
        order: list[str] = []
        queues = [list(self._waiting[member]) for member in self._order]
        depth = 0
        while True:
            layer = [queue[depth] for queue in queues if depth < len(queue)]
            if not layer:
                return order
            order.extend(layer)
            depth += 1

    def position(self, job_id: str) -> int | None:
        """Return the job's 1-based place among waiting jobs, in start order; None when running or unknown."""
        if not self.is_waiting(job_id):
            return None
        # Its place in `waiting_order` without building it: the order takes every member's first job, then every
        # second one, and so on; the jobs ahead are those at a shallower depth, and at its own depth the first jobs
        # of the members before it in the round.
        member = self._member_of[job_id]
        depth = self._waiting[member].index(job_id)
        place, before = 1 + depth, True
        for other in self._order:
            if other == member:
                before = False
            else:
                place += min(len(self._waiting[other]), depth + 1 if before else depth)
        return place

    @property
    def waiting_count(self) -> int:
        """How many jobs wait for a slot (the queue length the metrics show)."""
        return sum(len(queue) for queue in self._waiting.values())

    @property
    def running_count(self) -> int:
        """How many jobs hold a provider slot now (jobs only posting their images are not counted)."""
        return len(self._running) - len(self._released)

    def positions(self) -> dict[str, int]:
        """Return every waiting job's 1-based place in start order (one pass, for callers that need many)."""
        return {job_id: place for place, job_id in enumerate(self.waiting_order(), start=1)}

    async def wait_idle(self) -> None:
        """Wait until nothing is waiting or running."""
        await self._idle.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop starting jobs; give running ones `grace` seconds, then cancel them (they resume after a restart).

        Waiting jobs stay in the queue (and in the database as `queued`); `start()` would run them again.
        """
        self._stopping = True
        tasks = list(self._running.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        pending = [task for task in tasks if not task.done()]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if pending:
            log.info("stopped with %d job(s) interrupted; they resume on the next start", len(pending))

    def _pump(self) -> None:
        if self._run_job is None or self._stopping:
            return
        while len(self._running) - len(self._released) < self._global_limit and self._order:
            member = self._next_member()
            if member is None:
                return
            queue = self._waiting[member]
            job_id = queue.popleft()
            lane = self._provider_of.get(job_id, "")
            self._running_per_lane[lane] = self._running_per_lane.get(lane, 0) + 1
            self._order.remove(member)
            if queue:
                self._order.append(member)
            else:
                del self._waiting[member]
            self._running_per_member[member] = self._running_per_member.get(member, 0) + 1
            task = asyncio.get_running_loop().create_task(self._run(job_id), name=f"job-{job_id}")
            self._running[job_id] = task

    def _next_member(self) -> int | None:
        """Return the first member in the rotation under the per-member limit whose next job's lane has room."""
        for member in self._order:
            if self._running_per_member.get(member, 0) >= self._per_member_limit:
                continue
            lane = self._provider_of.get(self._waiting[member][0], "")
            capacity = self._lanes.get(lane)
            if capacity is None or self._running_per_lane.get(lane, 0) < max(1, capacity()):
                return member
        return None

    async def _run(self, job_id: str) -> None:
        run_job = self._run_job
        try:
            if run_job is not None:
                await run_job(job_id)
        except asyncio.CancelledError:
            log.debug("run of job %s was cancelled", job_id)
            raise
        except Exception:
            log.exception("job %s failed inside the scheduler", job_id)
        finally:
            self._finish(job_id)

    def _finish(self, job_id: str) -> None:
        self.release_slot(job_id)
        self._running.pop(job_id, None)
        self._released.discard(job_id)
        self._member_of.pop(job_id, None)
        self._provider_of.pop(job_id, None)
        self._pump()
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._member_of:
            self._idle.set()


def _decrement(counts: dict[K, int], key: K) -> None:
    """Count one running job fewer under `key`, dropping the key at zero."""
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)
