"""The `meta` key/value table: for example the Discord client's command-sync hash, and claims.

A claim (`MetaQueries.claim`) lets one process of several do a piece of work, for a while.

`MetaQueries` works inside a transaction opened by `Database.run()`; `MetaRepository` is its async face for the
Discord client, one transaction per call.
"""

from __future__ import annotations

import sqlite3

from bot.storage.database import Database, Repository


class MetaQueries:
    """The `meta` key/value table."""

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

    def claim(self, key: str, now_ms: int, until_ms: int) -> bool:
        """Claim `key` until `until_ms` (Unix milliseconds) unless a live claim holds it; True if this one won.

        One statement: of processes claiming at once, PostgreSQL lets exactly one insert or take over an expired
        claim (the conflicting row is locked and its expiry checked again), SQLite has one writer anyway.
        """
        return (
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                " WHERE CAST(meta.value AS BIGINT) <= ?",
                (key, str(until_ms), now_ms),
            ).rowcount
            == 1
        )


class MetaRepository(Repository[MetaQueries]):
    """The calls the Discord client makes one at a time, each running the `MetaQueries` method it names."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, MetaQueries)

    async def get(self, key: str) -> str | None:
        """`MetaQueries.get`."""
        return await self._read(lambda meta: meta.get(key))

    async def set(self, key: str, value: str) -> None:
        """`MetaQueries.set`."""
        await self._write(lambda meta: meta.set(key, value))

    async def delete(self, key: str) -> bool:
        """`MetaQueries.delete`."""
        return await self._write(lambda meta: meta.delete(key))
