"""`Ledger.reconcile` on PostgreSQL while another process is live: a hold opened in another server after reconcile
read the servers to lock is not touched without that server's lock, so a concurrent release there cannot make
start-up fail on the ledger's unique index."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import cast

import psycopg

from bot.billing.budgets import Budgets
from bot.billing.entries import release_in
from bot.billing.ledger import Ledger
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.postgres import PgConnection
from tests.billing.conftest import GUILD, MEMBER, Clock

OTHER_GUILD = 444_444_444_444_444_444


async def _until_a_lock_wait(url: str) -> None:
    """Return once some session of the database waits for a lock (an advisory lock, or a row's transaction)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as watcher:
        for _ in range(500):
            cursor = await watcher.execute(
                "SELECT count(*) FROM pg_locks AS l JOIN pg_database AS d ON d.oid = l.database OR l.database IS NULL"
                " WHERE NOT l.granted AND d.datname = current_database()"
            )
            row = await cursor.fetchone()
            if row is not None and row[0]:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("no session started waiting for a lock")


async def test_reconcile_leaves_a_hold_opened_meanwhile_in_an_unlocked_server_to_its_lock(
    pg_url: str, config: AppConfig, clock: Clock
) -> None:
    """Reconcile locks the servers with an open hold (GUILD) and waits there behind a peer. Meanwhile a live process
    opens a hold in OTHER_GUILD and, under that server's lock, starts releasing it. Reconcile resolves GUILD's hold and
    keeps OTHER_GUILD's untouched (it is the live process's), so it returns without waiting for that process; before,
    it wrote its own release of that hold without the lock, waited on the peer's row in the unique index, and failed
    there once the peer committed."""
    async with await Database.open(pg_url) as starting, await Database.open(pg_url) as live:
        reconciling = Ledger(starting, Budgets(starting, config, clock=clock), clock=clock)
        serving = Ledger(live, Budgets(live, config, clock=clock), clock=clock)
        await serving.reserve("left-by-a-crash", GUILD, MEMBER, [], 100_000)

        holder = PgConnection.connect(pg_url)
        releaser = PgConnection.connect(pg_url)
        try:
            holder.execute("BEGIN")
            holder.execute("SELECT pg_advisory_xact_lock(?)", (GUILD,)).fetchone()
            task = asyncio.create_task(reconciling.reconcile())
            await _until_a_lock_wait(pg_url)  # reconcile read [GUILD] and waits for its lock

            await serving.reserve("opened-meanwhile", OTHER_GUILD, MEMBER, [], 100_000)
            releaser.execute("BEGIN")
            releaser.execute("SELECT pg_advisory_xact_lock(?)", (OTHER_GUILD,)).fetchone()
            assert release_in(cast(sqlite3.Connection, releaser), "opened-meanwhile", clock())

            holder.execute("COMMIT")
            # Reconcile must finish while the releaser's transaction is still open: it leaves that hold alone.
            report = await asyncio.wait_for(task, timeout=10.0)
            releaser.execute("COMMIT")
        finally:
            holder.close()
            releaser.close()

        assert report.released == ["left-by-a-crash"]
        assert "opened-meanwhile" in report.kept
        assert "opened-meanwhile" not in report.released + report.settled

        def releases(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
            rows = conn.execute("SELECT job_id FROM ledger WHERE kind = 'release' ORDER BY job_id").fetchall()
            return [tuple(row) for row in rows]

        assert await live.run(releases, write=False) == [("left-by-a-crash",), ("opened-meanwhile",)]
