"""Ledger throughput: reserve+settle pairs per second and latency at 1, 8 and 64 concurrent tasks on one file.

Run from the repository root, after `pip install -e '.[test]'` there: `python bench/ledger.py` (options: --seconds,
--levels, --members; `--postgres URL` measures PostgreSQL instead: URL names a server's existing database that the
user may CREATE DATABASE from, and each level gets a fresh database there, dropped after). Each level uses a fresh
database (a file in a temporary directory), one server with a cap, 1,000 members with role allowances, and the real
config price table; every pair is a full budget check + hold, then a settlement to the cost.

`--processes N` runs each level in N OS processes on the one database (each process: its own `Database`, that many
concurrent tasks; they start together after all have connected); pairs/s is their sum, the latencies are merged.
With PostgreSQL every reserve and settle also holds the server's budget lock across the processes, so one server
(the default) is the worst case; `--guilds N` spreads the members over N servers (member n in server n mod N).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from _checkout import ROOT, require_this_checkout
from _postgres import fresh_database

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.pricing import Pricing
from bot.catalog import ModelName, Quality, Size
from bot.settings import load_app_config
from bot.storage.database import Database

GUILD = 1_100_000_000_000_000_001
ROLES = [2_200_000_000_000_000_001, 2_200_000_000_000_000_002]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


@contextlib.contextmanager
def level_database(folder: Path, name: str, postgres: str | None) -> Iterator[Path | str]:
    """An SQLite file in `folder`, or a fresh PostgreSQL database on the server of `postgres` (dropped after)."""
    if postgres is None:
        yield folder / f"{name}.sqlite3"
        return
    with fresh_database(postgres, name) as url:
        yield url


def price() -> tuple[Any, int]:
    config = load_app_config(ROOT / "config" / "atelier.toml")
    return config, Pricing(config).estimate(ModelName.GPT_IMAGE_1_MINI, Quality.MEDIUM, Size.SQUARE, 1, 120, 0)


async def run_level(
    concurrency: int,
    seconds: float,
    members: int,
    folder: Path,
    group_commit: bool,
    postgres: str | None = None,
    processes: int = 1,
) -> dict[str, float]:
    config, estimate = price()
    with level_database(folder, f"bench_{concurrency}_{int(group_commit)}_{processes}", postgres) as target:
        if processes == 1:
            return await measure(target, concurrency, seconds, members, group_commit, config, estimate)
        async with await Database.open(target) as db:
            await prepare(Budgets(db, config))
            await db.run(partial(fill_history, HISTORY, estimate))
        return await asyncio.to_thread(in_processes, target, concurrency, seconds, members, group_commit, processes)


GUILDS = 1
"""How many servers the members are spread over (`--guilds`)."""

HISTORY = 0
"""Finished jobs already in the ledger before a level starts (`--history`): a hold and its settle each."""


def fill_history(jobs: int, amount: int, conn: sqlite3.Connection) -> None:
    """Add `jobs` finished jobs (a hold and its settle, 40 days ago) to the ledger, as a long-running bot has."""
    past = int((time.time() - 40 * 86_400) * 1000)
    rows = []
    for index in range(jobs):
        job, member, at = f"past{index:09d}", 3_000_000_000_000_000_000 + index % 5000, past + index
        rows.append((GUILD, member, job, "hold", amount, 0, at, at))
        rows.append((GUILD, member, job, "settle", amount, amount, at, at))
    conn.executemany(
        "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, released, effective_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


async def prepare(budgets: Budgets) -> None:
    for guild in range(GUILD, GUILD + GUILDS):
        await budgets.set_default(guild, 1_000_000_000)
        await budgets.set_role(guild, ROLES[0], 2_000_000_000)
        await budgets.set_cap(guild, 1_000_000_000_000)


def in_processes(
    target: Path | str, concurrency: int, seconds: float, members: int, group_commit: bool, processes: int
) -> dict[str, float]:
    """Run the level in `processes` worker processes started together; sum their pairs/s, merge their latencies."""
    command = [sys.executable, __file__, "--worker", str(target), "--seconds", str(seconds)]
    command += ["--members", str(members), "--levels", str(concurrency), "--guilds", str(GUILDS)]
    if not group_commit:
        command.append("--no-group-commit")
    workers = [
        subprocess.Popen([*command, "--prefix", f"p{i}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i in range(processes)
    ]
    for worker in workers:  # all connected and warmed up before any measures
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(worker.communicate(timeout=seconds * 10 + 60)[0]) for worker in workers]
    pair_ms = [sample for result in results for sample in result["pair_ms"]]
    return {
        "concurrency": concurrency,
        "pairs": len(pair_ms),
        "pairs_per_s": sum(len(result["pair_ms"]) / result["elapsed"] for result in results),
        "pair_p50": statistics.median(pair_ms),
        "pair_p99": percentile(pair_ms, 0.99),
        "reserve_p99": percentile([sample for result in results for sample in result["reserve_ms"]], 0.99),
        "settle_p99": percentile([sample for result in results for sample in result["settle_ms"]], 0.99),
    }


async def worker_process(args: argparse.Namespace) -> None:
    """One process of `--processes`: connect, warm up, say `ready`, wait for `go`, measure, print JSON."""
    config, estimate = price()
    async with await Database.open(args.worker, group_commit=not args.no_group_commit) as db:
        ledger = Ledger(db, Budgets(db, config))
        loop = Loop(ledger, estimate, args.members, args.prefix)
        await loop.run(args.levels[0], min(1.0, args.seconds / 3), measuring=False)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        elapsed = await loop.run(args.levels[0], args.seconds, measuring=True)
    print(json.dumps({**loop.samples, "elapsed": elapsed}), flush=True)


class Loop:
    """Tasks that each loop reserve then settle until the time is up, recording the latencies while measuring."""

    def __init__(self, ledger: Ledger, estimate: int, members: int, prefix: str) -> None:
        self.ledger, self.estimate, self.members, self.prefix = ledger, estimate, members, prefix
        self.counter = itertools.count()
        self.samples: dict[str, list[float]] = {"pair_ms": [], "reserve_ms": [], "settle_ms": []}

    async def run(self, concurrency: int, seconds: float, *, measuring: bool) -> float:
        started = time.perf_counter()
        stop_at = started + seconds

        async def task(task_id: int) -> None:
            while time.perf_counter() < stop_at:
                n = next(self.counter)
                job_id = f"{self.prefix}b{task_id}-{n}"
                member = 3_000_000_000_000_000_000 + n % self.members
                t0 = time.perf_counter()
                await self.ledger.reserve(job_id, GUILD + n % self.members % GUILDS, member, ROLES, self.estimate)
                t1 = time.perf_counter()
                await self.ledger.settle(job_id, self.estimate - n % 3)
                t2 = time.perf_counter()
                if measuring:
                    self.samples["reserve_ms"].append((t1 - t0) * 1000)
                    self.samples["settle_ms"].append((t2 - t1) * 1000)
                    self.samples["pair_ms"].append((t2 - t0) * 1000)

        await asyncio.gather(*(task(i) for i in range(concurrency)))
        return time.perf_counter() - started


async def measure(
    target: Path | str, concurrency: int, seconds: float, members: int, group_commit: bool, config: Any, estimate: int
) -> dict[str, float]:
    async with await Database.open(target, group_commit=group_commit) as db:
        budgets = Budgets(db, config)
        await prepare(budgets)
        await db.run(partial(fill_history, HISTORY, estimate))
        loop = Loop(Ledger(db, budgets), estimate, members, "")
        await loop.run(concurrency, min(1.0, seconds / 3), measuring=False)  # warm-up: caches, WAL growth, checkpoints
        elapsed = await loop.run(concurrency, seconds, measuring=True)
    pair_ms = loop.samples["pair_ms"]
    return {
        "concurrency": concurrency,
        "pairs": len(pair_ms),
        "pairs_per_s": len(pair_ms) / elapsed,
        "pair_p50": statistics.median(pair_ms),
        "pair_p99": percentile(pair_ms, 0.99),
        "reserve_p99": percentile(loop.samples["reserve_ms"], 0.99),
        "settle_p99": percentile(loop.samples["settle_ms"], 0.99),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per level (default 5)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 64], help="concurrent tasks (default 1 8 64)")
    parser.add_argument("--members", type=int, default=1000, help="distinct members in the server (default 1000)")
    parser.add_argument(
        "--no-group-commit", action="store_true", help="give every operation its own commit (for comparison)"
    )
    parser.add_argument("--postgres", metavar="URL", help="measure PostgreSQL: a database URL on the server to use")
    parser.add_argument("--guilds", type=int, default=1, help="servers the members are spread over (default 1)")
    parser.add_argument("--processes", type=int, default=1, help="OS processes per level, each with the tasks (1)")
    parser.add_argument(
        "--history", type=int, default=0, help="finished jobs already in the ledger at each level (default 0)"
    )
    parser.add_argument("--worker", metavar="DATABASE", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    require_this_checkout()
    global GUILDS, HISTORY
    GUILDS = max(1, args.guilds)
    HISTORY = max(0, args.history)
    if args.worker:
        await worker_process(args)
        return
    engine = f"SQLite {sqlite3.sqlite_version}, one file per level in a temp dir"
    if args.postgres:
        with psycopg.connect(args.postgres) as conn:
            version = conn.info.server_version
            engine = f"PostgreSQL {version // 10000}.{version % 10000}, one database per level"
    print(
        f"python {platform.python_version()}, {engine}, {os.cpu_count()} CPUs, {args.seconds:g} s per level, "
        f"group commit {'off' if args.no_group_commit else 'on'}, {args.processes} process(es), tasks per process, "
        f"{GUILDS} server(s), {HISTORY} finished jobs in the ledger first"
    )
    columns = ("tasks", 5), ("pairs", 8), ("pairs/s", 9), ("pair p50 ms", 12), ("pair p99 ms", 12)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'reserve p99':>12} {'settle p99':>11}")
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        for level in args.levels:
            r = await run_level(
                level, args.seconds, args.members, Path(tmp), not args.no_group_commit, args.postgres, args.processes
            )
            print(
                f"{r['concurrency']:>5} {r['pairs']:>8} {r['pairs_per_s']:>9.0f} {r['pair_p50']:>12.2f} "
                f"{r['pair_p99']:>12.2f} {r['reserve_p99']:>12.2f} {r['settle_p99']:>11.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
