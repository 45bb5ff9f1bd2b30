"""Migration 0013 (`hold_pools`): holds made in a team pool before it count against that pool afterwards too."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bot.clock import MS_PER_DAY, to_ms
from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import EntryKind

BEFORE = 12
"""The schema version before `hold_pools` (migration 0013)."""
AT = to_ms(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))
POOL = 700


def seed_pool_holds(path: Path) -> None:
    """A pool with an open hold (job1) and a settled one (job2), written as schema version 12 wrote them."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(
            "INSERT INTO channel_pools (guild_id, pool_id, amount, updated_at) VALUES (1, ?, 1000000, ?)", (POOL, AT)
        )
        rows = [
            ("job1", "hold", 30000, 0),
            ("job2", "hold", 20000, 0),
            ("job2", "settle", 15000, 20000),
        ]
        for job, kind, amount, released in rows:
            conn.execute(
                "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, released, effective_at, created_at,"
                " pool_id) VALUES (1, 10, ?, ?, ?, ?, ?, ?, ?)",
                (job, kind, amount, released, AT, AT, POOL),
            )


async def test_holds_in_a_pool_before_the_migration_are_linked_and_end_exactly(tmp_path: Path) -> None:
    """After the upgrade each old pooled hold is linked to its pool, the pool's totals are unchanged and sound, and
    releasing the open hold afterwards ends it in the pool."""
    path = tmp_path / "pools.sqlite3"
    async with await Database.open(path, migrate_to=BEFORE):
        pass
    seed_pool_holds(path)
    day = AT // MS_PER_DAY
    async with await Database.open(path) as db:
        links = await db.run(
            lambda conn: conn.execute("SELECT job_id, pool_id FROM hold_pools ORDER BY job_id").fetchall()
        )
        assert [tuple(row) for row in links] == [("job1", POOL), ("job2", POOL)]
        totals = await db.run(lambda conn: LedgerQueries(conn).pool_totals(1, POOL, day, day + 1))
        assert (totals.spent, totals.reserved) == (15000, 30000)
        assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches()) == 0

        at = datetime.fromtimestamp(AT / 1000, UTC)

        def release(conn: sqlite3.Connection) -> None:
            LedgerQueries(conn).insert(
                guild_id=1,
                member_id=10,
                job_id="job1",
                kind=EntryKind.RELEASE,
                amount=30000,
                released=30000,
                effective_at=at,
                created_at=at,
                pool_id=POOL,
            )

        await db.run(release)
        totals = await db.run(lambda conn: LedgerQueries(conn).pool_totals(1, POOL, day, day + 1))
        assert (totals.spent, totals.reserved) == (15000, 0)
        assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches()) == 0
