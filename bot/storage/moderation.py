"""The moderation tables (schema version 8): mod-log, moderators, place rules, held requests.

The mod-log channel and moderator role, per-place approval and safety rules, and the requests held for a moderator
(`moderation_holds`). Posting a hold's mod-log message is claimed first (`claim_post`, a short claim in `meta`), so
of several processes starting at once only one posts what never reached the mod-log.

`ModerationQueries` runs inside a unit of work (a change and its `audit_log` row are written together; a decision
moves the job and its hold row together); `ModerationRepository` is the async face, one unit per call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.clock import from_ms, optional_from_ms, to_ms, utc_now
from bot.storage.database import Database, Repository
from bot.storage.jobs import JobQueries, job_from_row
from bot.storage.meta import MetaQueries
from bot.storage.rows import Job, JobState

POST_CLAIM_SECONDS = 120.0
"""How long a claim to post a hold's mod-log message lasts: past it (the poster died), another process may post."""


def post_claim_key(job_id: str) -> str:
    """Return the `meta` key of the claim to post the hold of `job_id` to the mod-log."""
    return f"modlog-post:{job_id}"


@dataclass(frozen=True, slots=True)
class ModerationRow:
    """A server's mod-log channel and moderator role (None: not set)."""

    guild_id: int
    modlog_channel_id: int | None
    moderator_role_id: int | None


@dataclass(frozen=True, slots=True)
class PlaceRow:
    """The rules stored on one channel or category; None means no rule of that kind here."""

    guild_id: int
    channel_id: int
    approval_mode: str | None
    approval_above: int | None
    safety: bool | None


@dataclass(frozen=True, slots=True)
class HoldRow:
    """A request held for approval, or a result quarantined by the safety check, and how it was decided."""

    job_id: str
    guild_id: int
    kind: str
    channel_id: int | None
    message_id: int | None
    decision: str | None
    decided_by: int | None
    reason: str | None
    decided_at: datetime | None
    created_at: datetime


def _hold(row: sqlite3.Row) -> HoldRow:
    return HoldRow(
        job_id=row["job_id"],
        guild_id=row["guild_id"],
        kind=row["kind"],
        channel_id=row["channel_id"],
        message_id=row["message_id"],
        decision=row["decision"],
        decided_by=row["decided_by"],
        reason=row["reason"],
        decided_at=optional_from_ms(row["decided_at"]),
        created_at=from_ms(row["created_at"]),
    )


