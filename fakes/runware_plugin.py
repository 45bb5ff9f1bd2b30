"""Pytest fixtures for the fake Runware server: `fake_runware` (started, closed after the test) and `runware_key`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from fakes.runware import DEFAULT_API_KEY, FakeRunware


@pytest.fixture
def runware_key() -> str:
    """The API key the `fake_runware` server accepts."""
    return DEFAULT_API_KEY


@pytest_asyncio.fixture
async def fake_runware(runware_key: str) -> AsyncIterator[FakeRunware]:
    """A started fake Runware server on 127.0.0.1 (no latency, price table from config/atelier.toml)."""
    async with FakeRunware(api_key=runware_key) as fake:
        yield fake
