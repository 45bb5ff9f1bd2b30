"""Pytest fixtures for the fake Discord server.

* ``fake_discord``: a started :class:`FakeDiscord` on 127.0.0.1 that validates every REST request against Discord's
  OpenAPI spec (loaded once per session), closed after the test.
* ``discord_seam``: the same fake with discord.py's ``Route.BASE`` / ``DiscordWebSocket.DEFAULT_GATEWAY`` pointed at
  it for the test, and restored after (for clients built in the test process that do not read DISCORD_API_BASE).
* ``openapi_spec``: skips the test, with the reason, when the spec or openapi-core is unavailable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from fakes.discord import FakeDiscord
from fakes.discord.seam import pointed_at
from fakes.openapi_check import OpenAPIChecker, get_checker


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord (REST + gateway + CDN) with OpenAPI request validation on."""
    async with FakeDiscord(validate_openapi=True) as fake:
        yield fake


@pytest.fixture
def discord_seam(fake_discord: FakeDiscord) -> Iterator[FakeDiscord]:
    """``fake_discord`` with discord.py's REST base and gateway URL pointed at it (restored afterwards)."""
    with pointed_at(fake_discord.api_base, fake_discord.gateway_url):
        yield fake_discord


@pytest.fixture(scope="session")
def openapi_spec() -> OpenAPIChecker:
    """The loaded OpenAPI checker; skips the test when the spec cannot be used."""
    checker = get_checker()
    if checker.skip_reason:
        pytest.skip(checker.skip_reason)
    return checker
