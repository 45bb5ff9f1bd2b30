"""Ledger throughput: reserve+settle pairs per second and latency at 1, 8 and 64 concurrent tasks on one file.

Run from the repository root, after `pip install -e '.[test]'` there: `python bench/ledger.py` (options: --seconds,
--levels, --members; `--postgres URL` measures PostgreSQL instead: URL names a server's existing database that the
user may CREATE DATABASE from, and each level gets a fresh database there, dropped after). Each level uses a fresh
database (a file in a temporary directory), one server with a cap, 1,000 members with role allowances, and the real
config price table; every pair is a full budget check + hold, then a settlement to the cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from _checkout import ROOT, require_this_checkout

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
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
        admin.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
    try:
        yield urlunsplit(urlsplit(postgres)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]


async def run_level(
    concurrency: int, seconds: float, members: int, folder: Path, group_commit: bool, postgres: str | None = None
) -> dict[str, float]:
    config = load_app_config(ROOT / "config" / "atelier.toml")
    estimate = Pricing(config).estimate(ModelName.GPT_IMAGE_1_MINI, Quality.MEDIUM, Size.SQUARE, 1, 120, 0)
    with level_database(folder, f"bench_{concurrency}_{int(group_commit)}", postgres) as target:
        return await measure(target, concurrency, seconds, members, group_commit, config, estimate)


async def measure(
    target: Path | str, concurrency: int, seconds: float, members: int, group_commit: bool, config: Any, estimate: int
) -> dict[str, float]:
    async with await Database.open(target, group_commit=group_commit) as db:
        budgets = Budgets(db, config)
        ledger = Ledger(db, budgets)
        await budgets.set_default(GUILD, 1_000_000_000)
        await budgets.set_role(GUILD, ROLES[0], 2_000_000_000)
        await budgets.set_cap(GUILD, 1_000_000_000_000)
        counter = itertools.count()
        pair_ms: list[float] = []
        reserve_ms: list[float] = []
        settle_ms: list[float] = []
        measuring = False
        stop_at = 0.0

        async def worker(worker_id: int) -> None:
            while time.perf_counter() < stop_at:
                n = next(counter)
                job_id = f"b{worker_id}-{n}"
                member = 3_000_000_000_000_000_000 + n % members
                t0 = time.perf_counter()
                await ledger.reserve(job_id, GUILD, member, ROLES, estimate)
                t1 = time.perf_counter()
                await ledger.settle(job_id, estimate - n % 3)
                t2 = time.perf_counter()
                if measuring:
                    reserve_ms.append((t1 - t0) * 1000)
                    settle_ms.append((t2 - t1) * 1000)
                    pair_ms.append((t2 - t0) * 1000)

        stop_at = time.perf_counter() + min(1.0, seconds / 3)  # warm-up: caches, WAL growth, first checkpoints
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        measuring = True
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "pairs": len(pair_ms),
        "pairs_per_s": len(pair_ms) / elapsed,
        "pair_p50": statistics.median(pair_ms),
        "pair_p99": percentile(pair_ms, 0.99),
        "reserve_p99": percentile(reserve_ms, 0.99),
        "settle_p99": percentile(settle_ms, 0.99),
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
    args = parser.parse_args()
    require_this_checkout()
    engine = f"SQLite {sqlite3.sqlite_version}, one file per level in a temp dir"
    if args.postgres:
        with psycopg.connect(args.postgres) as conn:
            version = conn.info.server_version
            engine = f"PostgreSQL {version // 10000}.{version % 10000}, one database per level"
    print(
        f"python {platform.python_version()}, {engine}, {os.cpu_count()} CPUs, {args.seconds:g} s per level, "
        f"group commit {'off' if args.no_group_commit else 'on'}"
    )
    columns = ("tasks", 5), ("pairs", 8), ("pairs/s", 9), ("pair p50 ms", 12), ("pair p99 ms", 12)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'reserve p99':>12} {'settle p99':>11}")
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
        for level in args.levels:
            r = await run_level(level, args.seconds, args.members, Path(tmp), not args.no_group_commit, args.postgres)
            print(
                f"{r['concurrency']:>5} {r['pairs']:>8} {r['pairs_per_s']:>9.0f} {r['pair_p50']:>12.2f} "
                f"{r['pair_p99']:>12.2f} {r['reserve_p99']:>12.2f} {r['settle_p99']:>11.2f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
