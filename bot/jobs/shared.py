"""`SharedScheduler`: the job queue of every process on one PostgreSQL database, with the in-process scheduler's face.

It is what `bot.app` uses instead of `bot.jobs.scheduler.Scheduler` when `ATELIER_DATABASE` is a PostgreSQL URL. The
queue is the `jobs` rows (`bot.storage.queue`): this process claims free jobs under a lease in one serialised unit of
work, fairly (the member whose last start is oldest goes next) and within the global, per-member and per-provider
limits counted in the database over all processes; it runs each claimed job with the worker, renews its leases with a
heartbeat, frees the job's slot in the database when its images exist (`release_slot`), and gives the lease back when
the run ends. A graceful `stop` gives every lease back at once; a process that dies keeps its leases until they run
out (`lease_seconds`), then another process claims the jobs and resumes them by their stored task or run ids.

Waking: a NOTIFY on `atelier_queue` (a job queued, a slot freed; `bot.storage.notify.NotifyBus`) makes it claim
again; the heartbeat also claims (the slow fallback, for leases that ran out: nothing announces an expiry). Without a
bus it claims on its own events and the heartbeat only.

Cancelling: a job cancelled here that runs in another process is announced on `atelier_cancel`; the process running
it cancels its task. The database state is the truth: the heartbeat also stops a local run whose job was cancelled or
rejected, or whose lease another process took.

Positions (`/queue`, the status edits) come from the last look at the shared queue (`QueueQueries.view`), refreshed at
every claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial

from bot.jobs.concurrency import AdaptiveLimit, with_lanes
from bot.jobs.options import ServerOptions
from bot.jobs.scheduler import RunJob
from bot.moderation.approvals import ModerationRules
from bot.moderation.policy import Policy
from bot.settings import LimitsConfig
from bot.storage.database import Database
from bot.storage.notify import NotifyBus
from bot.storage.queue import (
    CANCEL_CHANNEL,
    QUEUE_CHANNEL,
    SETTINGS_CHANNEL,
    QueueLimits,
    QueueQueries,
    QueueView,
    notify,
)

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 30.0
"""How long a claim holds without a heartbeat: a process killed mid-job has its jobs taken over this long after."""

_BUSY_RETRY = 0.02
"""Seconds before claiming again when another process held the claim lock."""

_STOPPED_STATES = frozenset({"cancelled", "rejected"})


def process_owner() -> str:
    """Return a lease owner id for this process: its pid and a random part (a restarted pid is another owner)."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


