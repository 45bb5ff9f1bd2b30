"""Repositories: all of Atelier's SQL, one method per query, `?` parameters, dataclasses out.

Two layers, one set of queries:
- `*Queries` classes wrap a `sqlite3.Connection` that is inside a transaction opened by `Database.run()`. They are
  synchronous and compose: the ledger checks a budget, writes a hold and creates the job row in one transaction, on
  one trip to the database thread.
- `*Repository` classes are the async faces for code that needs one query at a time (`await jobs.get(job_id)`);
  each method runs the matching `*Queries` method in its own transaction.

Times are stored as integer Unix milliseconds (UTC) and returned as aware `datetime`s.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.jobs.state import JobState
from bot.storage.database import Database

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
MS_PER_DAY = 86_400_000
"""Milliseconds in a UTC day; the ledger's daily totals are keyed by `effective_at // MS_PER_DAY`."""


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def to_ms(moment: datetime) -> int:
    """Convert an aware datetime to integer Unix milliseconds (exact, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes stored in the database must be timezone-aware")
    return (moment - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Convert integer Unix milliseconds to an aware UTC datetime."""
    return _EPOCH + ms * _MS


def _opt_from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else from_ms(ms)


def new_job_id() -> str:
    """Return a fresh job id: 12 lower-case hex characters, short enough for Discord `custom_id`s (100 chars)."""
    return secrets.token_hex(6)


# --- meta ---------------------------------------------------------------------------------------------------------


class MetaQueries:
    """The `meta` key/value table (for example the Discord client's command-sync hash)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        """Return the value stored under `key`, or None."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous value."""
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it existed."""
        return self._conn.execute("DELETE FROM meta WHERE key = ?", (key,)).rowcount > 0


class MetaRepository:
    """Async face of `MetaQueries`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str) -> str | None:
        """Return the value stored under `key`, or None."""
        return await self._db.run(lambda conn: MetaQueries(conn).get(key), write=False)

    async def set(self, key: str, value: str) -> None:
        """Store `value` under `key`, replacing any previous value."""
        await self._db.run(lambda conn: MetaQueries(conn).set(key, value))

    async def delete(self, key: str) -> bool:
        """Remove `key`; True if it existed."""
        return await self._db.run(lambda conn: MetaQueries(conn).delete(key))


# --- guild settings and budget rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A server's stored budget settings (absent until an admin first changes one)."""

    guild_id: int
    period: str
    default_allowance: int
    server_cap: int | None
    updated_at: datetime
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """A member's stored override: kind `amount` (with an amount), `unlimited` or `blocked`."""

    guild_id: int
    member_id: int
    kind: str
    amount: int | None


@dataclass(frozen=True, slots=True)
class MemberRules:
    """The rows that decide one member's limit: (period, default allowance, cap) if the server has settings."""

    settings: tuple[str, int, int | None] | None
    override: OverrideRow | None
    best_role_allowance: int | None


def _guild_settings(row: sqlite3.Row) -> GuildSettings:
    return GuildSettings(
        guild_id=row["guild_id"],
        period=row["period"],
        default_allowance=row["default_allowance"],
        server_cap=row["server_cap"],
        updated_at=from_ms(row["updated_at"]),
        updated_by=row["updated_by"],
    )


class GuildSettingsQueries:
    """The `guild_settings` table: one row per server that changed its budget settings."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, guild_id: int) -> GuildSettings | None:
        """Return the server's row, or None if it still uses the config file's defaults."""
        row = self._conn.execute("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        return None if row is None else _guild_settings(row)

    def ensure(self, guild_id: int, period: str, default_allowance: int, server_cap: int | None, at: datetime) -> None:
        """Create the server's row from these (config) values if it has none yet."""
        self._conn.execute(
            "INSERT INTO guild_settings (guild_id, period, default_allowance, server_cap, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO NOTHING",
            (guild_id, period, default_allowance, server_cap, to_ms(at)),
        )

    def update_period(self, guild_id: int, period: str, at: datetime, actor_id: int | None) -> None:
        """Change the budget period."""
        self._conn.execute(
            "UPDATE guild_settings SET period = ?, updated_at = ?, updated_by = ? WHERE guild_id = ?",
            (period, to_ms(at), actor_id, guild_id),
        )

    def update_default_allowance(self, guild_id: int, amount: int, at: datetime, actor_id: int | None) -> None:
        """Change the default allowance per member."""
        self._conn.execute(
            "UPDATE guild_settings SET default_allowance = ?, updated_at = ?, updated_by = ? WHERE guild_id = ?",
            (amount, to_ms(at), actor_id, guild_id),
        )

    def update_server_cap(self, guild_id: int, amount: int | None, at: datetime, actor_id: int | None) -> None:
        """Change (or with None remove) the server cap."""
        self._conn.execute(
            "UPDATE guild_settings SET server_cap = ?, updated_at = ?, updated_by = ? WHERE guild_id = ?",
            (amount, to_ms(at), actor_id, guild_id),
        )


