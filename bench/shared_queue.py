"""Benchmark the shared job queue on PostgreSQL: claims per second over 1 and 3 processes, and the NOTIFY wake latency.

Usage: python bench/shared_queue.py --postgres URL [--jobs 600] [--processes 1 3]

URL names an existing database on the server to use; each level runs in a fresh database created beside it (and
dropped after). A "process" here is its own `Database` handle (its own connection and worker thread) in this Python
process, as the tests' two-process harness has them; each loops: claim (global limit 16, per member 2) → finish the
claimed jobs (state `succeeded` and `give_back`, one unit per job, as a run's end is) until the queue is empty. Prints
jobs/s, the claim unit's p50/p99, and the time from a job's commit (`queued`, NOTIFY) until another process's
`NotifyBus` hears it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from _postgres import fresh_database

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.notify import NotifyBus
from bot.storage.queue import QUEUE_CHANNEL, QueueLimits, QueueQueries
from bot.storage.rows import JobState, NewJob

LIMITS = QueueLimits(global_limit=16, per_member=2)
LEASE_MS = 30_000


def new_job(member: int) -> NewJob:
    return NewJob(
        member_id=member,
        guild_id=1,
        channel_id=2,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt="bench",
        estimate=11_000,
    )


async def worker(db: Database, owner: str, claim_ms: list[float]) -> int:
    done = 0
    while True:
        now = int(time.time() * 1000)
        started = time.perf_counter()
        claimed = await db.run(lambda conn, now=now: QueueQueries(conn).claim(owner, now, LEASE_MS, LIMITS))
        claim_ms.append((time.perf_counter() - started) * 1000)
        if claimed is None:  # another process is claiming
            await asyncio.sleep(0.001)
            continue
        if not claimed:
            left = await db.run(
                lambda conn: conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0],
                write=False,
            )
            if not left:
                return done
            await asyncio.sleep(0.001)
            continue

        async def finish(job_id: str) -> None:
            def unit(conn: object) -> None:
                JobQueries(conn).update_state(job_id, JobState.SUCCEEDED, datetime.now(UTC))  # type: ignore[arg-type]
                QueueQueries(conn).give_back(job_id, owner)  # type: ignore[arg-type]

            await db.run(unit)  # type: ignore[arg-type]

        await asyncio.gather(*(finish(c.job_id) for c in claimed))
        done += len(claimed)


async def level(url: str, processes: int, jobs: int) -> None:
    with fresh_database(url, f"bench_queue_{processes}") as target:
        handles = [await Database.open(target) for _ in range(processes)]
        try:
            for start in range(0, jobs, 100):
                batch = [new_job(member) for member in range(start, min(jobs, start + 100))]

                def insert(conn: object, batch: list[NewJob] = batch) -> None:
                    for job in batch:
                        JobQueries(conn).insert(job, datetime.now(UTC))  # type: ignore[arg-type]

                await handles[0].run(insert)  # type: ignore[arg-type]
            claim_ms: list[float] = []
            started = time.perf_counter()
            done = await asyncio.gather(*(worker(db, f"p{n}", claim_ms) for n, db in enumerate(handles)))
            seconds = time.perf_counter() - started
            quantiles = statistics.quantiles(claim_ms, n=100)
            print(
                f"{processes} process(es): {sum(done)} jobs in {seconds:.2f}s = {sum(done) / seconds:,.0f} jobs/s;"
                f" claim unit p50 {statistics.median(claim_ms):.2f} ms, p99 {quantiles[98]:.2f} ms;"
                f" per process {done}"
            )
            await wake_latency(target, handles[0])
        finally:
            for db in handles:
                await db.close()


async def wake_latency(url: str, db: Database) -> None:
    bus = NotifyBus(url)
    heard: asyncio.Queue[float] = asyncio.Queue()
    bus.subscribe(QUEUE_CHANNEL, lambda _payload: heard.put_nowait(time.perf_counter()))
    await bus.start()
    try:
        waits = []
        for member in range(50):
            job = new_job(10_000 + member)
            sent = time.perf_counter()
            await db.run(lambda conn, job=job: JobQueries(conn).insert(job, datetime.now(UTC)))  # type: ignore[misc]
            waits.append((await asyncio.wait_for(heard.get(), 5) - sent) * 1000)
        print(
            f"  NOTIFY wake: job commit -> heard by another connection: p50 {statistics.median(waits):.2f} ms,"
            f" max {max(waits):.2f} ms (50 jobs; includes the insert unit)"
        )
    finally:
        await bus.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", metavar="URL", required=True, help="a database URL on the server to use")
    parser.add_argument("--jobs", type=int, default=600, help="jobs per level (default 600)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 3], help="processes per level (default 1 3)")
    args = parser.parse_args()
    for processes in args.processes:
        await level(args.postgres, processes, args.jobs)


if __name__ == "__main__":
    asyncio.run(main())
