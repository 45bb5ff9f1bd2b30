"""The shared job queue's SQL: claims under a lease, heartbeats, slots counted in the database, and notifications.

Every process on one database runs jobs from the same queue, the `jobs` rows themselves: a `queued` or `submitted`
job whose lease is free (never taken, given back, or expired) may be claimed. A claim (`QueueQueries.claim`) is one
unit of work that

1. serialises itself against every other claim (`pg_try_advisory_xact_lock` on PostgreSQL, held to the commit;
   SQLite's write lock already serialises writers), so the counts it reads stay exact until it commits. It never
   waits for the lock: a unit that waited would hold up the rest of its group-committed batch, whose row locks
   another process's batch (holding the claim lock) might be waiting for, a deadlock. When another process is
   claiming, `claim` returns None and the caller tries again a moment later;
2. counts the slots in use: rows with `holds_slot = 1` and a live lease, per member and per provider (a lane), and in
   all (the global limit), across processes;
3. picks the next job, one at a time, by fairness: the member whose last start (`queue_turns.turn`) is oldest goes
   next (a member never started goes first), then within the member a `submitted` job (resumed) before a `queued`
   one, oldest first; members at their limit and full lanes are left out; PostgreSQL locks the row
   `FOR UPDATE ... SKIP LOCKED`;
4. writes the lease (`lease_owner`, `lease_until`, `holds_slot = 1`) and the member's new turn.

The owner's heartbeat (`renew`) moves `lease_until` on; a process that dies stops renewing and its jobs become
claimable when their leases run out. `release_slot` frees the slot when the provider's work is done (the lease stays
until the job is delivered); `give_back` ends the lease when the run ends (or a graceful stop gives them all back,
`give_back_all`), and both announce the freed slot with a NOTIFY in the same transaction (`notify`), as the job
queries announce a job that becomes `queued` (`bot.storage.jobs`) and the audit log a server's changed settings
(`bot.storage.audit`). On SQLite `notify` does nothing (one process: nobody else to tell).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from bot.storage.postgres import PgConnection

QUEUE_CHANNEL = "atelier_queue"
"""NOTIFY channel: a job became claimable or a slot was freed (payload: the job id, informational)."""
CANCEL_CHANNEL = "atelier_cancel"
"""NOTIFY channel: a job was cancelled or rejected by another process (payload: the job id)."""
SETTINGS_CHANNEL = "atelier_settings"
"""NOTIFY channel: a server's settings or policies changed (payload: the guild id)."""

CLAIM_LOCK = 0x4174_656C_6965_7201
"""The advisory lock every claim holds (PostgreSQL), so slot counts and claims are serialised across processes."""

_RUNNABLE = "('queued', 'submitted')"


def is_postgres(conn: sqlite3.Connection | PgConnection) -> bool:
    """Tell whether a unit of work runs on PostgreSQL."""
    return isinstance(conn, PgConnection)


def clock_ms(conn: sqlite3.Connection | PgConnection) -> int:
    """Return the database's clock in Unix milliseconds.

    Every lease is written and judged by it, never by a process's own clock: a process whose clock is ahead would
    otherwise see live leases as expired and break the limits.
    """
    sql = _PG_NOW if is_postgres(conn) else _SQLITE_NOW
    return int(conn.execute(sql).fetchone()[0])


_PG_NOW = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_SQLITE_NOW = "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"


def notify(conn: sqlite3.Connection, channel: str, payload: str = "") -> None:
    """NOTIFY `channel` when the unit's transaction commits (PostgreSQL); nothing on SQLite (one process)."""
    if is_postgres(conn):
        conn.execute("SELECT pg_notify(?, ?)", (channel, payload)).fetchone()


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The limits a claim keeps, counted over every process: in all, per member, per provider lane."""

    global_limit: int
    per_member: int
    lanes: Mapping[str, int] = field(default_factory=dict)
    """A provider's current capacity (its adaptive limit); a provider without one is bound only by the others."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job this process now holds a lease and a slot for."""

    job_id: str
    member_id: int
    provider: str


