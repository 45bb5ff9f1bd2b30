"""A server's own rows: its budget rules and its generation options.

The budget period, allowance and cap (`guild_settings`), role and member rules (`role_allowances`,
`member_overrides`), and the generation options (`generation_settings`, schema version 4).

`*Queries` classes work inside a transaction opened by `Database.run()` and compose (the budget service checks and
writes in one transaction); `ServerOptionsRepository` is the async face `bot.jobs.options` reads a server's options
through, one transaction per call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.clock import from_ms, to_ms
from bot.storage.database import Database, Repository
from bot.storage.rows import (
    GuildSettings,
    MemberRules,
    OptionDefaults,
    OverrideRow,
    StoredOptions,
)


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


def _stored(row: sqlite3.Row) -> StoredOptions:
    defaults = OptionDefaults(
        model=None if row["model"] is None else ModelName(row["model"]),
        size=None if row["size"] is None else Size(row["size"]),
        quality=None if row["quality"] is None else Quality(row["quality"]),
        background=None if row["background"] is None else Background(row["background"]),
        format=None if row["format"] is None else OutputFormat(row["format"]),
        count=row["count"],
    )
    return StoredOptions(
        guild_id=row["guild_id"],
        defaults=defaults,
        defaults_changed_at=None if row["defaults_changed_at"] is None else from_ms(row["defaults_changed_at"]),
        defaults_changed_by=row["defaults_changed_by"],
        max_count=row["max_count"],
        confirm_above=row["confirm_above"],
        limits_changed_at=None if row["limits_changed_at"] is None else from_ms(row["limits_changed_at"]),
        limits_changed_by=row["limits_changed_by"],
    )


def _value(option: ModelName | Size | Quality | Background | OutputFormat | None) -> str | None:
    return None if option is None else option.value


class ServerOptionsQueries:
    """The `generation_settings` table: one row per server that changed its defaults or limits."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, guild_id: int) -> StoredOptions | None:
        """Return the server's row, or None if it never changed a default or a limit."""
        row = self._conn.execute("SELECT * FROM generation_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        return None if row is None else _stored(row)

    def save_defaults(self, guild_id: int, defaults: OptionDefaults, at: datetime, actor_id: int | None) -> None:
        """Replace the server's defaults (all six; None clears one) and record who changed them and when."""
        self._conn.execute(
            "INSERT INTO generation_settings (guild_id, model, size, quality, background, format, count,"
            " defaults_changed_at, defaults_changed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET model = excluded.model, size = excluded.size,"
            " quality = excluded.quality, background = excluded.background, format = excluded.format,"
            " count = excluded.count, defaults_changed_at = excluded.defaults_changed_at,"
            " defaults_changed_by = excluded.defaults_changed_by",
            (
                guild_id,
                _value(defaults.model),
                _value(defaults.size),
                _value(defaults.quality),
                _value(defaults.background),
                _value(defaults.format),
                defaults.count,
                to_ms(at),
                actor_id,
            ),
        )

    def save_limits(
        self, guild_id: int, max_count: int | None, confirm_above: int | None, at: datetime, actor_id: int | None
    ) -> None:
        """Replace the server's limits (None clears one) and record who changed them and when."""
        self._conn.execute(
            "INSERT INTO generation_settings (guild_id, max_count, confirm_above, limits_changed_at, limits_changed_by)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET max_count = excluded.max_count,"
            " confirm_above = excluded.confirm_above, limits_changed_at = excluded.limits_changed_at,"
            " limits_changed_by = excluded.limits_changed_by",
            (guild_id, max_count, confirm_above, to_ms(at), actor_id),
        )


class ServerOptionsRepository(Repository[ServerOptionsQueries]):
    """The read `bot.jobs.options` makes one at a time (changes compose `ServerOptionsQueries` in one transaction)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, ServerOptionsQueries)

    async def get(self, guild_id: int) -> StoredOptions | None:
        """`ServerOptionsQueries.get`."""
        return await self._read(lambda options: options.get(guild_id))
