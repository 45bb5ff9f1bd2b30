"""`atelier check`: validate the configuration and the database, and verify the Runware key without spending."""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

import aiohttp

from bot.discord.intents import check_reply_editing
from bot.exit_codes import EXIT_FAILED, EXIT_OK
from bot.log import setup_logging
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.settings import Settings, load_settings
from bot.storage.database import Database, DatabaseError

NAME = "check"
HELP = "validate the configuration and the database, and verify the Runware key without spending"


def configure(parser: argparse.ArgumentParser) -> None:
    """`check` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Validate the settings, the database, the Runware key (without spending) and reply editing; a line each.

    Reply editing is read from the application's flags when DISCORD_TOKEN is set.
    """
    settings = load_settings()
    secrets = [secret.get_secret_value() for secret in (settings.discord_token, settings.runware_api_key) if secret]
    setup_logging("ERROR", secrets=secrets)
    print(f"config: ok ({settings.config_path})")
    results = asyncio.run(_check_services(settings))
    for line in results.lines:
        print(line)
    return EXIT_OK if results.ok else EXIT_FAILED


@dataclass(slots=True)
class _CheckResults:
    ok: bool
    lines: list[str]


async def _check_services(settings: Settings) -> _CheckResults:
    """Read reply editing from Discord, check the database, and ask Runware whether the key is valid (one session).

    The database is opened (and migrated) and gets SQLite's integrity check; nothing is spent anywhere.
    """
    results = _CheckResults(ok=True, lines=[])
    async with aiohttp.ClientSession() as session:
        await _check_discord(settings, session, results)
        database_ok, database_line = await _check_database(settings)
        results.ok &= database_ok
        results.lines.append(database_line)
        await _check_runware(settings, session, results)
    return results


async def _check_discord(settings: Settings, session: aiohttp.ClientSession, results: _CheckResults) -> None:
    """Say whether reply editing is on (from the application's flags) when DISCORD_TOKEN is set."""
    if settings.discord_token is None:
        state = "is empty" if "DISCORD_TOKEN" in settings.empty_variables else "is not set"
        results.lines.append(f"discord: DISCORD_TOKEN {state} (needed to run the bot)")
        return
    token = settings.discord_token.get_secret_value()
    ok, line = await check_reply_editing(session, settings.discord_api_base, token, settings.app.discord.reply_editing)
    results.ok &= ok
    results.lines.append(line)


async def _check_database(settings: Settings) -> tuple[bool, str]:
    """Open (and migrate) the database and run SQLite's integrity check."""
    try:
        async with await Database.open(settings.database) as database:
            problems = await database.integrity_problems()
            if problems:
                return False, f"database: {settings.database} is damaged: {'; '.join(problems[:3])}"
            return True, f"database: ok ({settings.database}, schema version {database.version})"
    except (DatabaseError, OSError) as exc:
        return False, f"database: {exc}"


async def _check_runware(settings: Settings, session: aiohttp.ClientSession, results: _CheckResults) -> None:
    """Ask Runware whether the key is valid, without spending."""
    if settings.runware_api_key is None:
        results.ok = False
        state = "is empty" if "RUNWARE_API_KEY" in settings.empty_variables else "is not set"
        results.lines.append(f"runware: RUNWARE_API_KEY {state}")
        return
    client = RunwareClient(
        session,
        api_key=settings.runware_api_key.get_secret_value(),
        api_url=settings.runware_api_url,
        config=settings.app.runware,
    )
    try:
        await client.verify_key()
    except RunwareError as exc:
        results.ok = False
        results.lines.append(f"runware: {exc.user_message}")
    else:
        results.lines.append(f"runware: key ok ({settings.runware_api_url})")