class SharedScheduler:
    """Claims and runs jobs from the database's one queue; the same methods as `Scheduler` (see the module)."""

    def __init__(
        self,
        db: Database,
        global_limit: int,
        per_member_limit: int,
        *,
        lanes: Mapping[str, Callable[[], int]] | None = None,
        bus: NotifyBus | None = None,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        if global_limit < 1 or per_member_limit < 1:
            raise ValueError("concurrency limits must be at least 1")
        self._db = db
        self._global_limit = global_limit
        self._per_member_limit = per_member_limit
        self._lanes = dict(lanes or {})
        self._bus = bus
        self.owner = owner or process_owner()
        """This process's lease owner id."""
        self._lease_ms = int(lease_seconds * 1000)
        self._beat = lease_seconds / 3
        self._lease_seconds = lease_seconds
        self._renewed_at = time.monotonic()
        """When the last renewal that succeeded was sent (this process's monotonic clock)."""
        self._strays: set[str] = set()
        self._run_job: RunJob | None = None
        self._elsewhere: Callable[[str], None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._released: set[str] = set()
        self._view = QueueView()
        self._submitted: list[str] = []
        """Jobs submitted here since the last look at the queue (shown as waiting until then)."""
        self._stopping = True
        self._pump_wanted = False
        self._pumping: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        if bus is not None:  # subscribed before the bus starts, so its first LISTEN covers both channels; a stopped
            # scheduler ignores what it hears (`wake` claims nothing, no run to cancel)
            bus.subscribe(QUEUE_CHANNEL, lambda _payload: self.wake())
            bus.subscribe(CANCEL_CHANNEL, self._on_cancel)
        self._idle = asyncio.Event()
        self._idle.set()

    def start(self, run_job: RunJob, *, elsewhere: Callable[[str], None] | None = None) -> None:
        """Start claiming and running jobs with `run_job`, and the heartbeat.

        `elsewhere` is called with each job submitted here that another process took (or that finished meanwhile),
        so the caller can forget what it keeps about it (the worker's in-process tracking).
        """
        self._run_job = run_job
        self._elsewhere = elsewhere
        self._stopping = False
        self._renewed_at = time.monotonic()
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat_forever(), name="atelier-heartbeat")
        self.wake()

    def submit(self, job_id: str, member_id: int, provider: str = "") -> int | None:
        """Claim now: a job became claimable (its row is `queued`, committed); return its estimated position."""
        if job_id in self._running:
            return None
        if job_id not in self._view.waiting and job_id not in self._submitted:
            self._submitted.append(job_id)
        self._idle.clear()
        if self._bus is None:  # with a bus, the NOTIFY the job's insert sent wakes this process too
            self.wake()
        return self.position(job_id)

    def remove(self, job_id: str) -> bool:
        """Forget a waiting job locally (the caller changes its state, which takes it out of the shared queue)."""
        waiting = job_id not in self._running and job_id in _waiting(self._view, self._submitted)
        with contextlib.suppress(ValueError):
            self._submitted.remove(job_id)
        return waiting

    def cancel_running(self, job_id: str) -> bool:
        """Cancel the job's run here (True), or announce the cancel to the process running it (False)."""
        task = self._running.get(job_id)
        if task is not None:
            task.cancel()
            return True
        self._spawn(self._db.run(lambda conn: notify(conn, CANCEL_CHANNEL, job_id)))
        return False

    def release_slot(self, job_id: str) -> bool:
        """Free the running job's slot in the database (its images exist); the lease stays until it is delivered."""
        if job_id not in self._running or job_id in self._released:
            return False
        self._released.add(job_id)
        owner = self.owner
        self._spawn(self._write_then_wake(lambda conn: QueueQueries(conn).release_slot(job_id, owner)))
        return True

    def wake(self) -> None:
        """Claim jobs now (a job was queued, a slot freed, a limit rose); coalesced while a claim runs."""
        if self._run_job is None or self._stopping:
            return
        self._pump_wanted = True
        if self._pumping is None or self._pumping.done():
            self._pumping = asyncio.get_running_loop().create_task(self._pump(), name="atelier-claim")

    def position(self, job_id: str) -> int | None:
        """Return the job's 1-based place among waiting jobs; None when running or unknown."""
        return None if job_id in self._running else self.positions().get(job_id)

    def positions(self) -> dict[str, int]:
        """Return every waiting job's 1-based place in claim order (as last seen, then those submitted here since)."""
        return {job_id: place for place, job_id in enumerate(_waiting(self._view, self._submitted), start=1)}

    @property
    def waiting_count(self) -> int:
        """How many jobs wait for a slot, in every process (as last seen)."""
        return len(_waiting(self._view, self._submitted))

    @property
    def running_count(self) -> int:
        """How many jobs hold a provider slot in every process (as last seen)."""
        return self._view.running

    async def wait_idle(self) -> None:
        """Wait until nothing runs here and the shared queue had nothing waiting at the last look."""
        await self._idle.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; give running jobs `grace` seconds, cancel the rest, and give every lease back at once.

        The heartbeat keeps renewing the leases of the runs until they end, so no other process takes them meanwhile.
        """
        self._stopping = True
        pumping, self._pumping = self._pumping, None
        await _cancelled(pumping)
        tasks = list(self._running.values())
        if tasks and grace > 0:
            await asyncio.wait(tasks, timeout=grace)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        heartbeat, self._heartbeat = self._heartbeat, None
        await _cancelled(heartbeat)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        owner = self.owner
        try:
            given = await self._db.run(lambda conn: QueueQueries(conn).give_back_all(owner))
        except Exception:
            log.warning("could not give the job leases back; they run out in %gs", self._lease_seconds, exc_info=True)
            return
        if given:
            log.info("stopped: gave back %d job lease(s) to the other processes", given)

    # ------------------------------------------------------------------------------------------------ internals

    async def _pump(self) -> None:
        while self._pump_wanted and not self._stopping and self._run_job is not None:
            self._pump_wanted = False
            limits = QueueLimits(
                self._global_limit, self._per_member_limit, {lane: cap() for lane, cap in self._lanes.items()}
            )
            owner, lease_ms = self.owner, self._lease_ms
            seen = set(self._submitted)  # the view read below shows these as they are (waiting, or not)
            try:
                outcome = await self._db.run(partial(_claim, owner=owner, lease_ms=lease_ms, limits=limits))
            except Exception:
                log.exception("claiming jobs from the shared queue failed; the heartbeat tries again")
                return
            if outcome is None:  # another process is claiming right now: look again in a moment
                asyncio.get_running_loop().call_later(_BUSY_RETRY, self.wake)
                continue
            claimed, view = outcome
            self._view = view
            self._submitted = [job for job in self._submitted if job not in seen and job not in claimed]
            gone = seen.difference(view.waiting, claimed, self._running)
            if gone and self._elsewhere is not None:
                for job_id in gone:
                    self._elsewhere(job_id)
            loop = asyncio.get_running_loop()
            for job_id in claimed:
                self._running[job_id] = loop.create_task(self._run(job_id), name=f"job-{job_id}")
            self._check_idle()

    async def _run(self, job_id: str) -> None:
        run_job = self._run_job
        # A run that ends on its own (not cancelled) with its job still runnable made no progress: the job is given
        # back with a back-off of one beat, so it is not claimed again at once in a loop.
        backoff = int(self._beat * 1000)
        try:
            if run_job is not None:
                await run_job(job_id)
        except asyncio.CancelledError:
            log.debug("run of job %s was cancelled", job_id)
            backoff = 0
            raise
        except Exception:
            log.exception("job %s failed inside the scheduler", job_id)
        finally:
            self._running.pop(job_id, None)
            self._released.discard(job_id)
            give_back = partial(_give_back, job_id=job_id, owner=self.owner, backoff_ms=backoff)
            self._spawn(self._write_then_wake(give_back))
            self._check_idle()

    async def _beat_forever(self) -> None:
        """Renew the leases of the local runs every beat until cancelled (`stop` does, once its runs ended).

        A renewal that has not answered when the lease less one beat is over since the last good one is given up and
        every local run is stopped, before another process may claim their jobs.
        """
        while True:
            await asyncio.sleep(self._beat)
            # Only runs claimed before the renewal are judged by it: a claim committed after it is not in `held`.
            before = dict(self._running)
            sent = time.monotonic()
            left = self._lease_seconds - self._beat - (sent - self._renewed_at)
            renew = partial(_renew, owner=self.owner, lease_ms=self._lease_ms, running=frozenset(before))
            try:
                async with asyncio.timeout(left if left > 0 else self._lease_seconds):
                    held = await self._db.run(renew)
            except Exception:
                log.warning("renewing the job leases failed; trying again", exc_info=True)
                if time.monotonic() - self._renewed_at >= self._lease_seconds - self._beat:
                    _stop_runs(self._running.values(), f"its lease could not be renewed for {self._lease_seconds:g}s")
                continue
            self._renewed_at = sent
            for job_id, task in before.items():
                state = held.get(job_id)
                if not task.done() and (state is None or state in _STOPPED_STATES):
                    why = "its lease was taken by another process" if state is None else f"it was {state}"
                    _stop_runs([task], why)
            # Leases held on runnable jobs that do not run here (e.g. after a failed give-back) are given back once
            # seen at two beats in a row, so a claim answered after the renewal is never given back.
            strays = {job for job, state in held.items() if state not in _STOPPED_STATES and job not in self._running}
            lost, self._strays = strays & self._strays, strays - self._strays
            for job_id in sorted(lost):
                log.info("giving back the lease of job %s, which does not run here", job_id)
                self._spawn(self._write_then_wake(partial(_give_back, job_id=job_id, owner=self.owner)))
            self.wake()  # the fallback: leases of a dead process run out without a NOTIFY

    async def _write_then_wake(self, write: Callable[[sqlite3.Connection], object]) -> None:
        """Free a slot or a lease in the database, then claim (its NOTIFY wakes every process)."""
        await self._db.run(write)
        if self._bus is None:  # with a bus, hearing that NOTIFY wakes this process too: claiming here too would claim
            self.wake()  # twice per write

    def _on_cancel(self, job_id: str | None) -> None:
        if job_id is None:
            return  # the bus reconnected: the heartbeat compares the states with the database
        task = self._running.get(job_id)
        if task is not None:
            log.info("job %s was cancelled by another process; stopping its run here", job_id)
            task.cancel()

    def _spawn(self, work: Coroutine[object, object, object]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    def _check_idle(self) -> None:
        if not self._running and not _waiting(self._view, self._submitted):
            self._idle.set()
        else:
            self._idle.clear()


def _waiting(view: QueueView, submitted: list[str]) -> list[str]:
    """Return the waiting jobs in claim order as last seen, then those submitted here since."""
    seen = set(view.waiting)
    return [*view.waiting, *(job for job in submitted if job not in seen)]


def _claim(
    conn: sqlite3.Connection, *, owner: str, lease_ms: int, limits: QueueLimits
) -> tuple[list[str], QueueView] | None:
    """Claim what this process may run, and read the queue's view; None when another process holds the claim lock."""
    queries = QueueQueries(conn)
    claimed = queries.claim(owner, None, lease_ms, limits)
    return None if claimed is None else ([c.job_id for c in claimed], queries.view())


def _renew(conn: sqlite3.Connection, *, owner: str, lease_ms: int, running: frozenset[str]) -> dict[str, str]:
    return QueueQueries(conn).renew(owner, None, lease_ms, running)


def _give_back(conn: sqlite3.Connection, *, job_id: str, owner: str, backoff_ms: int = 0) -> bool:
    return QueueQueries(conn).give_back(job_id, owner, backoff_ms)


def _stop_runs(tasks: Iterable[asyncio.Task[None]], why: str) -> None:
    for task in tasks:
        if not task.done():
            log.warning("stopping the run of %s here: %s", task.get_name(), why)
            task.cancel()


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a shared queue write failed: %s", task.exception())


def shared_scheduler(
    db: Database,
    limits: LimitsConfig,
    lanes: Mapping[str, AdaptiveLimit],
    bus: NotifyBus | None,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> SharedScheduler:
    """Return the shared queue with a lane per adaptive limit (each process's own), woken whenever a limit rises."""
    return with_lanes(
        lambda readers: SharedScheduler(
            db,
            limits.global_concurrency,
            limits.per_member_concurrency,
            lanes=readers,
            bus=bus,
            lease_seconds=lease_seconds,
        ),
        lanes,
    )


def share_caches(bus: NotifyBus, *, drops: list[Callable[[int | None], None]]) -> Callable[[], None]:
    """Drop a server's cached settings and policies when another process changes them (NOTIFY on `atelier_settings`).

    Each of `drops` forgets one cache's row of the server (None: every server, after the bus reconnected). Returns the
    function that unsubscribes.
    """

    def dropped(payload: str | None) -> None:
        guild = None if payload is None or not payload.isdigit() else int(payload)
        for drop in drops:
            drop(guild)

    return bus.subscribe(SETTINGS_CHANNEL, dropped)


def cache_drops(
    options: ServerOptions, policy: Policy, moderation: ModerationRules
) -> list[Callable[[int | None], None]]:
    """Return what a settings NOTIFY drops: the server options, the channel and role policy, the moderation rules."""
    return [options.invalidate, policy.cache.invalidate, moderation.cache.invalidate]
