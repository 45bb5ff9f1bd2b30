"""Shared fixtures: the fake Runware and fake Discord servers are plugins so every test directory can use them (and
the throwaway PostgreSQL server, `tests.postgres_server`), and
`db` is a migrated SQLite file for the tests of what sits on the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.storage.database import Database

pytest_plugins = ["fakes.runware_plugin", "fakes.runbase_plugin", "fakes.discord_plugin", "tests.postgres_server"]


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly created and migrated database file in the test's temporary folder, closed after the test."""
    async with await Database.open(tmp_path / "atelier.sqlite3") as database:
        yield database
