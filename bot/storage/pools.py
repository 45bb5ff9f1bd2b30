"""Team pools (`channel_pools`, schema version 9) and the once-per-period allowance warnings (`allowance_warnings`).

`PoolQueries` runs inside the units of `bot.billing.pools.Pools` and of the ledger's reservation (which reads the
pool that applies in the same transaction as it checks and holds); the per-day pool totals live with the ledger
(`bot.storage.ledger.LedgerQueries.pool_totals`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.clock import from_ms, to_ms
from bot.storage.rows import PoolRow


def _pool(row: sqlite3.Row) -> PoolRow:
    return PoolRow(
        guild_id=row["guild_id"],
        pool_id=row["pool_id"],
        amount=row["amount"],
        updated_at=from_ms(row["updated_at"]),
        updated_by=row["updated_by"],
    )


class PoolQueries:
    """A server's team pools and its members' allowance warnings."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, guild_id: int, pool_id: int) -> PoolRow | None:
        """Return the pool set on this channel or category, or None."""
        row = self._conn.execute(
            "SELECT * FROM channel_pools WHERE guild_id = ? AND pool_id = ?", (guild_id, pool_id)
        ).fetchone()
        return None if row is None else _pool(row)

    def first_of(self, guild_id: int, places: Sequence[int]) -> PoolRow | None:
        """Return the pool of the first of `places` (a channel, then what encloses it) that has one, or None."""
        if not places:
            return None
        marks = ", ".join("?" * len(places))
        rows = self._conn.execute(
            f"SELECT * FROM channel_pools WHERE guild_id = ? AND pool_id IN ({marks})",
            (guild_id, *places),
        ).fetchall()
        found = {row["pool_id"]: _pool(row) for row in rows}
        return next((found[place] for place in places if place in found), None)

    def all(self, guild_id: int) -> list[PoolRow]:
        """Return every pool of the server, by channel id."""
        rows = self._conn.execute(
            "SELECT * FROM channel_pools WHERE guild_id = ? ORDER BY pool_id", (guild_id,)
        ).fetchall()
        return [_pool(row) for row in rows]

    def set(self, guild_id: int, pool_id: int, amount: int, at: datetime, actor_id: int | None) -> None:
        """Create or change the pool of a channel or category."""
        self._conn.execute(
            "INSERT INTO channel_pools (guild_id, pool_id, amount, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, pool_id) DO UPDATE SET amount = excluded.amount,"
            " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (guild_id, pool_id, amount, to_ms(at), actor_id),
        )

    def delete(self, guild_id: int, pool_id: int) -> bool:
        """Remove the pool of a channel or category; True if there was one."""
        cursor = self._conn.execute("DELETE FROM channel_pools WHERE guild_id = ? AND pool_id = ?", (guild_id, pool_id))
        return cursor.rowcount > 0

    def mark_warned(self, guild_id: int, member_id: int, period_start: datetime, at: datetime) -> bool:
        """Remember that the member was warned in the period starting at `period_start`; False if they already were."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO allowance_warnings (guild_id, member_id, period_start, warned_at)"
            " VALUES (?, ?, ?, ?)",
            (guild_id, member_id, to_ms(period_start), to_ms(at)),
        )
        return cursor.rowcount > 0
