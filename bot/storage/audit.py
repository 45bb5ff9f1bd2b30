"""The `audit_log` table (schema version 6): every change to a server's settings and budgets, newest first.

`AuditQueries.record` runs inside the transaction that makes the change, so a change and its audit row are stored
together or not at all; `AuditRepository` is the async face `/settings audit` pages through.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from bot.clock import from_ms, to_ms
from bot.storage.database import Database, Repository
from bot.storage.queue import SETTINGS_CHANNEL, notify
from bot.storage.rows import AuditEntry


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        guild_id=row["guild_id"],
        actor_id=row["actor_id"],
        area=row["area"],
        setting=row["setting"],
        before=row["before"],
        after=row["after"],
        created_at=from_ms(row["created_at"]),
    )


class AuditQueries:
    """The append-only `audit_log` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record(
        self,
        guild_id: int,
        actor_id: int | None,
        area: str,
        setting: str,
        before: str | None,
        after: str | None,
        at: datetime,
    ) -> int:
        """Append one change (`before`/`after` are the words an admin reads; None: not set) and return its id."""
        cursor = self._conn.execute(
            "INSERT INTO audit_log (guild_id, actor_id, area, setting, before, after, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (guild_id, actor_id, area, setting, before, after, to_ms(at)),
        )
        # Every change to a server's settings is audited in its own transaction: the other processes sharing the
        # database drop their cached copy of the server when it commits (`bot.jobs.shared.share_caches`).
        notify(self._conn, SETTINGS_CHANNEL, str(guild_id))
        return int(cursor.lastrowid or 0)

    def record_change(
        self,
        guild_id: int,
        actor_id: int | None,
        area: str,
        setting: str,
        before: str | None,
        after: str | None,
        at: datetime,
    ) -> None:
        """`record` a change only if it changed something: a repeat of the same value is no change."""
        if before != after:
            self.record(guild_id, actor_id, area, setting, before, after, at)

    def page(self, guild_id: int, *, offset: int, limit: int) -> list[AuditEntry]:
        """Return up to `limit` of the server's changes, newest first, skipping the `offset` newest."""
        rows = self._conn.execute(
            "SELECT * FROM audit_log WHERE guild_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (guild_id, limit, offset),
        ).fetchall()
        return [_entry(row) for row in rows]

    def count(self, guild_id: int) -> int:
        """Return how many changes the server has recorded."""
        row = self._conn.execute("SELECT COUNT(*) FROM audit_log WHERE guild_id = ?", (guild_id,)).fetchone()
        return int(row[0])


class AuditRepository(Repository[AuditQueries]):
    """The calls `/settings audit` makes one at a time, each running the `AuditQueries` method it names."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, AuditQueries)

    async def record(
        self,
        guild_id: int,
        actor_id: int | None,
        area: str,
        setting: str,
        before: str | None,
        after: str | None,
        at: datetime,
    ) -> int:
        """`AuditQueries.record`, in its own transaction (for a change stored elsewhere, such as a config value)."""
        return await self._write(lambda audit: audit.record(guild_id, actor_id, area, setting, before, after, at))

    async def page(self, guild_id: int, *, offset: int, limit: int) -> list[AuditEntry]:
        """`AuditQueries.page`."""
        return await self._read(lambda audit: audit.page(guild_id, offset=offset, limit=limit))

    async def count(self, guild_id: int) -> int:
        """`AuditQueries.count`."""
        return await self._read(lambda audit: audit.count(guild_id))
