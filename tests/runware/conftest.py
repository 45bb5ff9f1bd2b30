"""Fixtures for the Runware client tests: fast timings, one aiohttp session, a client pointed at the fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from bot.runware.client import RunwareClient
from bot.settings import RunwareConfig
from fakes.runware import FakeRunware

FAST_CONFIG = RunwareConfig(
    request_timeout_seconds=0.5,
    task_timeout_seconds=5.0,
    poll_initial_delay_seconds=0.01,
    poll_max_interval_seconds=0.05,
    max_retries=3,
)


@pytest.fixture
def runware_config() -> RunwareConfig:
    """Timings small enough that retries and polls cost milliseconds."""
    return FAST_CONFIG


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session per test, closed afterwards."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def client(
    session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, runware_config: RunwareConfig
) -> RunwareClient:
    """A client for the fake server with millisecond backoffs."""
    return RunwareClient(
        session,
        api_key=runware_key,
        api_url=fake_runware.url,
        config=runware_config,
        retry_base_delay=0.005,
        retry_max_delay=0.02,
    )
