"""Seam A of discord-testing.md §1: point discord.py's two class attributes at a fake, and put them back after.

The Atelier bot sets them itself from DISCORD_API_BASE / DISCORD_GATEWAY_URL; this helper is for tests that run a
throwaway ``discord.Client`` in the test process. Seam A is process-global: one fake per process at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import discord.gateway
import discord.http
import yarl

__all__ = ["pointed_at"]


@contextmanager
def pointed_at(api_base: str, gateway_url: str) -> Iterator[None]:
    """Set ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` for the duration of the block."""
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway
