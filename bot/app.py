"""The composition root of the Discord bot: settings in, one session, one database, the services, the bot, run.

`run(settings)` is what `python -m bot run` (through `bot.cli`) calls; it returns the process exit status. `open_bot()`
builds the same object graph for tests, which start it in their own event loop against a fake Discord.

Construction order: the session and the database first, then the bot, which builds the services with
`build_services` (the Discord delivery needs the bot as its client; the job service is built with that delivery).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger
from bot.billing.operator import operator_grace_for
from bot.billing.pools import Pools
from bot.billing.pricing import Pricing
from bot.billing.reports import Reports
from bot.catalog.vocabulary import ProviderName
from bot.clock import utc_now
from bot.discord.client import (
    DEFAULT_GUILD_READY_TIMEOUT,
    EXTENSIONS,
    AtelierBot,
    DiscordRefusedError,
    DiscordUnavailableError,
    InvalidTokenError,
    Services,
    ShardingRefusedError,
    discord_endpoints,
)
from bot.discord.delivery import DiscordDelivery
from bot.discord.intents import PrivilegedIntentError
from bot.discord.modlog import DiscordModLog
from bot.discord.sharding import ShardedAtelierBot, refusal_advice
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.heap import settle as settle_heap
from bot.images import DISCORD_IMAGE_HOSTS
from bot.jobs.concurrency import current_of, lane_scheduler, provider_lanes
from bot.jobs.options import ServerOptions
from bot.jobs.scheduler import JobScheduler
from bot.jobs.service import GenerationService
from bot.jobs.shared import cache_drops, share_caches, shared_scheduler
from bot.log import setup_logging
from bot.moderation.approvals import ModerationRules
from bot.moderation.policy import Policy
from bot.observability import metrics
from bot.observability.metrics import Metrics
from bot.observability.server import MetricsServerError, ObservabilityServer
from bot.providers.base import Provider, Providers
from bot.providers.runbase import RunbaseProvider
from bot.providers.runware import RunwareProvider
from bot.runbase.client import RunbaseClient, RunbaseOptions
from bot.runware.client import LoadSignals, RunwareClient
from bot.settings import Settings, SettingsError
from bot.storage.audit import AuditRepository
from bot.storage.database import Database, DatabaseError, DatabaseUnreachableError
from bot.storage.jobs import JobRepository
from bot.storage.meta import MetaRepository
from bot.storage.notify import NotifyBus
from bot.storage.runs import RunRepository

log = logging.getLogger(__name__)

HTTP_TIMEOUT_SECONDS = 120.0
"""Ceiling for one request on the shared session; clients set tighter timeouts of their own."""


def reference_hosts(settings: Settings) -> frozenset[str]:
    """Hosts reference images may be downloaded from: Discord's CDN and media proxy, plus the configured API host.

    The API host matters when `DISCORD_API_BASE` points at a local Discord (tests, a proxy): attachment URLs then
    point there too.
    """
    api_host = (urlsplit(settings.discord_api_base).hostname or "").lower()
    return DISCORD_IMAGE_HOSTS | ({api_host} if api_host else set())


def require_provider_key(settings: Settings) -> None:
    """Raise `SettingsError` unless RUNWARE_API_KEY or RUNBASE_API_KEY is set (contract §5.1, §5.4)."""
    if settings.runware_api_key is None and settings.runbase_api_key is None:
        purpose = " (or RUNBASE_API_KEY: one provider key is needed)"
        raise SettingsError("RUNWARE_API_KEY", settings.missing("RUNWARE_API_KEY", purpose))


def build_providers(
    database: Database,
    settings: Settings,
    session: aiohttp.ClientSession,
    *,
    runware_load: LoadSignals | None = None,
    runbase_load: LoadSignals | None = None,
) -> tuple[Providers, RunwareClient | None]:
    """Build a provider for each configured key (Runware, Runbase, or both) and return them with the Runware client.

    Runbase alone needs no Runware key: its references go as Discord URLs, its results are downloaded from Runbase.
    One `RunbaseClient` per key, so its limiter sees every request of that key; `runware_load` and `runbase_load` hear
    how each provider copes with the load (its lane's adaptive concurrency limit). Raises `SettingsError` with no key.
    """
    require_provider_key(settings)
    config = settings.app
    jobs = JobRepository(database)
    built: list[Provider] = []
    runware: RunwareClient | None = None
    if settings.runware_api_key is not None:
        runware = RunwareClient(
            session,
            api_key=settings.require_runware_key(),
            api_url=settings.runware_api_url,
            config=config.runware,
            load=runware_load,
        )
        built.append(RunwareProvider(runware, jobs, config.runware, utc_now))
    if settings.runbase_api_key is not None:
        options = RunbaseOptions.from_config(config.runware)
        runbase = RunbaseClient(
            session,
            api_key=settings.require_runbase_key(),
            api_url=settings.runbase_api_url,
            options=options,
            load=runbase_load,
        )
        built.append(RunbaseProvider(runbase, jobs, RunRepository(database)))
    return Providers(*built), runware


def build_services(
    database: Database,
    settings: Settings,
    session: aiohttp.ClientSession,
    bot: AtelierBot,
    *,
    bus: NotifyBus | None = None,
) -> Services:
    """Build the services on an open database, the one HTTP session and the bot (the client the delivery posts with).

    With a `bus` (PostgreSQL: several processes may share the database) jobs run from the database's one queue
    (`bot.jobs.shared.SharedScheduler`) and a change of a server's settings made by another process drops this
    process's cached copy; without one, the in-process fair scheduler runs them (SQLite: one process).
    Raises `SettingsError` if neither RUNWARE_API_KEY nor RUNBASE_API_KEY is set.
    """
    config = settings.app
    jobs = JobRepository(database)
    delivery = DiscordDelivery(bot, jobs.get)
    moderation = ModerationRules(database)
    modlog = DiscordModLog(bot, moderation, delivery)
    budgets = Budgets(database, config)
    ledger = Ledger(database, budgets, operator_grace=operator_grace_for(config.runware))
    server_options = ServerOptions(database, config)
    policy = Policy(database)
    lanes = provider_lanes(config.limits)
    scheduler: JobScheduler
    if bus is None:
        scheduler = lane_scheduler(config.limits, lanes)
    else:
        scheduler = shared_scheduler(database, config.limits, lanes, bus, lease_seconds=config.limits.job_lease_seconds)
        share_caches(bus, drops=cache_drops(server_options, policy, moderation))
    metrics.current().watch_queue(lambda: scheduler.waiting_count, lambda: scheduler.running_count)
    for provider, lane in lanes.items():
        metrics.current().watch_limit(provider, current_of(lane))
    providers, runware = build_providers(
        database,
        settings,
        session,
        runware_load=lanes[ProviderName.RUNWARE.value],
        runbase_load=lanes[ProviderName.RUNBASE.value],
    )
    generation = GenerationService(
        database,
        runware,
        session,
        ledger,
        Pricing(config),
        config,
        scheduler,
        server_options=server_options,
        delivery=delivery,
        policy=policy,
        allowed_hosts=reference_hosts(settings),
        rules=moderation,
        modlog=modlog,
        providers=providers,
        routing=settings.routing(),
    )
    return Services(
        database=database,
        meta=MetaRepository(database),
        jobs=jobs,
        budgets=budgets,
        ledger=ledger,
        server_options=server_options,
        generation=generation,
        delivery=delivery,
        audit=AuditRepository(database),
        policy=policy,
        moderation=moderation,
        modlog=modlog,
        pools=Pools(database, budgets),
        reports=Reports(database, budgets),
        lanes=lanes,
    )


@asynccontextmanager
async def open_bot(
    settings: Settings,
    *,
    extensions: tuple[str, ...] = EXTENSIONS,
    guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
) -> AsyncIterator[AtelierBot]:
    """Open the session and the database, build the bot and its services; on exit shut all of it down in order.

    The job service starts running jobs (and resumes unfinished ones) when the bot is first ready; on exit it stops
    before the database closes, leaving interrupted jobs for the next start.

    Each bot gets fresh metrics (`bot.observability`); with `ATELIER_METRICS_PORT` set, `/healthz` and `/metrics` are
    served from before the database opens (a port already taken fails the start with nothing created) until the
    bot has shut down. Raises `MetricsServerError` if the port cannot be bound.
    """
    observed = Metrics()
    previous = metrics.install(observed)
    server: ObservabilityServer | None = None
    try:
        if settings.metrics_port is not None:
            server = ObservabilityServer(settings.metrics_port, observed)
            await server.start()
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            await Database.open(settings.database_target) as database,
        ):
            if server is not None:
                server.ping = partial(database.run, _ping, write=False)
            bus = NotifyBus(str(settings.database_target)) if database.engine == "postgresql" else None
            bot = ShardedAtelierBot(
                settings=settings,
                session=session,
                services=partial(build_services, database, settings, session, bus=bus),
                extensions=extensions,
                guild_ready_timeout=guild_ready_timeout,
            )
            try:
                if bus is not None:  # listening before any job is queued or any setting read
                    try:
                        await bus.start()
                    except ConnectionError as exc:
                        raise DatabaseUnreachableError(str(exc)) from exc
                # Holds left open by a crash are settled or released before any new request can reserve (the bot is
                # not connected yet).
                bot.reconciled = await bot.services.ledger.reconcile()
                yield bot
            finally:
                await bot.shutdown()
                if bus is not None:
                    await bus.stop()
                if server is not None:
                    server.ping = None
        log.info("Closed the HTTP session and the database")
    finally:
        if server is not None:
            await server.stop()
        metrics.install(previous)


def _ping(conn: sqlite3.Connection) -> object:
    """Run the health check's database query, the cheapest one that proves the connection answers."""
    return conn.execute("SELECT 1").fetchone()


def _install_signal_handlers(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            # Windows event loops have no signal handlers; Ctrl+C then ends the process the usual way.
            continue
        installed.append(sig)
    return installed


async def run_bot(settings: Settings) -> int:
    """Run the bot until SIGINT or SIGTERM; return the exit status.

    Every way start-up can fail is one line on stderr, never a traceback: 2 for what the operator must fix (the token,
    the Message Content intent, the database, an endpoint that refuses the login), 1 when Discord cannot be reached or
    is unavailable.
    """
    token = settings.require_discord_token()
    require_provider_key(settings)
    stop = asyncio.Event()
    installed = _install_signal_handlers(stop)
    try:
        with discord_endpoints(settings.discord_api_base, settings.discord_gateway_url):
            async with open_bot(settings) as bot:
                settle_heap()  # everything start-up builds exists now; see bot.heap
                await bot.serve(token, stop)
    except InvalidTokenError as exc:
        print(
            f"atelier: DISCORD_TOKEN: Discord refused the token ({exc}); "
            "copy it again from the developer portal's Bot tab",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except PrivilegedIntentError:
        print(
            "atelier: [discord] reply_editing = true needs the Message Content intent: switch on "
            '"Message Content Intent" in the developer portal (Bot tab, Privileged Gateway Intents), '
            'or set reply_editing = "auto" (reply editing then follows that switch)',
            file=sys.stderr,
        )
        return EXIT_USAGE
    except DatabaseUnreachableError as exc:
        print(f"atelier: ATELIER_DATABASE: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DatabaseError as exc:
        print(f"atelier: ATELIER_DATABASE: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MetricsServerError as exc:
        print(f"atelier: ATELIER_METRICS_PORT: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (aiohttp.ClientConnectionError, OSError) as exc:
        print(f"atelier: cannot reach Discord at {settings.discord_api_base}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except ShardingRefusedError as exc:
        print(f"atelier: ATELIER_SHARDS: {refusal_advice(exc, settings.shards)}", file=sys.stderr)
        return EXIT_USAGE
    except DiscordUnavailableError as exc:
        print(f"atelier: Discord is unavailable ({exc}); try again later", file=sys.stderr)
        return EXIT_FAILED
    except DiscordRefusedError as exc:
        print(
            f"atelier: DISCORD_API_BASE: {settings.discord_api_base} refused the bot's login ({exc}); "
            "check DISCORD_API_BASE and DISCORD_TOKEN",
            file=sys.stderr,
        )
        return EXIT_USAGE
    finally:
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)
    log.info("Stopped cleanly")
    return EXIT_OK


def run(settings: Settings) -> int:
    """Set up logging and run the bot in a new event loop; return the exit status."""
    settings.require_discord_token()
    setup_logging(settings.log_level, secrets=settings.secret_values(), log_format=settings.log_format)
    return event_loop_runner()(run_bot(settings))


def event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """Return how the bot's event loop is run: uvloop where it is installed (Linux and macOS), else asyncio's own.

    uvloop's loop and transports take less CPU for the same work: about a fifth less per job in the
    `bench/interactions.py` burst, where the bot is bound by its one event loop's CPU.
    """
    try:
        import uvloop  # optional: not installed on Windows
    except ImportError:
        return asyncio.run
    return uvloop.run
