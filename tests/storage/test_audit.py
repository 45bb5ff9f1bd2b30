"""The append-only `audit_log`, through `AuditRepository`: newest first, paged, per server, never rewritten."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from bot.clock import utc_now
from bot.storage.audit import AuditRepository
from bot.storage.database import Database


async def test_audit_pages_newest_first_per_server(db: Database) -> None:
    """Entries come back newest first, `offset`/`limit` page through them, other servers' entries stay apart."""
    audit = AuditRepository(db)
    start = utc_now()
    for n in range(5):
        await audit.record(1, 10, "budget", "period", f"v{n}", f"v{n + 1}", start + timedelta(seconds=n))
    await audit.record(2, 20, "settings", "blocklist", None, "spoiler", start)

    first = await audit.page(1, offset=0, limit=2)
    second = await audit.page(1, offset=2, limit=2)

    assert [entry.after for entry in first] == ["v5", "v4"]
    assert [entry.after for entry in second] == ["v3", "v2"]
    assert await audit.count(1) == 5 and await audit.count(2) == 1
    other = (await audit.page(2, offset=0, limit=10))[0]
    assert (other.actor_id, other.area, other.setting, other.before, other.after) == (
        20,
        "settings",
        "blocklist",
        None,
        "spoiler",
    )
    assert abs((other.created_at - start).total_seconds()) < 0.001


async def test_audit_rows_cannot_be_rewritten(db: Database) -> None:
    """An audit row cannot be changed afterwards (a trigger refuses UPDATE)."""
    audit = AuditRepository(db)
    await audit.record(1, 10, "budget", "cap", None, "$5.00", utc_now())

    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await db.run(lambda conn: conn.execute("UPDATE audit_log SET after = 'x'"))
