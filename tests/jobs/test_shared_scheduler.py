"""`SharedScheduler` on both engines, two `Database` handles on one database standing for two processes: the heartbeat
keeps a lease, stops a run whose lease another process took, and claims what a dead owner left (the fallback when no
NOTIFY comes); positions and limits come from the database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from bot.jobs.shared import SharedScheduler
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.queue import QueueQueries
from tests.job_writes import small_job
from tests.postgres_server import ENGINES, PostgresServer

LEASE = 0.6


@pytest_asyncio.fixture(params=ENGINES)
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two handles on one freshly migrated database (an SQLite file, or a PostgreSQL database)."""
    if request.param == "sqlite":
        target = str(tmp_path / "atelier.sqlite3")
        async with await Database.open(target) as first, await Database.open(target) as second:
            yield first, second
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    if server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {server.problem}", pytrace=False)
    name = server.create_database()
    try:
        async with await Database.open(server.url(name)) as first, await Database.open(server.url(name)) as second:
            yield first, second
    finally:
        server.drop_database(name)


async def queue_job(db: Database, member: int) -> str:
    job = small_job(member_id=member)
    await db.run(lambda conn: JobQueries(conn).insert(job, datetime.now(UTC)))
    return job.id


async def test_a_run_whose_lease_another_process_took_is_stopped_here_and_runs_there(
    two: tuple[Database, Database],
) -> None:
    """An owner that fell behind (its leases ran out) loses the job to another process; its heartbeat stops its run."""
    db_a, db_b = two
    job_id = await queue_job(db_a, 1)
    started, stopped = asyncio.Event(), asyncio.Event()

    async def run_here(job: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    behind = SharedScheduler(db_a, 4, 4, lease_seconds=LEASE)
    behind.start(run_here)
    await asyncio.wait_for(started.wait(), 5)
    # A's lease ran out without A noticing (as if its last renewal had been lost): anyone may claim the job now.
    await db_b.run(lambda conn: conn.execute("UPDATE jobs SET lease_until = 0 WHERE id = ?", (job_id,)))
    taken: list[str] = []

    async def run_there(job: str) -> None:
        taken.append(job)
        await asyncio.Event().wait()

    other = SharedScheduler(db_b, 4, 4, lease_seconds=LEASE)
    try:
        other.start(run_there)
        await asyncio.wait_for(stopped.wait(), 5)
        assert taken == [job_id]
        owner, _, _ = await db_b.run(lambda conn: QueueQueries(conn).lease_of(job_id), write=False)
        assert owner == other.owner
    finally:
        await behind.stop(grace=0)
        await other.stop(grace=0)


async def test_the_heartbeat_keeps_a_live_lease_and_claims_what_a_dead_owner_left(
    two: tuple[Database, Database],
) -> None:
    """While its owner beats, a job stays its; once the owner is gone (no beat, no give-back) the other process's
    heartbeat claims it without any NOTIFY, after the lease has run out."""
    db_a, db_b = two
    job_id = await queue_job(db_a, 1)
    runs: dict[str, list[str]] = {"a": [], "b": []}

    def runner(name: str):  # type: ignore[no-untyped-def]
        async def run(job: str) -> None:
            runs[name].append(job)
            await asyncio.Event().wait()

        return run

    first = SharedScheduler(db_a, 4, 4, lease_seconds=LEASE)
    first.start(runner("a"))
    await asyncio.sleep(0.1)
    assert runs["a"] == [job_id]
    second = SharedScheduler(db_b, 4, 4, lease_seconds=LEASE)
    second.start(runner("b"))
    try:
        await asyncio.sleep(3 * LEASE)  # several beats: the live lease holds
        assert runs["b"] == []
        assert second.running_count == 1 and second.positions() == {}
        # The first process dies (its heartbeat stops, nothing is given back): as a SIGKILL leaves it, in-process.
        assert first._heartbeat is not None
        first._heartbeat.cancel()
        died_at = time.monotonic()
        async with asyncio.timeout(5):
            while not runs["b"]:  # noqa: ASYNC110 - the run list is filled by the scheduler
                await asyncio.sleep(0.02)
        assert runs["b"] == [job_id]
        # The last beat was at most a third of a lease before the death: the lease held at least two thirds after it.
        assert time.monotonic() - died_at >= LEASE * 2 / 3 - 0.05, "not before the lease had run out"
    finally:
        for task in list(first._running.values()):
            task.cancel()
        await second.stop(grace=0)


async def test_a_process_whose_renewals_fail_stops_its_runs_before_another_may_claim_them(
    two: tuple[Database, Database],
) -> None:
    """Renewals failing (here: A's database handle is gone) for the lease less a beat: A stops its run itself, so the
    process that claims the job once the lease has run out never runs it alongside A."""
    db_a, db_b = two
    job_id = await queue_job(db_a, 1)
    a_running = asyncio.Event()
    overlap: list[bool] = []

    async def run_a(job: str) -> None:
        a_running.set()
        try:
            await asyncio.Event().wait()
        finally:
            a_running.clear()

    async def run_b(job: str) -> None:
        overlap.append(a_running.is_set())
        await asyncio.Event().wait()

    a = SharedScheduler(db_a, 4, 4, lease_seconds=LEASE)
    a.start(run_a)
    await asyncio.wait_for(a_running.wait(), 5)
    await db_a.close()
    b = SharedScheduler(db_b, 4, 4, lease_seconds=LEASE)
    try:
        b.start(run_b)
        async with asyncio.timeout(5):
            while not overlap:  # noqa: ASYNC110 - filled by the scheduler
                await asyncio.sleep(0.01)
        assert overlap == [False], f"job {job_id} ran in two processes at once"
    finally:
        await a.stop(grace=0)
        await b.stop(grace=0)


async def test_the_global_limit_holds_when_the_process_clock_jumps_ahead(
    two: tuple[Database, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leases are written and judged by the database's clock: a process clock a minute ahead takes no live job."""
    db_a, db_b = two
    first = await queue_job(db_a, 1)
    runs: list[str] = []
    started = asyncio.Event()

    async def run(job: str) -> None:
        runs.append(job)
        started.set()
        await asyncio.Event().wait()

    a = SharedScheduler(db_a, 1, 1, lease_seconds=30)
    a.start(run)
    await asyncio.wait_for(started.wait(), 5)
    assert runs == [first]
    await queue_job(db_a, 2)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 60)
    b = SharedScheduler(db_b, 1, 1, lease_seconds=30)
    try:
        b.start(run)
        await asyncio.sleep(0.5)
        # Neither the second job (the global limit is 1) nor the first again (its lease is alive) may start.
        assert runs == [first], f"global limit 1 and a live lease, but these runs started: {runs}"
    finally:
        await a.stop(grace=0)
        await b.stop(grace=0)


async def test_a_graceful_stop_keeps_its_leases_while_its_runs_finish_in_the_grace(
    two: tuple[Database, Database],
) -> None:
    """stop(grace) renews the leases through the grace: a grace longer than the lease lets nobody take the job."""
    db_a, db_b = two
    await queue_job(db_a, 1)
    a_running = asyncio.Event()
    overlap: list[bool] = []
    finished: list[str] = []

    async def run_a(job: str) -> None:
        a_running.set()
        try:
            await asyncio.sleep(4 * LEASE)  # finishes within the grace
            finished.append(job)
        finally:
            a_running.clear()

    async def run_b(job: str) -> None:
        overlap.append(a_running.is_set())
        await asyncio.Event().wait()

    a = SharedScheduler(db_a, 4, 4, lease_seconds=LEASE)
    a.start(run_a)
    await asyncio.wait_for(a_running.wait(), 5)
    b = SharedScheduler(db_b, 4, 4, lease_seconds=LEASE)
    b.start(run_b)
    try:
        await a.stop(grace=10)
        assert len(finished) == 1, "the stop cancelled the run instead of letting it finish within its grace"
        await asyncio.sleep(0.2)
        assert True not in overlap, "another process ran the job while the stopping one still ran it in its grace"
    finally:
        await b.stop(grace=0)
