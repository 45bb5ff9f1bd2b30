"""Team pools (`channel_pools`), the pools each hold counts against (`hold_pools`), the allowance warnings.

Schema versions 9 and 13; `allowance_warnings` remembers who was warned at 80% of their allowance in which period.

`PoolQueries` runs inside the units of `bot.billing.pools.Pools` and of the ledger's reservation (which reads the
pools that apply in the same transaction as it checks and holds, and links the hold to them); the per-day pool totals
live with the ledger (`bot.storage.ledger.LedgerQueries.pool_totals`), kept by triggers over both tables.
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

    def of_places(self, guild_id: int, places: Sequence[int]) -> list[PoolRow]:
        """Return the pools set on any of `places` (a channel, then what encloses it), innermost first."""
        if not places:
            return []
        marks = ", ".join("?" * len(places))
        rows = self._conn.execute(
            f"SELECT * FROM channel_pools WHERE guild_id = ? AND pool_id IN ({marks})",
            (guild_id, *places),
        ).fetchall()
        found = {row["pool_id"]: _pool(row) for row in rows}
        return [found[place] for place in dict.fromkeys(places) if place in found]

    def link_hold(self, job_id: str, pool_ids: Sequence[int]) -> None:
        """Record that the job's hold counts against these pools (its settle and release rows then count too)."""
        self._conn.executemany(
            "INSERT OR IGNORE INTO hold_pools (job_id, pool_id) VALUES (?, ?)", [(job_id, pool) for pool in pool_ids]
        )

    def of_hold(self, job_id: str) -> list[int]:
        """Return the pools the job's hold counts against, by id."""
        rows = self._conn.execute("SELECT pool_id FROM hold_pools WHERE job_id = ? ORDER BY pool_id", (job_id,))
        return [row[0] for row in rows.fetchall()]

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
