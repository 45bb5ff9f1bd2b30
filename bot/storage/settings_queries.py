"""A server's generation settings (schema version 4): its own request defaults and limits, with who changed them.

Written like `repositories.py`: `GenerationSettingsQueries` works inside a transaction opened by `Database.run()`,
`GenerationSettingsRepository` is its async face with one transaction per call. Changes that must read, check and
write in one transaction go through `bot.generation_settings.GenerationSettings`, which composes the queries.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.jobs.requests import OptionDefaults
from bot.storage.database import Database
from bot.storage.repositories import from_ms, to_ms


@dataclass(frozen=True, slots=True)
class StoredGenerationSettings:
    """One server's row: its own defaults and limits (None: not set here, the config file's value applies)."""

    guild_id: int
    defaults: OptionDefaults = field(default_factory=OptionDefaults)
    defaults_changed_at: datetime | None = None
    defaults_changed_by: int | None = None
    max_count: int | None = None
    confirm_above: int | None = None
    """Micro-dollars."""
    limits_changed_at: datetime | None = None
    limits_changed_by: int | None = None


def _stored(row: sqlite3.Row) -> StoredGenerationSettings:
    defaults = OptionDefaults(
        model=None if row["model"] is None else ModelName(row["model"]),
        size=None if row["size"] is None else Size(row["size"]),
        quality=None if row["quality"] is None else Quality(row["quality"]),
        background=None if row["background"] is None else Background(row["background"]),
        format=None if row["format"] is None else OutputFormat(row["format"]),
        count=row["count"],
    )
    return StoredGenerationSettings(
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


class GenerationSettingsQueries:
    """The `generation_settings` table: one row per server that changed its defaults or limits."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, guild_id: int) -> StoredGenerationSettings | None:
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


class GenerationSettingsRepository:
    """Async, read-only face of `GenerationSettingsQueries` (changes go through `bot.generation_settings`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, guild_id: int) -> StoredGenerationSettings | None:
        """Return the server's row, or None."""
        return await self._db.run(lambda conn: GenerationSettingsQueries(conn).get(guild_id), write=False)
