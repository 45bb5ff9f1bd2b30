"""The `ledger` table: append-only, one row of each kind per job, impossible rows refused by the schema."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import EntryKind

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


async def test_ledger_rows_can_be_neither_changed_nor_deleted(db: Database) -> None:
    """The ledger is append-only, enforced by the schema."""

    def add(conn: sqlite3.Connection) -> None:
        LedgerQueries(conn).insert(
            guild_id=1, member_id=2, job_id="j", kind=EntryKind.HOLD, amount=10, effective_at=NOW, created_at=NOW
        )

    await db.run(add)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.run(lambda conn: conn.execute("UPDATE ledger SET amount = 0"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.run(lambda conn: conn.execute("DELETE FROM ledger"))


async def test_ledger_holds_one_row_of_each_kind_per_job(db: Database) -> None:
    """A second hold (or settle) for the same job violates the idempotency key."""

    def hold(conn: sqlite3.Connection) -> None:
        LedgerQueries(conn).insert(
            guild_id=1, member_id=2, job_id="j", kind=EntryKind.HOLD, amount=10, effective_at=NOW, created_at=NOW
        )

    await db.run(hold)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        await db.run(hold)


@pytest.mark.parametrize(
    ("kind", "amount", "released", "overrun"),
    [
        (EntryKind.HOLD, -1, 0, 0),
        (EntryKind.HOLD, 10, 5, 0),
        (EntryKind.SETTLE, 10**12 + 1, 0, 0),
        (EntryKind.SETTLE, 10, 0, 11),
        (EntryKind.RELEASE, 10, 9, 0),
        (EntryKind.SETTLE, 10, -1, 0),
    ],
)
async def test_ledger_rejects_impossible_rows(
    db: Database, kind: EntryKind, amount: int, released: int, overrun: int
) -> None:
    """Negative holds, absurd amounts and inconsistent released/overrun figures are refused by the schema."""

    def add(conn: sqlite3.Connection) -> None:
        LedgerQueries(conn).insert(
            guild_id=1,
            member_id=2,
            job_id="j",
            kind=kind,
            amount=amount,
            released=released,
            overrun=overrun,
            effective_at=NOW,
            created_at=NOW,
        )

    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        await db.run(add)