@dataclass(frozen=True, slots=True)
class QueueView:
    """The queue as every process sees it: the waiting jobs in start order, and the slots in use."""

    waiting: list[str] = field(default_factory=list)
    running: int = 0


class QueueQueries:
    """The shared queue over the `jobs` rows' lease columns and `queue_turns`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def claim(self, owner: str, now_ms: int | None, lease_ms: int, limits: QueueLimits) -> list[Claimed] | None:
        """Claim as many free jobs as the limits allow, fairest first; each gets `owner`'s lease and a slot.

        `now_ms` None: the database's clock (`clock_ms`, what production uses); a number only in tests.
        None when another process is claiming at this moment (PostgreSQL): try again shortly.
        """
        conn = self._conn
        if is_postgres(conn) and not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (CLAIM_LOCK,)).fetchone()[0]:
            return None
        now_ms = clock_ms(conn) if now_ms is None else now_ms
        per_member: dict[int, int] = {}
        per_lane: dict[str, int] = {}
        total = 0
        for member_id, provider, count in conn.execute(
            "SELECT member_id, provider, COUNT(*) FROM jobs WHERE holds_slot = 1 AND lease_until >= ?"
            f" AND state IN {_RUNNABLE} GROUP BY member_id, provider",
            (now_ms,),
        ).fetchall():
            per_member[member_id] = per_member.get(member_id, 0) + count
            per_lane[provider] = per_lane.get(provider, 0) + count
            total += count
        claimed: list[Claimed] = []
        while total < limits.global_limit:
            full_members = sorted(m for m, n in per_member.items() if n >= limits.per_member)
            full_lanes = sorted(lane for lane, cap in limits.lanes.items() if per_lane.get(lane, 0) >= max(1, cap))
            row = self._next(now_ms, full_members, full_lanes)
            if row is None:
                break
            job_id, member_id, provider = str(row[0]), int(row[1]), str(row[2])
            conn.execute(
                "UPDATE jobs SET lease_owner = ?, lease_until = ?, holds_slot = 1 WHERE id = ?",
                (owner, now_ms + lease_ms, job_id),
            )
            turn = conn.execute("SELECT COALESCE(MAX(turn), 0) + 1 FROM queue_turns").fetchone()[0]
            conn.execute(
                "INSERT INTO queue_turns (member_id, turn) VALUES (?, ?)"
                " ON CONFLICT (member_id) DO UPDATE SET turn = excluded.turn",
                (member_id, int(turn)),
            )
            per_member[member_id] = per_member.get(member_id, 0) + 1
            per_lane[provider] = per_lane.get(provider, 0) + 1
            total += 1
            claimed.append(Claimed(job_id, member_id, provider))
        return claimed

    def _next(self, now_ms: int, full_members: list[int], full_lanes: list[str]) -> sqlite3.Row | None:
        sql = (
            "SELECT j.id, j.member_id, j.provider FROM jobs j LEFT JOIN queue_turns t ON t.member_id = j.member_id"
            f" WHERE j.state IN {_RUNNABLE} AND (j.lease_until IS NULL OR j.lease_until < ?)"
        )
        params: list[object] = [now_ms]
        if full_members:
            sql += f" AND j.member_id NOT IN ({', '.join('?' * len(full_members))})"
            params.extend(full_members)
        if full_lanes:
            sql += f" AND j.provider NOT IN ({', '.join('?' * len(full_lanes))})"
            params.extend(full_lanes)
        sql += f" {_FAIR_ORDER} LIMIT 1"
        if is_postgres(self._conn):
            sql += " FOR UPDATE OF j SKIP LOCKED"
        row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def renew(
        self, owner: str, now_ms: int | None, lease_ms: int, running: Collection[str] | None = None
    ) -> dict[str, str]:
        """Move the owner's leases on (heartbeat); return the jobs it still holds, with their states.

        `running`: renew only these jobs (those the owner runs right now); None renews every runnable lease it holds.
        `now_ms` None: the database's clock. A job the owner runs that is missing in the answer was taken by another
        process (its lease had run out).
        """
        now_ms = clock_ms(self._conn) if now_ms is None else now_ms
        sql = f"UPDATE jobs SET lease_until = ? WHERE lease_owner = ? AND state IN {_RUNNABLE}"
        params: list[object] = [now_ms + lease_ms, owner]
        if running is not None:
            ids = sorted(running)
            sql += f" AND id IN ({', '.join('?' * len(ids))})" if ids else " AND 0 = 1"
            params.extend(ids)
        self._conn.execute(sql, params)
        rows = self._conn.execute("SELECT id, state FROM jobs WHERE lease_owner = ?", (owner,)).fetchall()
        return {str(row[0]): str(row[1]) for row in rows}

    def release_slot(self, job_id: str, owner: str) -> bool:
        """Free the job's slot (its images exist); the lease stays until it is delivered. True if it held one."""
        cursor = self._conn.execute(
            "UPDATE jobs SET holds_slot = 0 WHERE id = ? AND lease_owner = ? AND holds_slot = 1", (job_id, owner)
        )
        if cursor.rowcount:
            notify(self._conn, QUEUE_CHANNEL, job_id)
        return bool(cursor.rowcount)

    def give_back(self, job_id: str, owner: str, backoff_ms: int = 0) -> bool:
        """End the owner's lease of a job (its run ended); an unfinished job is free to claim at once.

        `backoff_ms`: only after so long by the database's clock (a run that ended without finishing its job: the job
        is not claimed again in a loop).
        """
        until = clock_ms(self._conn) + backoff_ms if backoff_ms > 0 else None
        cursor = self._conn.execute(
            "UPDATE jobs SET lease_owner = NULL, holds_slot = 0,"
            f" lease_until = CASE WHEN state IN {_RUNNABLE} THEN CAST(? AS BIGINT) ELSE NULL END"
            " WHERE id = ? AND lease_owner = ?",
            (until, job_id, owner),
        )
        if cursor.rowcount:
            notify(self._conn, QUEUE_CHANNEL, job_id)
        return bool(cursor.rowcount)

    def give_back_all(self, owner: str) -> int:
        """End every lease of the owner (a graceful stop): its unfinished jobs go to the other processes at once."""
        cursor = self._conn.execute(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, holds_slot = 0 WHERE lease_owner = ?", (owner,)
        )
        if cursor.rowcount:
            notify(self._conn, QUEUE_CHANNEL, "")
        return int(cursor.rowcount)

    def view(self, now_ms: int | None = None) -> QueueView:
        """Return the waiting jobs in claim order (one per member per round) and the slots in use.

        `now_ms` None: the database's clock.
        """
        now_ms = clock_ms(self._conn) if now_ms is None else now_ms
        rows = self._conn.execute(
            "SELECT j.id, j.member_id FROM jobs j LEFT JOIN queue_turns t ON t.member_id = j.member_id"
            f" WHERE j.state IN {_RUNNABLE} AND (j.lease_until IS NULL OR j.lease_until < ?) {_FAIR_ORDER}",
            (now_ms,),
        ).fetchall()
        queues: dict[int, list[str]] = {}
        for job_id, member_id in rows:
            queues.setdefault(int(member_id), []).append(str(job_id))
        waiting: list[str] = []
        depth = 0
        while True:
            layer = [queue[depth] for queue in queues.values() if depth < len(queue)]
            if not layer:
                break
            waiting.extend(layer)
            depth += 1
        running = self._conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE holds_slot = 1 AND lease_until >= ? AND state IN {_RUNNABLE}", (now_ms,)
        ).fetchone()[0]
        return QueueView(waiting, int(running))

    def lease_of(self, job_id: str) -> tuple[str | None, int | None, bool]:
        """Return the job's lease: its owner, until when (ms), and whether it holds a slot."""
        row = self._conn.execute(
            "SELECT lease_owner, lease_until, holds_slot FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None, None, False
        return row[0], row[1], bool(row[2])


_FAIR_ORDER = "ORDER BY COALESCE(t.turn, 0), CASE j.state WHEN 'submitted' THEN 0 ELSE 1 END, j.created_at, j.id"
"""Oldest last start first (never started: 0), then a member's resumed jobs before their waiting ones, oldest first."""
