"""The `access_rules` and `blocklist` tables (schema version 7): a server's channel and role rules and its blocklist.

`PolicyQueries` works inside a transaction opened by `Database.run()`, so a change and its `audit_log` row
(`bot.storage.audit`) are written together; `bot.moderation.policy` reads a server's whole policy in one call.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.clock import to_ms

CHANNEL = "channel"
ROLE = "role"


@dataclass(frozen=True, slots=True)
class BlockRow:
    """One blocklist entry: as the admin wrote it, and as the matcher compares it."""

    entry: str
    normalised: str


@dataclass(frozen=True, slots=True)
class PolicyRows:
    """Everything a server's policy is made of, as stored: rules by target id (True: allowed), blocklist entries."""

    channels: dict[int, bool]
    roles: dict[int, bool]
    blocklist: list[BlockRow]


class PolicyQueries:
    """Channel and role rules, and blocklist entries."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read(self, guild_id: int) -> PolicyRows:
        """Return the server's rules and blocklist (oldest entry first)."""
        channels: dict[int, bool] = {}
        roles: dict[int, bool] = {}
        for kind, target, allowed in self._conn.execute(
            "SELECT kind, target_id, allowed FROM access_rules WHERE guild_id = ?", (guild_id,)
        ):
            (channels if kind == CHANNEL else roles)[int(target)] = bool(allowed)
        blocked = [
            BlockRow(row[0], row[1])
            for row in self._conn.execute(
                "SELECT entry, normalised FROM blocklist WHERE guild_id = ? ORDER BY created_at, normalised",
                (guild_id,),
            )
        ]
        return PolicyRows(channels, roles, blocked)

    def rule(self, guild_id: int, kind: str, target_id: int) -> bool | None:
        """Return one target's rule (True: allowed, False: denied), or None if it has none."""
        row = self._conn.execute(
            "SELECT allowed FROM access_rules WHERE guild_id = ? AND kind = ? AND target_id = ?",
            (guild_id, kind, target_id),
        ).fetchone()
        return None if row is None else bool(row[0])

    def set_rule(
        self, guild_id: int, kind: str, target_id: int, allowed: bool, at: datetime, actor: int | None
    ) -> None:
        """Allow or deny one channel or role (replacing its previous rule)."""
        self._conn.execute(
            "INSERT INTO access_rules (guild_id, kind, target_id, allowed, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, kind, target_id) DO UPDATE SET"
            " allowed = excluded.allowed, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            (guild_id, kind, target_id, int(allowed), to_ms(at), actor),
        )

    def delete_rule(self, guild_id: int, kind: str, target_id: int) -> bool:
        """Remove one target's rule; True if it had one."""
        cursor = self._conn.execute(
            "DELETE FROM access_rules WHERE guild_id = ? AND kind = ? AND target_id = ?", (guild_id, kind, target_id)
        )
        return cursor.rowcount > 0

    def delete_rules(self, guild_id: int, kind: str) -> int:
        """Remove every rule of one kind; return how many there were."""
        cursor = self._conn.execute("DELETE FROM access_rules WHERE guild_id = ? AND kind = ?", (guild_id, kind))
        return cursor.rowcount

    def block_entry(self, guild_id: int, normalised: str) -> str | None:
        """Return the entry (as written) stored under this normalised form, or None."""
        row = self._conn.execute(
            "SELECT entry FROM blocklist WHERE guild_id = ? AND normalised = ?", (guild_id, normalised)
        ).fetchone()
        return None if row is None else str(row[0])

    def block_count(self, guild_id: int) -> int:
        """Return how many entries the server's blocklist has."""
        row = self._conn.execute("SELECT COUNT(*) FROM blocklist WHERE guild_id = ?", (guild_id,)).fetchone()
        return int(row[0])

    def add_block(self, guild_id: int, entry: str, normalised: str, at: datetime, actor: int | None) -> None:
        """Add an entry (the caller checked it is not there yet)."""
        self._conn.execute(
            "INSERT INTO blocklist (guild_id, normalised, entry, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
            (guild_id, normalised, entry, to_ms(at), actor),
        )

    def remove_block(self, guild_id: int, normalised: str) -> bool:
        """Remove an entry; True if it was there."""
        cursor = self._conn.execute(
            "DELETE FROM blocklist WHERE guild_id = ? AND normalised = ?", (guild_id, normalised)
        )
        return cursor.rowcount > 0
