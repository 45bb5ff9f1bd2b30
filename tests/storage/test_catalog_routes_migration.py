"""Migration 0014 (catalog routes): the catalog's value lists leave the schema, rows stay, jobs gain a resolution."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import to_ms
from bot.storage.database import Database

BEFORE = 13
"""The schema version before migration 0014."""
AT = to_ms(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))
SETTINGS_COLUMNS = (
    "guild_id, model, size, quality, background, format, count, defaults_changed_at, defaults_changed_by,"
    " max_count, confirm_above, limits_changed_at, limits_changed_by"
)
ROWS = [
    (1, "gpt-image-1.5", "1536x1024", "high", "transparent", "webp", 2, AT, 10, 3, 750_000, AT, 11),
    (2, None, None, None, None, None, None, None, None, 1, None, AT, 12),
]


def seed_version_13(path: Path) -> None:
    """Two servers' options and a finished job, written as schema version 13 wrote them."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for row in ROWS:
            conn.execute(f"INSERT INTO generation_settings ({SETTINGS_COLUMNS}) VALUES ({', '.join('?' * 13)})", row)
        with pytest.raises(sqlite3.IntegrityError):  # version 13 still refuses a model it does not list
            conn.execute("INSERT INTO generation_settings (guild_id, model) VALUES (3, 'gpt-image-2')")
        conn.execute(
            "INSERT INTO jobs (id, state, guild_id, channel_id, member_id, model, size, quality, background, format,"
            " count, prompt, estimate, cost, created_at, updated_at) VALUES"
            " ('job1', 'succeeded', 1, 2, 10, 'gpt-image-1-mini', '1024x1024', 'medium', 'auto', 'png', 1, 'a cat',"
            " 11000, 11000, ?, ?)",
            (AT, AT),
        )


async def test_the_upgrade_keeps_every_row_and_drops_only_the_catalog_checks(tmp_path: Path) -> None:
    path = tmp_path / "v13.sqlite3"
    async with await Database.open(path, migrate_to=BEFORE):
        pass
    seed_version_13(path)
    async with await Database.open(path) as db:
        assert db.version >= 14

        def check(conn: sqlite3.Connection) -> None:
            rows = conn.execute(f"SELECT {SETTINGS_COLUMNS} FROM generation_settings ORDER BY guild_id").fetchall()
            assert [tuple(row) for row in rows] == ROWS
            job = conn.execute("SELECT provider, resolution, model, cost FROM jobs WHERE id = 'job1'").fetchone()
            assert tuple(job) == ("runware", None, "gpt-image-1-mini", 11000)
            # a model (and a size) the catalog adds later needs no migration now
            conn.execute("INSERT INTO generation_settings (guild_id, model) VALUES (3, 'gpt-image-2')")
            conn.execute("UPDATE jobs SET resolution = '4K', model = 'gpt-image-2' WHERE id = 'job1'")
            # the rules that are not catalog lists still hold
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(
                    "INSERT INTO generation_settings (guild_id, background, format) VALUES (4, 'transparent', 'jpg')"
                )
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute("INSERT INTO generation_settings (guild_id, count) VALUES (5, 9)")
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute("INSERT INTO generation_settings (guild_id, count, max_count) VALUES (6, 3, 2)")

        await db.run(check)
