"""`atelier check`: everything a first start needs, one line per check as it finishes, and a verdict.

Checks, in order: the config file (which one, or the built-in defaults); the Discord token (`GET /users/@me` names
the bot; `GET /applications/@me` gives the application id and the flags that say which privileged intents the
portal allows, hence reply editing); the database (opens, integrity, schema version: a database behind the code is
reported as needing a migration and is NOT migrated, one that does not exist yet is not created); each configured
provider key, verified without spending (Runware: its key check; Runbase: a GET of a run id that cannot exist, where
`run_not_found` means the key works). One of RUNWARE_API_KEY and RUNBASE_API_KEY is needed. A request that fails
in a way worth repeating (a 5xx, a 429, a connection error) is retried up to `ATTEMPTS` times, with a progress line
before each wait. Nothing is spent and nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psycopg

from bot.cli.operator import operator_message
from bot.discord.intents import PORTAL_SWITCH, PrivilegedIntentError, decide
from bot.errors import first_line
from bot.exit_codes import EXIT_FAILED, EXIT_OK
from bot.log import setup_logging
from bot.runbase.client import RunbaseClient, RunbaseOptions
from bot.runbase.errors import RunbaseKeyCheckError
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.settings import Settings, load_settings
from bot.storage.migrate import latest_version, pg_schema_version, user_version
from bot.storage.postgres import PgConnection, redact

NAME = "check"
HELP = "check what a first start needs (config, Discord token and intents, database, provider keys); spends nothing"

ATTEMPTS = 4
"""Tries per service for a failure worth repeating (5xx, 429, no connection)."""
FIRST_WAIT_SECONDS = 1.0
"""The wait before the second try; it doubles after each (a 429's Retry-After wins when longer)."""
REQUEST_TIMEOUT_SECONDS = 15.0

T = TypeVar("T")


class _RetryableError(Exception):
    """A failure worth repeating; `wait` is the server's Retry-After, if it gave one."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


class _CheckFailedError(Exception):
    """A check failed; `str()` is the rest of its line."""


@dataclass(slots=True)
class _Report:
    problems: list[str] = field(default_factory=list)

    def line(self, name: str, ok: bool, text: str) -> None:
        print(f"{name}: {'ok' if ok else 'FAILED'}: {text}", flush=True)
        if not ok:
            self.problems.append(name)


def configure(parser: argparse.ArgumentParser) -> None:
    """`check` takes no arguments."""


def run(args: argparse.Namespace) -> int:
    """Run every check, print a line each and the verdict; exit 0 when a first start would work, else 1."""
    settings = load_settings()
    setup_logging("CRITICAL", secrets=settings.secret_values())
    report = _Report()
    where = " (no ATELIER_CONFIG, and no config/atelier.toml in this folder)" if settings.config_path is None else ""
    report.line("config", True, f"{settings.config_source}{where}")
    asyncio.run(_check_services(settings, report))
    if report.problems:
        print(f"verdict: NOT READY: {len(report.problems)} check(s) failed ({', '.join(report.problems)})")
        return EXIT_FAILED
    print("verdict: ready: `atelier run` should start")
    return EXIT_OK


async def _check_services(settings: Settings, report: _Report) -> None:
    """Run the Discord, database and provider checks (Runbase only when its key is set) over one HTTP session."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await _check_discord(settings, session, report)
        if settings.database_url is not None:
            _check_postgres(settings.database_url, report)
        else:
            _check_database(settings.database, report)
        await _check_runware(settings, session, report)
        await _check_runbase(settings, session, report)


async def _retrying(name: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt`, again after a `_RetryableError` (a progress line first); the last failure: `_CheckFailedError`."""
    wait = FIRST_WAIT_SECONDS
    for number in range(1, ATTEMPTS + 1):
        try:
            return await attempt()
        except _RetryableError as exc:
            if number == ATTEMPTS:
                raise _CheckFailedError(f"{exc} (after {ATTEMPTS} attempts)") from exc
            delay = max(wait, exc.wait or 0.0)
            print(f"{name}: {exc}; retrying in {delay:g} s (attempt {number + 1}/{ATTEMPTS})", flush=True)
            await asyncio.sleep(delay)
            wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover


async def _discord_get(session: aiohttp.ClientSession, settings: Settings, token: str, path: str) -> dict[str, Any]:
    """GET a Discord REST path with the bot token; 5xx, 429 and connection errors are `_RetryableError`."""
    url = f"{settings.discord_api_base}{path}"
    try:
        async with session.get(url, headers={"Authorization": f"Bot {token}"}) as response:
            if response.status == 429 or response.status >= 500:
                retry_after = response.headers.get("Retry-After")
                wait = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else None
                raise _RetryableError(f"Discord answered HTTP {response.status}", wait)
            if response.status == 401:
                raise _CheckFailedError("Discord refused DISCORD_TOKEN (HTTP 401): copy it again from the Bot tab")
            if response.status != 200:
                raise _CheckFailedError(f"GET {path} answered HTTP {response.status} at {settings.discord_api_base}")
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise _RetryableError(f"cannot reach Discord at {settings.discord_api_base} ({reason})") from exc
    except ValueError as exc:
        raise _CheckFailedError(f"GET {path} did not answer JSON; is DISCORD_API_BASE right?") from exc
    if not isinstance(body, dict):
        raise _CheckFailedError(f"GET {path} did not answer a JSON object; is DISCORD_API_BASE right?")
    return body


async def _check_discord(settings: Settings, session: aiohttp.ClientSession, report: _Report) -> None:
    """Name the bot and its application from the token; the application's flags decide reply editing."""
    if settings.discord_token is None:
        empty = "is empty" if "DISCORD_TOKEN" in settings.empty_variables else "is not set"
        report.line("discord", False, f"DISCORD_TOKEN {empty}: the bot cannot start without it")
        return
    token = settings.discord_token.get_secret_value()
    try:
        me = await _retrying("discord", lambda: _discord_get(session, settings, token, "/users/@me"))
        application = await _retrying("discord", lambda: _discord_get(session, settings, token, "/applications/@me"))
    except _CheckFailedError as exc:
        report.line("discord", False, str(exc))
        return
    name = str(me.get("username", "?"))
    discriminator = str(me.get("discriminator") or "0")
    tag = name if discriminator == "0" else f"{name}#{discriminator}"
    ids = f"user id {me.get('id')}, application id {application.get('id')}"
    report.line("discord", True, f"token of the bot {tag} ({ids})")
    flags = application.get("flags")
    if not isinstance(flags, int) or isinstance(flags, bool):
        report.line("intents", False, "the application's answer has no flags")
        return
    try:
        state = decide(settings.app.discord.reply_editing, flags)
    except PrivilegedIntentError:
        report.line(
            "intents",
            False,
            f"reply_editing = true needs the Message Content intent, which is off: switch on {PORTAL_SWITCH}, "
            'or set reply_editing = "auto"',
        )
        return
    advice = state.advice()
    report.line("intents", True, state.summary() + (f" {advice}" if advice else ""))


def _check_database(path: Path, report: _Report) -> None:
    """Open the file read-only: integrity and schema version; never create or migrate it."""
    latest = latest_version()
    if not path.exists():
        folder = next((parent for parent in path.absolute().parents if parent.exists()), None)
        if folder is None or not folder.is_dir():
            report.line("database", False, f"{path} cannot be created: no folder above it exists")
        else:
            report.line("database", True, f"{path} does not exist yet; the first start creates it (schema v{latest})")
        return
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        report.line("database", False, f"cannot open {path}: {exc}")
        return
    try:
        version = user_version(conn)
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as exc:
        report.line("database", False, f"cannot read {path}: {exc}")
        return
    finally:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
    if problems != ["ok"]:
        report.line("database", False, f"{path} is damaged: {'; '.join(problems[:3])}")
    elif version > latest:
        report.line("database", False, f"{path} is at schema v{version}, newer than this Atelier (v{latest}): upgrade")
    elif version < latest:
        report.line(
            "database",
            True,
            f"{path} needs migration from v{version} to v{latest}; the next start does it (after a backup copy)",
        )
    else:
        report.line("database", True, f"{path} (schema v{version}, current)")


def _check_postgres(url: str, report: _Report) -> None:
    """Connect to the PostgreSQL database and read its schema version; never create or migrate anything."""
    shown, latest = redact(url), latest_version()
    try:
        conn = PgConnection.connect(url)
    except psycopg.Error as exc:
        report.line("database", False, f"cannot connect to {shown}: {first_line(exc)}")
        return
    try:
        version = pg_schema_version(conn)
    except sqlite3.Error as exc:
        report.line("database", False, f"cannot read {shown}: {exc}")
        return
    finally:
        conn.close()
    if version > latest:
        report.line("database", False, f"{shown} is at schema v{version}, newer than this Atelier (v{latest}): upgrade")
    elif version < latest:
        report.line("database", True, f"{shown} needs migration from v{version} to v{latest}; the next start does it")
    else:
        report.line("database", True, f"{shown} (PostgreSQL, schema v{version}, current)")


async def _check_runware(settings: Settings, session: aiohttp.ClientSession, report: _Report) -> None:
    """Ask Runware whether the key is valid, without spending; retried here so the progress shows."""
    if settings.runware_api_key is None:
        state = "is empty" if "RUNWARE_API_KEY" in settings.empty_variables else "is not set"
        if settings.runbase_api_key is not None:
            report.line("runware", True, f"RUNWARE_API_KEY {state}: Runbase serves every model it has")
        else:
            report.line("runware", False, f"RUNWARE_API_KEY {state} (and so is RUNBASE_API_KEY: one key is needed)")
        return
    client = RunwareClient(
        session,
        api_key=settings.runware_api_key.get_secret_value(),
        api_url=settings.runware_api_url,
        config=settings.app.runware.model_copy(update={"max_retries": 0}),
    )

    async def attempt() -> None:
        try:
            await client.verify_key()
        except RunwareError as exc:
            if exc.retryable:
                raise _RetryableError(_runware_reason(exc), exc.retry_after) from exc
            raise _CheckFailedError(operator_message(exc)) from exc

    try:
        await _retrying("runware", attempt)
    except _CheckFailedError as exc:
        report.line("runware", False, str(exc))
    else:
        report.line("runware", True, f"key accepted, nothing spent ({settings.runware_api_url})")


async def _check_runbase(settings: Settings, session: aiohttp.ClientSession, report: _Report) -> None:
    """Ask Runbase for a run that cannot exist: `run_not_found` means the key works; nothing is spent."""
    if settings.runbase_api_key is None:
        if "RUNBASE_API_KEY" in settings.empty_variables:
            report.line("runbase", True, "RUNBASE_API_KEY is empty: the Runbase provider is off")
        return
    client = RunbaseClient(
        session,
        api_key=settings.runbase_api_key.get_secret_value(),
        api_url=settings.runbase_api_url,
        options=RunbaseOptions(request_timeout_seconds=REQUEST_TIMEOUT_SECONDS, max_retries=0),
    )

    async def attempt() -> None:
        try:
            await client.verify_key()
        except RunbaseKeyCheckError as exc:
            cause = exc.__cause__
            if isinstance(cause, RunwareError) and cause.retryable:
                raise _RetryableError(exc.message) from exc
            raise _CheckFailedError(operator_message(exc)) from exc
        except RunwareError as exc:
            raise _CheckFailedError(operator_message(exc)) from exc

    try:
        await _retrying("runbase", attempt)
    except _CheckFailedError as exc:
        report.line("runbase", False, str(exc))
    else:
        report.line(
            "runbase",
            True,
            f"key accepted (run_not_found for a run that cannot exist), nothing spent ({settings.runbase_api_url})",
        )


def _runware_reason(exc: RunwareError) -> str:
    return f"Runware answered HTTP {exc.status}" if exc.status else f"cannot reach Runware ({exc.message})"
