"""Shared helpers for the Runbase tests: a client pointed at the fake with a fast limiter."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from bot.runbase.client import RunbaseClient, RunbaseOptions
from bot.runbase.limiter import RunbaseLimiter
from bot.runware.client import LoadSignals
from fakes.runbase import FakeRunbase


async def _no_wait(_: float) -> None:
    return None


def fast_limiter(limit: int = 20, window: float = 10.0) -> RunbaseLimiter:
    """A limiter with the given window and a quick poll cadence (for a fake whose runs take 0.15 s)."""
    return RunbaseLimiter(limit, window, margin=0.02, min_poll_interval=0.05, max_poll_interval=0.5, backoff_base=0.05)


def make_client(
    session: aiohttp.ClientSession,
    fake: FakeRunbase,
    *,
    key: str | None = None,
    limiter: RunbaseLimiter | None = None,
    load: LoadSignals | None = None,
) -> RunbaseClient:
    """A client of `fake` with short retry delays."""
    return RunbaseClient(
        session,
        api_key=key or fake.api_key,
        api_url=fake.url,
        options=RunbaseOptions(request_timeout_seconds=2.0, task_timeout_seconds=20.0, retry_base_delay=0.02),
        limiter=limiter or fast_limiter(),
        load=load,
    )


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for the test."""
    async with aiohttp.ClientSession() as http:
        yield http
