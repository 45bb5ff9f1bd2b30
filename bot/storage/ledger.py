"""The append-only `ledger` table, its per-day totals (member, server, team pool), and the spend report's queries.

`LedgerQueries` works inside the transactions of `bot.billing.ledger.Ledger` (money moves only through it);
`ReportQueries` reads spend per member for `bot.billing.reports`. Both run in `Database.run()`; there is no async
face, since nothing outside billing reads the ledger.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.clock import from_ms, to_ms
from bot.storage.rows import (
    ChargeRow,
    EntryKind,
    JobState,
    LedgerEntry,
    OpenHold,
    PeriodTotals,
    SpendRow,
    Totals,
)


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        member_id=row["member_id"],
        job_id=row["job_id"],
        kind=EntryKind(row["kind"]),
        amount=row["amount"],
        released=row["released"],
        overrun=row["overrun"],
        reason=row["reason"],
        actor_id=row["actor_id"],
        effective_at=from_ms(row["effective_at"]),
        created_at=from_ms(row["created_at"]),
        pool_id=row["pool_id"],
        adjust_seq=row["adjust_seq"],
    )


_TOTALS_FROM_LEDGER = (
    "SELECT guild_id, member_id, effective_at / 86400000 AS day,"
    " SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END) AS spent,"
    " SUM(CASE WHEN kind IN ('hold', 'adjust') THEN amount ELSE -released END) AS reserved,"
    " SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END) AS granted"
    " FROM ledger GROUP BY guild_id, member_id, effective_at / 86400000"
)

_POOL_TOTALS_FROM_LEDGER = (
    "SELECT l.guild_id, hp.pool_id, l.effective_at / 86400000 AS day,"
    " SUM(CASE WHEN l.kind = 'settle' THEN l.amount ELSE 0 END) AS spent,"
    " SUM(CASE WHEN l.kind IN ('hold', 'adjust') THEN l.amount ELSE -l.released END) AS reserved"
    " FROM ledger AS l JOIN hold_pools AS hp ON hp.job_id = l.job_id"
    " WHERE l.kind IN ('hold', 'adjust', 'settle', 'release')"
    " GROUP BY l.guild_id, hp.pool_id, l.effective_at / 86400000"
)
"""Each pool's per-day totals summed afresh: every hold, adjust, settle and release row of a job, in each pool it is
linked to (`hold_pools`)."""


class LedgerQueries:
    """The append-only `ledger` and the daily totals its trigger keeps."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def insert(
        self,
        *,
        guild_id: int,
        member_id: int,
        job_id: str | None,
        kind: EntryKind,
        amount: int,
        effective_at: datetime,
        created_at: datetime,
        released: int = 0,
        overrun: int = 0,
        reason: str | None = None,
        actor_id: int | None = None,
        pool_id: int | None = None,
        adjust_seq: int | None = None,
    ) -> LedgerEntry:
        """Append one entry (the triggers add it to the daily totals, and its pool's) and return it."""
        effective_ms, created_ms = to_ms(effective_at), to_ms(created_at)
        cursor = self._conn.execute(
            "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, released, overrun, reason, actor_id,"
            " effective_at, created_at, pool_id, adjust_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                guild_id,
                member_id,
                job_id,
                kind.value,
                amount,
                released,
                overrun,
                reason,
                actor_id,
                effective_ms,
                created_ms,
                pool_id,
                adjust_seq,
            ),
        )
        entry_id = cursor.lastrowid
        if entry_id is None:  # pragma: no cover - an INSERT into a rowid table always sets it
            raise sqlite3.IntegrityError("ledger insert returned no row id")
        return LedgerEntry(
            id=entry_id,
            guild_id=guild_id,
            member_id=member_id,
            job_id=job_id,
            kind=kind,
            amount=amount,
            released=released,
            overrun=overrun,
            reason=reason,
            actor_id=actor_id,
            effective_at=from_ms(effective_ms),
            created_at=from_ms(created_ms),
            pool_id=pool_id,
            adjust_seq=adjust_seq,
        )

    def entries_for_job(self, job_id: str) -> list[LedgerEntry]:
        """Return the job's entries (at most one of each kind but `adjust`), oldest first."""
        rows = self._conn.execute("SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [_entry(row) for row in rows]

    def guild_of_job(self, job_id: str) -> int | None:
        """Return the server whose budget the job's hold is in (None: the job holds nothing)."""
        row = self._conn.execute("SELECT guild_id FROM ledger WHERE job_id = ? AND kind = 'hold'", (job_id,)).fetchone()
        return None if row is None else int(row[0])

    def guilds_with_open_holds(self) -> list[int]:
        """Return the servers that have a hold not yet settled or released, in ascending order."""
        rows = self._conn.execute(
            "SELECT DISTINCT h.guild_id FROM ledger AS h WHERE h.kind = 'hold' AND NOT EXISTS"
            " (SELECT 1 FROM ledger AS c WHERE c.job_id = h.job_id AND c.kind IN ('settle', 'release'))"
            " ORDER BY h.guild_id"
        ).fetchall()
        return [int(row[0]) for row in rows]

    def totals(self, guild_id: int, member_id: int, first_day: int, end_day: int) -> PeriodTotals:
        """Sum the member's and the whole server's daily totals over days [first_day, end_day) (since 1970-01-01)."""
        row = self._conn.execute(
            "SELECT m.spent, m.reserved, m.granted, g.spent, g.reserved, g.granted FROM"
            " (SELECT COALESCE(SUM(spent), 0) AS spent, COALESCE(SUM(reserved), 0) AS reserved,"
            "  COALESCE(SUM(granted), 0) AS granted FROM member_day_totals"
            "  WHERE guild_id = ?1 AND member_id = ?2 AND day >= ?3 AND day < ?4) AS m,"
            " (SELECT COALESCE(SUM(spent), 0) AS spent, COALESCE(SUM(reserved), 0) AS reserved,"
            "  COALESCE(SUM(granted), 0) AS granted FROM guild_day_totals"
            "  WHERE guild_id = ?1 AND day >= ?3 AND day < ?4) AS g",
            (guild_id, member_id, first_day, end_day),
        ).fetchone()
        return PeriodTotals(Totals(row[0], row[1], row[2]), Totals(row[3], row[4], row[5]))

    def pool_totals(self, guild_id: int, pool_id: int, first_day: int, end_day: int) -> Totals:
        """Sum a team pool's daily totals (spent, reserved) over days [first_day, end_day)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(spent), 0), COALESCE(SUM(reserved), 0) FROM pool_day_totals"
            " WHERE guild_id = ? AND pool_id = ? AND day >= ? AND day < ?",
            (guild_id, pool_id, first_day, end_day),
        ).fetchone()
        return Totals(row[0], row[1])

    def open_holds(self) -> list[OpenHold]:
        """Return every hold not yet settled or released, with its job's state and cost (None: no job row)."""
        rows = self._conn.execute(
            "SELECT h.*, j.state AS job_state, j.cost AS job_cost, h.amount + COALESCE((SELECT SUM(a.amount)"
            " FROM ledger AS a WHERE a.job_id = h.job_id AND a.kind = 'adjust'), 0) AS held FROM ledger AS h"
            " LEFT JOIN jobs AS j ON j.id = h.job_id"
            " WHERE h.kind = 'hold' AND NOT EXISTS"
            " (SELECT 1 FROM ledger AS c WHERE c.job_id = h.job_id AND c.kind IN ('settle', 'release'))"
            " ORDER BY h.id"
        ).fetchall()
        return [
            OpenHold(
                entry=_entry(row),
                job_state=None if row["job_state"] is None else JobState(row["job_state"]),
                job_cost=row["job_cost"],
                held=row["held"],
            )
            for row in rows
        ]

    def count_totals_mismatches(self) -> int:
        """Count daily-total rows (member and server) that differ from a fresh sum of the ledger; 0 when sound."""
        row = self._conn.execute(
            f"WITH fresh AS ({_TOTALS_FROM_LEDGER}),"
            " fresh_guild AS (SELECT guild_id, day, SUM(spent), SUM(reserved), SUM(granted) FROM fresh"
            " GROUP BY guild_id, day),"
            " member_t AS (SELECT guild_id, member_id, day, spent, reserved, granted FROM member_day_totals),"
            " guild_t AS (SELECT guild_id, day, spent, reserved, granted FROM guild_day_totals)"
            " SELECT (SELECT COUNT(*) FROM (SELECT guild_id, member_id, day FROM"
            "  (SELECT * FROM fresh EXCEPT SELECT * FROM member_t)"
            "  UNION SELECT guild_id, member_id, day FROM (SELECT * FROM member_t EXCEPT SELECT * FROM fresh)))"
            " + (SELECT COUNT(*) FROM (SELECT guild_id, day FROM"
            "  (SELECT * FROM fresh_guild EXCEPT SELECT * FROM guild_t)"
            "  UNION SELECT guild_id, day FROM (SELECT * FROM guild_t EXCEPT SELECT * FROM fresh_guild)))"
        ).fetchone()
        pools = self._conn.execute(
            f"WITH fresh AS ({_POOL_TOTALS_FROM_LEDGER}),"
            " stored AS (SELECT guild_id, pool_id, day, spent, reserved FROM pool_day_totals)"
            " SELECT COUNT(*) FROM (SELECT guild_id, pool_id, day FROM"
            " (SELECT * FROM fresh EXCEPT SELECT * FROM stored)"
            " UNION SELECT guild_id, pool_id, day FROM (SELECT * FROM stored EXCEPT SELECT * FROM fresh))"
        ).fetchone()
        return int(row[0]) + int(pools[0])

    def rebuild_totals(self) -> None:
        """Recompute both daily-total tables from the ledger."""
        self._conn.execute("DELETE FROM member_day_totals")
        self._conn.execute("DELETE FROM guild_day_totals")
        self._conn.execute(
            "INSERT INTO member_day_totals (guild_id, member_id, day, spent, reserved, granted)"
            f" SELECT guild_id, member_id, day, spent, reserved, granted FROM ({_TOTALS_FROM_LEDGER})"
        )
        self._conn.execute(
            "INSERT INTO guild_day_totals (guild_id, day, spent, reserved, granted)"
            " SELECT guild_id, day, SUM(spent), SUM(reserved), SUM(granted) FROM member_day_totals"
            " GROUP BY guild_id, day"
        )
        self._conn.execute("DELETE FROM pool_day_totals")
        self._conn.execute(
            "INSERT INTO pool_day_totals (guild_id, pool_id, day, spent, reserved)"
            f" SELECT guild_id, pool_id, day, spent, reserved FROM ({_POOL_TOTALS_FROM_LEDGER})"
        )


class ReportQueries:
    """Aggregations of charges for the spend reports."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def spend_rows(self, guild_id: int, start: datetime, end: datetime) -> list[SpendRow]:
        """Sum charges counted in [start, end) by day, member and model (`unknown` if the job row is gone)."""
        rows = self._conn.execute(
            "SELECT l.effective_at / 86400000 AS day, l.member_id, COALESCE(j.model, 'unknown') AS model,"
            " COUNT(*) AS jobs, SUM(l.amount) AS spent, SUM(l.overrun) AS overrun"
            " FROM ledger AS l LEFT JOIN jobs AS j ON j.id = l.job_id"
            " WHERE l.guild_id = ? AND l.kind = 'settle' AND l.effective_at >= ? AND l.effective_at < ?"
            " GROUP BY day, l.member_id, model ORDER BY day, l.member_id, model",
            (guild_id, to_ms(start), to_ms(end)),
        ).fetchall()
        return [SpendRow(row[0], row[1], row[2], row[3], row[4], row[5]) for row in rows]

    def charges(self, guild_id: int, start: datetime, end: datetime) -> list[ChargeRow]:
        """Every charge (settle row) counted in [start, end), oldest first, with its job's channel and options."""
        rows = self._conn.execute(
            "SELECT l.job_id, l.member_id, l.amount, l.effective_at, l.pool_id, j.channel_id, j.model, j.size,"
            " j.quality, COALESCE((SELECT COUNT(*) FROM job_results AS r WHERE r.job_id = l.job_id), 0) AS results,"
            " j.count FROM ledger AS l LEFT JOIN jobs AS j ON j.id = l.job_id"
            " WHERE l.guild_id = ? AND l.kind = 'settle' AND l.effective_at >= ? AND l.effective_at < ?"
            " ORDER BY l.effective_at, l.id",
            (guild_id, to_ms(start), to_ms(end)),
        ).fetchall()
        return [
            ChargeRow(
                job_id=row["job_id"],
                member_id=row["member_id"],
                amount=row["amount"],
                effective_at=from_ms(row["effective_at"]),
                channel_id=row["channel_id"],
                pool_id=row["pool_id"],
                model=row["model"],
                size=row["size"],
                quality=row["quality"],
                # The images Runware produced (stored per result); the count asked for if none were stored.
                images=row["results"] or row["count"],
            )
            for row in rows
        ]
