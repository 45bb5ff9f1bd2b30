"""Generation settings rows: defaults and limits are stored apart, with who changed them and when; the schema refuses
values no code path should ever write."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.storage.database import Database
from bot.storage.rows import OptionDefaults, StoredOptions
from bot.storage.servers import ServerOptionsQueries, ServerOptionsRepository

GUILD = 10
ADMIN = 77
AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
EVERY_DEFAULT = OptionDefaults(
    model=ModelName.GPT_IMAGE_1_5,
    size=Size.PORTRAIT,
    quality=Quality.LOW,
    background=Background.TRANSPARENT,
    format=OutputFormat.WEBP,
    count=3,
)


async def test_a_server_without_a_row_reads_as_none(db: Database) -> None:
    """Nothing stored: `ServerOptionsRepository` says None (the config file's values apply)."""
    assert await ServerOptionsRepository(db).get(GUILD) is None


async def test_defaults_round_trip_every_column_with_who_and_when(db: Database) -> None:
    """Every default, the admin and the time come back as stored; the limits stay unset."""
    await db.run(lambda conn: ServerOptionsQueries(conn).save_defaults(GUILD, EVERY_DEFAULT, AT, ADMIN))

    stored = await ServerOptionsRepository(db).get(GUILD)

    assert stored == StoredOptions(GUILD, EVERY_DEFAULT, AT, ADMIN)


async def test_defaults_and_limits_are_saved_without_touching_each_other(db: Database) -> None:
    """Saving limits keeps the defaults and their author; saving defaults again (partly None) keeps the limits."""
    later = AT + timedelta(hours=1)

    def write(conn: sqlite3.Connection) -> None:
        queries = ServerOptionsQueries(conn)
        queries.save_defaults(GUILD, EVERY_DEFAULT, AT, ADMIN)
        queries.save_limits(GUILD, 4, 250_000, later, ADMIN + 1)
        queries.save_defaults(GUILD, OptionDefaults(model=ModelName.GPT_IMAGE_1), later, None)

    await db.run(write)
    stored = await ServerOptionsRepository(db).get(GUILD)

    assert stored == StoredOptions(
        GUILD,
        OptionDefaults(model=ModelName.GPT_IMAGE_1),
        defaults_changed_at=later,
        defaults_changed_by=None,
        max_count=4,
        confirm_above=250_000,
        limits_changed_at=later,
        limits_changed_by=ADMIN + 1,
    )
    assert await ServerOptionsRepository(db).get(GUILD + 1) is None


async def test_clearing_limits_keeps_the_row_and_records_who_cleared_them(db: Database) -> None:
    """Saving None limits is a reset: the values go, the admin and time of the reset stay."""

    def write(conn: sqlite3.Connection) -> None:
        queries = ServerOptionsQueries(conn)
        queries.save_limits(GUILD, 2, 0, AT, ADMIN)
        queries.save_limits(GUILD, None, None, AT + timedelta(minutes=5), ADMIN + 2)

    await db.run(write)
    stored = await ServerOptionsRepository(db).get(GUILD)

    assert stored is not None
    assert (stored.max_count, stored.confirm_above) == (None, None)
    assert (stored.limits_changed_at, stored.limits_changed_by) == (AT + timedelta(minutes=5), ADMIN + 2)


@pytest.mark.parametrize(
    ("columns", "values"),
    [
        ("count", "0"),
        ("count", "5"),
        ("max_count", "5"),
        ("confirm_above", "-1"),
        ("confirm_above", "1000000000001"),
        ("background, format", "'transparent', 'jpg'"),
        ("count, max_count", "3, 2"),
    ],
)
async def test_the_schema_refuses_values_nothing_may_store(db: Database, columns: str, values: str) -> None:
    """Counts outside 1-4, negative or absurd thresholds, transparent jpg, a default count above the server's own
    limit: the CHECK constraints refuse them, and nothing is stored. (The catalog's value lists are not in the schema
    since version 14: `ServerOptions` stores only catalog values, see the next test.)"""
    sql = f"INSERT INTO generation_settings (guild_id, {columns}) VALUES ({GUILD}, {values})"

    with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
        await db.run(lambda conn: conn.execute(sql))

    assert await ServerOptionsRepository(db).get(GUILD) is None


async def test_a_model_the_catalog_adds_is_stored_without_a_migration(db: Database) -> None:
    """GPT Image 2 (added to the catalog with schema 14) round-trips as a server default."""
    defaults = OptionDefaults(model=ModelName.GPT_IMAGE_2, size=Size.PORTRAIT)
    await db.run(lambda conn: ServerOptionsQueries(conn).save_defaults(GUILD, defaults, AT, ADMIN))

    stored = await ServerOptionsRepository(db).get(GUILD)

    assert stored is not None and stored.defaults.model is ModelName.GPT_IMAGE_2
    assert stored.defaults.size is Size.PORTRAIT