class BudgetRuleQueries:
    """Role allowances and member overrides."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def role_allowances(self, guild_id: int) -> dict[int, int]:
        """Return every role allowance of the server, by role id."""
        rows = self._conn.execute(
            "SELECT role_id, amount FROM role_allowances WHERE guild_id = ? ORDER BY role_id", (guild_id,)
        ).fetchall()
        return {int(row[0]): int(row[1]) for row in rows}

    def member_rules(self, guild_id: int, member_id: int, role_ids: Sequence[int]) -> MemberRules:
        """Read, in one statement, everything that sets one member's limit: server settings, override, best role."""
        marks = ", ".join("?" * len(role_ids)) or "NULL"
        row = self._conn.execute(
            "SELECT s.period, s.default_allowance, s.server_cap, s.guild_id IS NOT NULL, o.kind, o.amount,"
            f" (SELECT MAX(amount) FROM role_allowances WHERE guild_id = ? AND role_id IN ({marks}))"
            " FROM (SELECT 1) LEFT JOIN guild_settings AS s ON s.guild_id = ?"
            " LEFT JOIN member_overrides AS o ON o.guild_id = ? AND o.member_id = ?",
            (guild_id, *role_ids, guild_id, guild_id, member_id),
        ).fetchone()
        settings = (row[0], row[1], row[2]) if row[3] else None
        override = None if row[4] is None else OverrideRow(guild_id, member_id, row[4], row[5])
        return MemberRules(settings, override, row[6])

    def set_role(self, guild_id: int, role_id: int, amount: int, at: datetime, actor_id: int | None) -> None:
        """Give a role an allowance (replacing its previous one)."""
        self._conn.execute(
            "INSERT INTO role_allowances (guild_id, role_id, amount, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, role_id) DO UPDATE SET"
            " amount = excluded.amount, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (guild_id, role_id, amount, to_ms(at), actor_id),
        )

    def delete_role(self, guild_id: int, role_id: int) -> bool:
        """Remove a role's allowance; True if it had one."""
        cursor = self._conn.execute(
            "DELETE FROM role_allowances WHERE guild_id = ? AND role_id = ?", (guild_id, role_id)
        )
        return cursor.rowcount > 0

    def member_overrides(self, guild_id: int) -> list[OverrideRow]:
        """Return every member override of the server."""
        rows = self._conn.execute(
            "SELECT member_id, kind, amount FROM member_overrides WHERE guild_id = ? ORDER BY member_id", (guild_id,)
        ).fetchall()
        return [OverrideRow(guild_id, row[0], row[1], row[2]) for row in rows]

    def set_member(
        self, guild_id: int, member_id: int, kind: str, amount: int | None, at: datetime, actor_id: int | None
    ) -> None:
        """Set a member's override (replacing any previous one)."""
        self._conn.execute(
            "INSERT INTO member_overrides (guild_id, member_id, kind, amount, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, member_id) DO UPDATE SET kind = excluded.kind,"
            " amount = excluded.amount, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (guild_id, member_id, kind, amount, to_ms(at), actor_id),
        )

    def delete_member(self, guild_id: int, member_id: int) -> bool:
        """Remove a member's override; True if there was one."""
        cursor = self._conn.execute(
            "DELETE FROM member_overrides WHERE guild_id = ? AND member_id = ?", (guild_id, member_id)
        )
        return cursor.rowcount > 0


class GuildSettingsRepository:
    """Async face of `GuildSettingsQueries` for reading (changes go through `bot.billing.budgets.Budgets`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> GuildSettings | None:
        """Return the server's stored settings, or None."""
        return await self._db.run(lambda conn: GuildSettingsQueries(conn).get(guild_id), write=False)


