"""Fixtures for storage tests: a real, migrated SQLite file in the test's temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from bot.storage.database import Database


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A freshly created and migrated database file, closed after the test."""
    async with await Database.open(tmp_path / "atelier.sqlite3") as database:
        yield database
