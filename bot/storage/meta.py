"""The `meta` key/value table (for example the Discord client's command-sync hash).

`MetaQueries` works inside a transaction opened by `Database.run()`; `MetaRepository` is its async face.
"""

from __future__ import annotations

import sqlite3

from bot.storage.database import Database


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
