"""Pytest fixtures for the fake Runbase server: `fake_runbase` (started, closed after the test) and `runbase_key`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fakes.runbase import DEFAULT_API_KEY, FakeRunbase


@pytest.fixture
def runbase_key() -> str:
    """The API key the `fake_runbase` server accepts."""
    return DEFAULT_API_KEY


@pytest_asyncio.fixture
async def fake_runbase(runbase_key: str) -> AsyncIterator[FakeRunbase]:
    """A started fake Runbase on 127.0.0.1 (runs take about 0.15 s; the real limit of 20 requests per 10 s)."""
    async with FakeRunbase(api_key=runbase_key) as fake:
        yield fake