class BudgetRuleRepository:
    """Async face of `BudgetRuleQueries` for reading (changes go through `bot.billing.budgets.Budgets`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def role_allowances(self, guild_id: int) -> dict[int, int]:
        """Return every role allowance of the server, by role id."""
        return await self._db.run(lambda conn: BudgetRuleQueries(conn).role_allowances(guild_id), write=False)

    async def member_overrides(self, guild_id: int) -> list[OverrideRow]:
        """Return every member override of the server."""
        return await self._db.run(lambda conn: BudgetRuleQueries(conn).member_overrides(guild_id), write=False)


# --- jobs ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job about to be stored: the request's parameters and its estimate."""

    member_id: int
    guild_id: int | None
    channel_id: int | None
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int
    prompt: str
    estimate: int
    state: JobState = JobState.QUEUED
    references: tuple[str, ...] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)
    parent_job_id: str | None = None
    interaction_token: str | None = field(default=None, repr=False)  # lets anyone edit the response: keep out of logs
    interaction_expires_at: datetime | None = None
    id: str = field(default_factory=new_job_id)


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job (contract §2)."""

    id: str
    state: JobState
    guild_id: int | None
    channel_id: int | None
    member_id: int
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int
    prompt: str
    references: tuple[str, ...]
    extras: dict[str, Any]
    parent_job_id: str | None
    estimate: int
    cost: int | None
    task_uuid: str | None
    error: str | None
    interaction_token: str | None = field(repr=False)  # lets anyone edit the response: keep it out of logs
    interaction_expires_at: datetime | None
    result_message_id: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    delivered_at: datetime | None


def job_from_row(row: sqlite3.Row) -> Job:
    """Build a `Job` from a `SELECT * FROM jobs` row."""
    extras = json.loads(row["extras"])
    references = tuple(str(ref) for ref in extras.pop("references", ()))
    return Job(
        id=row["id"],
        state=JobState(row["state"]),
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        member_id=row["member_id"],
        model=ModelName(row["model"]),
        size=Size(row["size"]),
        quality=Quality(row["quality"]),
        background=Background(row["background"]),
        format=OutputFormat(row["format"]),
        count=row["count"],
        prompt=row["prompt"],
        references=references,
        extras=extras,
        parent_job_id=row["parent_job_id"],
        estimate=row["estimate"],
        cost=row["cost"],
        task_uuid=row["task_uuid"],
        error=row["error"],
        interaction_token=row["interaction_token"],
        interaction_expires_at=_opt_from_ms(row["interaction_expires_at"]),
        result_message_id=row["result_message_id"],
        created_at=from_ms(row["created_at"]),
        updated_at=from_ms(row["updated_at"]),
        finished_at=_opt_from_ms(row["finished_at"]),
        delivered_at=_opt_from_ms(row["delivered_at"]),
    )


def _extras_json(job: NewJob) -> str:
    if "references" in job.extras:
        raise ValueError("job extras must not use the key 'references'; pass references separately")
    return json.dumps({"references": list(job.references), **job.extras}, separators=(",", ":"))


_UNFINISHED = "('awaiting_approval', 'queued', 'submitted')"


class JobQueries:
    """The `jobs` table.

    Listings order by `created_at` and then by `rowid`, the insertion order: job ids are random, so ordering by id
    would shuffle the jobs created in the same millisecond.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def insert(self, job: NewJob, at: datetime) -> Job:
        """Store a new job; raises `sqlite3.IntegrityError` if its id is taken."""
        at_ms = to_ms(at)
        finished = at_ms if job.state.is_finished else None
        self._conn.execute(
            "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format,"
            " count, prompt, extras, parent_job_id, estimate, interaction_token, interaction_expires_at,"
            " created_at, updated_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.state.value,
                job.guild_id,
                job.channel_id,
                job.member_id,
                job.model.value,
                job.size.value,
                job.quality.value,
                job.background.value,
                job.format.value,
                job.count,
                job.prompt,
                _extras_json(job),
                job.parent_job_id,
                job.estimate,
                job.interaction_token,
                None if job.interaction_expires_at is None else to_ms(job.interaction_expires_at),
                at_ms,
                at_ms,
                finished,
            ),
        )
        created = self.get(job.id)
        if created is None:  # pragma: no cover - the row was inserted by the statement above
            raise sqlite3.IntegrityError(f"job {job.id} vanished after insert")
        return created

    def get(self, job_id: str) -> Job | None:
        """Return the job, or None."""
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else job_from_row(row)

    def update_state(
        self,
        job_id: str,
        state: JobState,
        at: datetime,
        *,
        error: str | None = None,
        expected: Collection[JobState] | None = None,
    ) -> bool:
        """Move the job to `state` (only from one of `expected`, if given); True if a row changed.

        Entering a finished state records `finished_at`; `error` is stored as given (None clears it).
        """
        at_ms = to_ms(at)
        finished = at_ms if state.is_finished else None
        sql = "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?"
        params: list[Any] = [state.value, error, at_ms, finished, job_id]
        if expected is not None:
            allowed = [s.value for s in expected]
            if not allowed:
                return False
            sql += f" AND state IN ({', '.join('?' * len(allowed))})"
            params.extend(allowed)
        return self._conn.execute(sql, params).rowcount > 0

    def set_task_uuid(self, job_id: str, task_uuid: str, at: datetime) -> bool:
        """Record the Runware task UUID (before submitting, so a restart polls instead of paying twice)."""
        cursor = self._conn.execute(
            "UPDATE jobs SET task_uuid = ?, updated_at = ? WHERE id = ?", (task_uuid, to_ms(at), job_id)
        )
        return cursor.rowcount > 0

    def set_cost(self, job_id: str, cost: int, at: datetime) -> bool:
        """Record the cost Runware reported, in micro-dollars."""
        cursor = self._conn.execute("UPDATE jobs SET cost = ?, updated_at = ? WHERE id = ?", (cost, to_ms(at), job_id))
        return cursor.rowcount > 0

    def set_interaction(self, job_id: str, token: str | None, expires_at: datetime | None, at: datetime) -> bool:
        """Record (or clear) the interaction token used to edit the original response, and its expiry."""
        cursor = self._conn.execute(
            "UPDATE jobs SET interaction_token = ?, interaction_expires_at = ?, updated_at = ? WHERE id = ?",
            (token, None if expires_at is None else to_ms(expires_at), to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def mark_delivered(self, job_id: str, message_id: int | None, at: datetime) -> bool:
        """Record delivery once: True the first time, False if it was already delivered (or the job is unknown)."""
        cursor = self._conn.execute(
            "UPDATE jobs SET delivered_at = ?, result_message_id = ?, updated_at = ?"
            " WHERE id = ? AND delivered_at IS NULL",
            (to_ms(at), message_id, to_ms(at), job_id),
        )
        return cursor.rowcount > 0

    def list_unfinished(self) -> list[Job]:
        """Return the jobs a restart must resume (awaiting approval, queued or submitted), oldest first."""
        rows = self._conn.execute(
            f"SELECT * FROM jobs WHERE state IN {_UNFINISHED} ORDER BY created_at, rowid"
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def list_recent_for_member(self, guild_id: int | None, member_id: int, limit: int) -> list[Job]:
        """Return the member's most recent jobs in the server, newest first."""
        rows = self._conn.execute(
            "SELECT * FROM jobs WHERE guild_id IS ? AND member_id = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (guild_id, member_id, limit),
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def delete(self, job_id: str) -> bool:
        """Delete the job row (its ledger entries stay); True if it existed."""
        return self._conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0


class JobRepository:
    """Async face of `JobQueries`: one transaction per call."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def create(self, job: NewJob) -> Job:
        """Store a new job and return it as stored."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueries(conn).insert(job, at))

    async def get(self, job_id: str) -> Job | None:
        """Return the job, or None."""
        return await self._db.run(lambda conn: JobQueries(conn).get(job_id), write=False)

    async def update_state(
        self,
        job_id: str,
        state: JobState,
        *,
        error: str | None = None,
        expected: Collection[JobState] | None = None,
    ) -> bool:
        """Move the job to `state` (only from one of `expected`, if given); True if a row changed."""
        at = self._clock()
        return await self._db.run(
            lambda conn: JobQueries(conn).update_state(job_id, state, at, error=error, expected=expected)
        )

    async def set_task_uuid(self, job_id: str, task_uuid: str) -> bool:
        """Record the Runware task UUID before submitting."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueries(conn).set_task_uuid(job_id, task_uuid, at))

    async def set_cost(self, job_id: str, cost: int) -> bool:
        """Record the cost Runware reported, in micro-dollars."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueries(conn).set_cost(job_id, cost, at))

    async def set_interaction(self, job_id: str, token: str | None, expires_at: datetime | None) -> bool:
        """Record (or clear) the interaction token and its expiry."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueries(conn).set_interaction(job_id, token, expires_at, at))

    async def mark_delivered(self, job_id: str, message_id: int | None) -> bool:
        """Record delivery once; True the first time."""
        at = self._clock()
        return await self._db.run(lambda conn: JobQueries(conn).mark_delivered(job_id, message_id, at))

    async def list_unfinished(self) -> list[Job]:
        """Return the jobs a restart must resume, oldest first."""
        return await self._db.run(lambda conn: JobQueries(conn).list_unfinished(), write=False)

    async def list_recent_for_member(self, guild_id: int | None, member_id: int, limit: int = 10) -> list[Job]:
        """Return the member's most recent jobs in the server, newest first."""
        return await self._db.run(
            lambda conn: JobQueries(conn).list_recent_for_member(guild_id, member_id, limit), write=False
        )

    async def delete(self, job_id: str) -> bool:
        """Delete the job row (its ledger entries stay); True if it existed."""
        return await self._db.run(lambda conn: JobQueries(conn).delete(job_id))


# --- ledger -------------------------------------------------------------------------------------------------------


class EntryKind(StrEnum):
    """Kinds of ledger rows: a hold reserves, a settle spends and ends the hold, a release ends it, a grant adds."""

    HOLD = "hold"
    SETTLE = "settle"
    RELEASE = "release"
    GRANT = "grant"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of the append-only ledger (see the `ledger` table in migrations/0001_initial.sql)."""

    id: int
    guild_id: int
    member_id: int
    job_id: str | None
    kind: EntryKind
    amount: int
    released: int
    overrun: int
    reason: str | None
    actor_id: int | None
    effective_at: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over a span of days: spent (charges), reserved (open holds) and granted (grants, signed)."""

    spent: int = 0
    reserved: int = 0
    granted: int = 0


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """A member's totals and their whole server's, over the same days."""

    member: Totals
    server: Totals


@dataclass(frozen=True, slots=True)
class OpenHold:
    """A hold not yet settled or released, with what the jobs table says about its job (None: no such row)."""

    entry: LedgerEntry
    job_state: JobState | None
    job_cost: int | None


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
    )


_TOTALS_FROM_LEDGER = (
    "SELECT guild_id, member_id, effective_at / 86400000 AS day,"
    " SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END) AS spent,"
    " SUM(CASE WHEN kind = 'hold' THEN amount ELSE -released END) AS reserved,"
    " SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END) AS granted"
    " FROM ledger GROUP BY guild_id, member_id, effective_at / 86400000"
)


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
    ) -> LedgerEntry:
        """Append one entry (the trigger adds it to the daily totals) and return it."""
        effective_ms, created_ms = to_ms(effective_at), to_ms(created_at)
        cursor = self._conn.execute(
            "INSERT INTO ledger (guild_id, member_id, job_id, kind, amount, released, overrun, reason, actor_id,"
            " effective_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        )

    def entries_for_job(self, job_id: str) -> list[LedgerEntry]:
        """Return the job's entries (at most one of each kind), oldest first."""
        rows = self._conn.execute("SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [_entry(row) for row in rows]

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

    def open_holds(self) -> list[OpenHold]:
        """Return every hold not yet settled or released, with its job's state and cost (None: no job row)."""
        rows = self._conn.execute(
            "SELECT h.*, j.state AS job_state, j.cost AS job_cost FROM ledger AS h"
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
        return int(row[0])

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


class LedgerRepository:
    """Async, read-only face of `LedgerQueries` (money moves only through `bot.billing.ledger.Ledger`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def entries_for_job(self, job_id: str) -> list[LedgerEntry]:
        """Return the job's entries, oldest first."""
        return await self._db.run(lambda conn: LedgerQueries(conn).entries_for_job(job_id), write=False)

    async def open_holds(self) -> list[OpenHold]:
        """Return every hold not yet settled or released."""
        return await self._db.run(lambda conn: LedgerQueries(conn).open_holds(), write=False)

    async def count_totals_mismatches(self) -> int:
        """Count daily-total rows that disagree with the ledger (0 when sound)."""
        return await self._db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches(), write=False)


# --- reports ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Charges (settlements) of one member for one model on one UTC day."""

    day: int
    member_id: int
    model: str
    jobs: int
    spent: int
    overrun: int


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
