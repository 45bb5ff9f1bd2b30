"""Crash safety: a process SIGKILLed in the middle of a stream of ledger operations leaves a file that opens,
migrates and reconciles to a consistent state."""

from __future__ import annotations

import asyncio
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.settings import load_app_config
from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from bot.storage.migrate import latest_version
from bot.storage.rows import ACTIVE_STATES, JobState
from tests.billing.conftest import CONFIG_PATH, ROOT
from tests.billing.invariants import check_ledger_consistent, sums_by_member

pytestmark = pytest.mark.slow


def run_until_killed(path: Path, seed: int, kill_after: int) -> None:
    """Start the worker, wait until it has finished `kill_after` lifecycles, then SIGKILL it at a random instant."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.billing.crash_worker", str(path), str(seed)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if not line or int(line) >= kill_after:
                    break
        time.sleep(random.Random(seed).uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read() if process.stderr else ""
    assert process.returncode == -signal.SIGKILL, f"the worker ended by itself ({process.returncode}): {stderr}"


async def reopen_and_check(path: Path) -> None:
    """Open (migrating), reconcile, and assert the ledger, the totals and the jobs agree."""
    config = load_app_config(CONFIG_PATH)
    async with await Database.open(path) as db:
        assert db.version == latest_version()
        ledger = Ledger(db, Budgets(db, config))
        await ledger.reconcile()

        def check(conn: sqlite3.Connection) -> None:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            check_ledger_consistent(conn)
            open_holds = LedgerQueries(conn).open_holds()
            for hold in open_holds:
                assert hold.job_state in ACTIVE_STATES, f"hold of {hold.entry.job_id} left open: {hold.job_state}"
            open_reserved = sum(hold.entry.amount for hold in open_holds)
            assert sum(sums.reserved for sums in sums_by_member(conn).values()) == open_reserved
            jobs = conn.execute(
                "SELECT j.id, j.state, j.cost, s.amount AS settled, r.id AS released, h.id AS held FROM jobs AS j"
                " LEFT JOIN ledger AS h ON h.job_id = j.id AND h.kind = 'hold'"
                " LEFT JOIN ledger AS s ON s.job_id = j.id AND s.kind = 'settle'"
                " LEFT JOIN ledger AS r ON r.job_id = j.id AND r.kind = 'release'"
            ).fetchall()
            assert jobs, "the worker never got going"
            for job in jobs:
                assert job["held"] is not None, f"job {job['id']} exists without its hold"
                state = JobState(job["state"])
                if state is JobState.SUCCEEDED:
                    assert job["settled"] == job["cost"], f"succeeded job {job['id']} not charged its cost"
                elif state is JobState.FAILED:
                    assert job["released"] is not None and job["settled"] is None
                else:
                    assert job["settled"] is None and job["released"] is None

        await db.run(check)


def test_sigkill_mid_stream_leaves_a_file_that_reconciles_to_a_consistent_state(tmp_path: Path) -> None:
    """Five runs on one file, each killed mid-stream and checked; each restart reconciles what the last one left."""
    path = tmp_path / "crash.sqlite3"
    for seed, kill_after in enumerate((100, 300, 200, 50, 400)):
        run_until_killed(path, seed, kill_after)
        asyncio.run(reopen_and_check(path))