class ModerationQueries:
    """The `moderation_settings`, `moderation_channels` and `moderation_holds` tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------------------------------------------ settings

    def settings(self, guild_id: int) -> ModerationRow:
        """Return the server's mod-log channel and moderator role (both None until set)."""
        row = self._conn.execute(
            "SELECT modlog_channel_id, moderator_role_id FROM moderation_settings WHERE guild_id = ?", (guild_id,)
        ).fetchone()
        if row is None:
            return ModerationRow(guild_id, None, None)
        return ModerationRow(guild_id, row[0], row[1])

    def set_modlog(self, guild_id: int, channel_id: int | None, at: datetime) -> None:
        """Set (or with None, clear) the mod-log channel."""
        self._conn.execute(
            "INSERT INTO moderation_settings (guild_id, modlog_channel_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET modlog_channel_id = excluded.modlog_channel_id,"
            " updated_at = excluded.updated_at",
            (guild_id, channel_id, to_ms(at)),
        )

    def set_moderator_role(self, guild_id: int, role_id: int | None, at: datetime) -> None:
        """Set (or with None, clear) the moderator role."""
        self._conn.execute(
            "INSERT INTO moderation_settings (guild_id, moderator_role_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET moderator_role_id = excluded.moderator_role_id,"
            " updated_at = excluded.updated_at",
            (guild_id, role_id, to_ms(at)),
        )

    def places(self, guild_id: int, channel_ids: Sequence[int]) -> dict[int, PlaceRow]:
        """Return the rules stored on these channels or categories, by id (ids without rules are absent)."""
        if not channel_ids:
            return {}
        marks = ", ".join("?" * len(channel_ids))
        rows = self._conn.execute(
            "SELECT channel_id, approval_mode, approval_above, safety FROM moderation_channels"
            f" WHERE guild_id = ? AND channel_id IN ({marks})",
            (guild_id, *channel_ids),
        ).fetchall()
        return {
            row[0]: PlaceRow(guild_id, row[0], row[1], row[2], None if row[3] is None else bool(row[3])) for row in rows
        }

    def all_places(self, guild_id: int) -> list[PlaceRow]:
        """Return every place of the server that has a rule."""
        rows = self._conn.execute(
            "SELECT channel_id, approval_mode, approval_above, safety FROM moderation_channels WHERE guild_id = ?"
            " ORDER BY channel_id",
            (guild_id,),
        ).fetchall()
        return [PlaceRow(guild_id, r[0], r[1], r[2], None if r[3] is None else bool(r[3])) for r in rows]

    def set_approval(self, guild_id: int, channel_id: int, mode: str, above: int | None, at: datetime) -> None:
        """Store a place's approval rule."""
        self._conn.execute(
            "INSERT INTO moderation_channels (guild_id, channel_id, approval_mode, approval_above, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, channel_id) DO UPDATE SET"
            " approval_mode = excluded.approval_mode, approval_above = excluded.approval_above,"
            " updated_at = excluded.updated_at",
            (guild_id, channel_id, mode, above, to_ms(at)),
        )

    def set_safety(self, guild_id: int, channel_id: int, on: bool, at: datetime) -> None:
        """Store a place's safety rule."""
        self._conn.execute(
            "INSERT INTO moderation_channels (guild_id, channel_id, safety, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id, channel_id) DO UPDATE SET safety = excluded.safety,"
            " updated_at = excluded.updated_at",
            (guild_id, channel_id, int(on), to_ms(at)),
        )

    # --------------------------------------------------------------------------------------------------- holds

    def add_hold(self, job_id: str, guild_id: int, kind: str, at: datetime) -> None:
        """Record a held request or a quarantined result (once per job)."""
        self._conn.execute(
            "INSERT INTO moderation_holds (job_id, guild_id, kind, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (job_id) DO NOTHING",
            (job_id, guild_id, kind, to_ms(at)),
        )

    def set_hold_message(self, job_id: str, channel_id: int, message_id: int) -> None:
        """Record where the hold's mod-log message is (and end the claim to post it)."""
        self._conn.execute(
            "UPDATE moderation_holds SET channel_id = ?, message_id = ? WHERE job_id = ?",
            (channel_id, message_id, job_id),
        )
        MetaQueries(self._conn).delete(post_claim_key(job_id))

    def claim_post(self, job_id: str, now: datetime, seconds: float) -> bool:
        """Claim posting the hold's mod-log message for `seconds`; True if this claim won.

        Only if nobody holds a live claim and the hold is still undecided and unposted (checked after claiming, so a
        post recorded meanwhile is seen).
        """
        key = post_claim_key(job_id)
        meta = MetaQueries(self._conn)
        if not meta.claim(key, to_ms(now), to_ms(now) + int(seconds * 1000)):
            return False
        hold = self.hold(job_id)
        if hold is None or hold.message_id is not None or hold.decision is not None:
            meta.delete(key)
            return False
        return True

    def release_post(self, job_id: str) -> None:
        """Give up the claim to post the hold's message (the post failed: another start may try)."""
        MetaQueries(self._conn).delete(post_claim_key(job_id))

    def hold(self, job_id: str) -> HoldRow | None:
        """Return the job's hold row, or None."""
        row = self._conn.execute("SELECT * FROM moderation_holds WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _hold(row)

    def decide(
        self,
        job_id: str,
        decision: str,
        moderator_id: int | None,
        reason: str | None,
        at: datetime,
        *,
        job_state: JobState | None = None,
        expected: JobState | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the one decision on a hold, and (with `job_state`) move its job from `expected`; False if taken.

        Both or neither: a second decision (another moderator, the expiry sweep) finds the hold decided and changes
        nothing, and a job no longer in `expected` (cancelled meanwhile) is not decided either.
        """
        cursor = self._conn.execute(
            "UPDATE moderation_holds SET decision = ?, decided_by = ?, reason = ?, decided_at = ?"
            " WHERE job_id = ? AND decision IS NULL",
            (decision, moderator_id, reason, to_ms(at), job_id),
        )
        if cursor.rowcount == 0:
            return False
        if job_state is not None:
            expect = [] if expected is None else [expected]
            if not JobQueries(self._conn).update_state(job_id, job_state, at, error=error, expected=expect):
                raise _NotInStateError(job_id)
        return True

    def overdue(self, before: datetime) -> list[Job]:
        """Return jobs still awaiting approval that were created before `before`, oldest first."""
        rows = self._conn.execute(
            "SELECT * FROM jobs WHERE state = 'awaiting_approval' AND created_at < ? ORDER BY created_at, rowid",
            (to_ms(before),),
        ).fetchall()
        return [job_from_row(row) for row in rows]

    def set_result_message(self, job_id: str, message_id: int | None) -> None:
        """Record where a quarantined job's result was posted once a moderator approved it."""
        self._conn.execute("UPDATE jobs SET result_message_id = ? WHERE id = ?", (message_id, job_id))

    def unposted_quarantines(self) -> list[Job]:
        """Return the jobs whose flagged result is quarantined, undecided, with no mod-log message, oldest first."""
        rows = self._conn.execute(
            "SELECT j.* FROM moderation_holds AS h JOIN jobs AS j ON j.id = h.job_id"
            " WHERE h.kind = 'safety' AND h.decision IS NULL AND h.message_id IS NULL AND j.state = 'succeeded'"
            " ORDER BY h.created_at, h.job_id"
        ).fetchall()
        return [job_from_row(row) for row in rows]


class _NotInStateError(Exception):
    """The job left the expected state before the decision: the whole unit is rolled back."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


class ModerationRepository(Repository[ModerationQueries]):
    """One unit of work per call over `ModerationQueries`, stamped with its clock."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        super().__init__(db, ModerationQueries)
        self.clock = clock

    async def settings(self, guild_id: int) -> ModerationRow:
        """`ModerationQueries.settings`."""
        return await self._read(lambda q: q.settings(guild_id))

    async def places(self, guild_id: int, channel_ids: Sequence[int]) -> dict[int, PlaceRow]:
        """`ModerationQueries.places`."""
        ids = list(channel_ids)
        return await self._read(lambda q: q.places(guild_id, ids))

    async def all_places(self, guild_id: int) -> list[PlaceRow]:
        """`ModerationQueries.all_places`."""
        return await self._read(lambda q: q.all_places(guild_id))

    async def hold(self, job_id: str) -> HoldRow | None:
        """`ModerationQueries.hold`."""
        return await self._read(lambda q: q.hold(job_id))

    async def add_hold(self, job_id: str, guild_id: int, kind: str) -> None:
        """`ModerationQueries.add_hold`, now."""
        at = self.clock()
        await self._write(lambda q: q.add_hold(job_id, guild_id, kind, at))

    async def set_hold_message(self, job_id: str, channel_id: int, message_id: int) -> None:
        """`ModerationQueries.set_hold_message`."""
        await self._write(lambda q: q.set_hold_message(job_id, channel_id, message_id))

    async def claim_post(self, job_id: str) -> bool:
        """`ModerationQueries.claim_post`, now, for `POST_CLAIM_SECONDS`."""
        at = self.clock()
        return await self._write(lambda q: q.claim_post(job_id, at, POST_CLAIM_SECONDS))

    async def release_post(self, job_id: str) -> None:
        """`ModerationQueries.release_post`."""
        await self._write(lambda q: q.release_post(job_id))

    async def decide(
        self,
        job_id: str,
        decision: str,
        moderator_id: int | None,
        reason: str | None = None,
        *,
        job_state: JobState | None = None,
        expected: JobState | None = None,
        error: str | None = None,
    ) -> bool:
        """`ModerationQueries.decide`, now, in one unit; False when someone decided first or the job moved on."""
        at = self.clock()

        def unit(conn: sqlite3.Connection) -> bool:
            return ModerationQueries(conn).decide(
                job_id, decision, moderator_id, reason, at, job_state=job_state, expected=expected, error=error
            )

        try:
            return await self._db.run(unit)
        except _NotInStateError:  # the unit was rolled back: the hold stays undecided
            return False

    async def overdue(self, before: datetime) -> list[Job]:
        """`ModerationQueries.overdue`."""
        return await self._read(lambda q: q.overdue(before))

    async def set_result_message(self, job_id: str, message_id: int | None) -> None:
        """`ModerationQueries.set_result_message`."""
        await self._write(lambda q: q.set_result_message(job_id, message_id))

    async def unposted_quarantines(self) -> list[Job]:
        """`ModerationQueries.unposted_quarantines`."""
        return await self._read(lambda q: q.unposted_quarantines())
