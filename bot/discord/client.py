"""The Discord client: intents, extensions, command sync, and where discord.py sends its requests.

`AtelierBot` receives everything it uses (settings, the one aiohttp session, the factory of the domain services) as
keyword arguments from the composition root (`bot.app`). It builds the services with itself as the client the
Discord delivery posts with, so they exist, fully wired, once the bot does; cogs get them from it in `setup()`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import yarl
from discord.ext import commands

from bot.billing.budgets import Budgets
from bot.billing.ledger import Ledger, ReconcileReport
from bot.billing.pools import Pools
from bot.billing.reports import Reports
from bot.discord.delivery import DiscordDelivery
from bot.discord.intents import PrivilegedIntentError, ReplyEditingState, decide
from bot.discord.lean import count_interactions, discord_connector, skip_unused_events
from bot.discord.modlog import DiscordModLog
from bot.discord.tree import AtelierTree
from bot.jobs.concurrency import AdaptiveLimit
from bot.jobs.options import ServerOptions
from bot.jobs.resume import ResumeReport
from bot.jobs.service import GenerationService
from bot.moderation.approvals import ModerationRules
from bot.moderation.policy import Policy
from bot.observability import metrics
from bot.settings import Settings
from bot.storage.audit import AuditRepository
from bot.storage.database import Database
from bot.storage.jobs import JobRepository
from bot.storage.meta import MetaRepository

log = logging.getLogger(__name__)

EXTENSIONS: tuple[str, ...] = (
    "cogs.account",
    "cogs.budget",
    "cogs.settings",
    "cogs.generation",
)
"""Every extension the bot loads, in order; one feature per module, each with `setup()` last."""

DEFAULT_GUILD_READY_TIMEOUT = 2.0
"""Seconds discord.py waits for the last GUILD_CREATE before `on_ready` (its own default)."""

SHUTDOWN_GRACE_SECONDS = 10.0
"""How long a shutdown waits for running commands to finish before closing the connection."""

_COMMANDS_HASH_KEY = "discord.commands_hash"


def minimum_intents(*, message_content: bool = False) -> discord.Intents:
    """Return the gateway intents the bot needs: guilds (roles and channels for permission checks), guild messages.

    Guild messages bring replies that mention the bot (reply editing); such a reply carries its own content without
    any privileged intent, and so does the bot's own result it replies to. Members and their permissions arrive
    inside each interaction, so the privileged Members intent is never needed. The privileged Message Content
    intent (`message_content`, decided by `bot.discord.intents` from `[discord] reply_editing` and the portal's
    flags) is what shows the bot the images of *other* members' messages that a reply points at.
    """
    return discord.Intents(guilds=True, guild_messages=True, message_content=message_content)


@contextmanager
def discord_endpoints(api_base: str, gateway_url: str | None) -> Iterator[None]:
    """Point discord.py's REST base and gateway at the configured URLs for the duration, then restore them.

    Both are class attributes of discord.py (pinned at 2.7.x): `Route.BASE` is read on every request, including
    interaction callbacks and webhooks; `DiscordWebSocket.DEFAULT_GATEWAY` is where a `Client` connects (it never asks
    `GET /gateway/bot`). Nothing may call `discord.http._set_api_version()` meanwhile: it resets `Route.BASE`.
    """
    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = api_base.rstrip("/")
    if gateway_url is not None:
        url = yarl.URL(gateway_url)
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = url if url.path else url.with_path("/")
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def commands_hash(payload: list[dict[str, Any]]) -> str:
    """Return a stable hash of command definitions (as sent to Discord), independent of their order."""
    ordered = sorted(payload, key=lambda command: (command.get("type", 1), command["name"]))
    text = json.dumps(ordered, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Services:
    """The domain services and the Discord delivery, built once by the composition root and handed to the cogs."""

    database: Database
    meta: MetaRepository
    jobs: JobRepository
    budgets: Budgets
    ledger: Ledger
    server_options: ServerOptions
    generation: GenerationService
    delivery: DiscordDelivery
    """How jobs post to Discord; the job service was built with it, and the cogs show statuses through it."""
    audit: AuditRepository
    """The audit trail of settings and budget changes (`/settings audit`)."""
    policy: Policy
    """The channel and role rules and the blocklist; the job service checks requests with this same instance."""
    pools: Pools
    """Team budgets per channel or category (`/budget channel`)."""
    reports: Reports
    """Spend reports (`/budget report`)."""
    moderation: ModerationRules | None = None
    """The mod-log, moderators, approval and safety rules (`/settings modlog|moderators|approval|safety`)."""
    modlog: DiscordModLog | None = None
    """Posts to the mod-log; the job service was built with it."""
    lanes: Mapping[str, AdaptiveLimit] = field(default_factory=dict)
    """Each provider's adaptive concurrency limit (its scheduler lane), by provider name."""


ServicesFactory = Callable[["AtelierBot"], Services]
"""Builds the services for a bot (the composition root's `build_services`); the bot is the delivery's client."""


GATEWAY_AUTHENTICATION_FAILED = 4004
"""Gateway close code: the token was refused (reset in the developer portal, or never valid)."""

GATEWAY_CLOSE_REASONS = {
    4004: "Authentication failed",
    4010: "Invalid shard",
    4011: "Sharding required",
    4012: "Invalid API version",
    4013: "Invalid intent(s)",
    4014: "Disallowed intent(s)",
}
"""Discord's names for the gateway close codes after which discord.py does not reconnect."""


class InvalidTokenError(Exception):
    """Discord refused the bot token (HTTP 401 on login, or gateway close 4004); `str()` says which."""


class DiscordUnavailableError(Exception):
    """Discord could not be used: a server error on login, or the gateway closed for good; `str()` says which."""


class ShardingRefusedError(Exception):
    """The gateway refused the shard (4010 Invalid shard, 4011 Sharding required): `ATELIER_SHARDS` must change."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


class DiscordRefusedError(Exception):
    """Discord (or what answers at `DISCORD_API_BASE`) refused a request at start-up with a 4xx other than 401/429."""


def connection_failure(exc: BaseException) -> Exception | None:
    """Return the bot's own error for why discord.py stopped connecting, or None if `exc` is not such a reason."""
    if isinstance(exc, discord.LoginFailure):
        return InvalidTokenError("401 Unauthorized")
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return PrivilegedIntentError(str(exc))
    if isinstance(exc, discord.ConnectionClosed):
        reason = f"the gateway closed the connection with {exc.code} {GATEWAY_CLOSE_REASONS.get(exc.code, '')}".rstrip()
        if exc.code == GATEWAY_AUTHENTICATION_FAILED:
            return InvalidTokenError(reason)
        if exc.code in (4010, 4011):
            return ShardingRefusedError(reason, exc.code)
        return DiscordUnavailableError(reason)
    if isinstance(exc, discord.GatewayNotFound):  # `GET /gateway/bot` failed: Discord's recommended shard count
        return DiscordUnavailableError(str(exc))
    if isinstance(exc, discord.HTTPException):
        status = f"HTTP {exc.status} {exc.response.reason or ''}".rstrip()
        if exc.status >= 500 or exc.status == 429:  # an outage, or rate limited: it passes
            return DiscordUnavailableError(status)
        return DiscordRefusedError(f"{status}: {exc.text}" if exc.text else status)
    return None


_CALLBACK_PATH = re.compile(r"/interactions/(\d+)/[^/]+/callback$")
"""The path of an interaction's acknowledgement (its initial response); the id's snowflake says when it was made."""


def observe_discord_http() -> aiohttp.TraceConfig:
    """Trace discord.py's HTTP session for the metrics: every 429, and each acknowledgement's latency.

    The latency runs from the interaction's creation (its snowflake's time, Discord's own clock, which is what its
    3-second deadline counts from) to the answer to the acknowledgement. Memory only: no request is added.
    """

    async def on_request_end(
        _session: aiohttp.ClientSession, _context: Any, params: aiohttp.TraceRequestEndParams
    ) -> None:
        current = metrics.current()
        status = params.response.status
        if status == 429:
            current.too_many_requests("discord")
            return
        match = _CALLBACK_PATH.search(params.url.path)
        if match is not None and status < 400:
            created = discord.utils.snowflake_time(int(match.group(1)))
            current.acknowledged((discord.utils.utcnow() - created).total_seconds())

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


def _count_interaction(kind: int) -> None:
    """Count one interaction for the metrics, by its type's name (an unknown type by its number)."""
    try:
        name = discord.InteractionType(kind).name
    except ValueError:
        name = str(kind)
    metrics.current().interaction(name)


class AtelierBot(commands.Bot):
    """The Discord bot: loads `EXTENSIONS`, syncs commands when they changed, and keeps the shared services."""

    def __init__(
        self,
        *,
        settings: Settings,
        session: aiohttp.ClientSession,
        services: ServicesFactory,
        extensions: tuple[str, ...] = EXTENSIONS,
        guild_ready_timeout: float = DEFAULT_GUILD_READY_TIMEOUT,
    ) -> None:
        # Atelier has no voice features, so discord.py's start-up warnings about voice libraries are only noise.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        # discord.py keeps this very object and reads it at every IDENTIFY (pinned at 2.7.x): `setup_hook`, after
        # login read the application's flags, switches Message Content on or off in it before the gateway connects.
        self._gateway_intents = minimum_intents(message_content=settings.app.discord.reply_editing is True)
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=self._gateway_intents,
            tree_cls=AtelierTree,
            allowed_mentions=discord.AllowedMentions.none(),
            chunk_guilds_at_startup=False,
            # No message cache: nothing reads it (a reply's target comes in its event, or is fetched), and keeping
            # one made every MESSAGE_UPDATE (each edit of a status or result) search 1,000 messages and copy one.
            max_messages=None,
            guild_ready_timeout=guild_ready_timeout,
            http_trace=observe_discord_http(),
            **self._sharding(settings),
        )
        skip_unused_events(self._connection.parsers, lambda: self.user.id if self.user is not None else None)
        count_interactions(self._connection.parsers, _count_interaction)
        self.settings = settings
        self.session = session
        """The one aiohttp session for the bot's own HTTP (Runware, image downloads); discord.py keeps its own."""
        self.services = services(self)
        """The services, built by the composition root's factory with this bot as the delivery's client."""
        self._extensions = extensions
        self._jobs_started: asyncio.Task[ResumeReport | None] | None = None
        self.reconciled: ReconcileReport | None = None
        """The start-up reconcile's report (`bot.app` runs it before connecting): the job service does not repeat it."""
        self.reply_editing = ReplyEditingState(mode=settings.app.discord.reply_editing, allowed=None)
        """Whether reply editing is on (the Message Content intent), decided at login from the portal's flags."""
        self._shards_up: set[int | None] = set()

    @staticmethod
    def _sharding(settings: Settings) -> dict[str, Any]:
        """discord.py's shard options for this client: none (one unsharded connection); see `ShardedAtelierBot`."""
        return {}

    def _own_shard_ids(self) -> frozenset[int | None]:
        """Return the connections `/healthz` waits for: the one unsharded one (`None`); see `ShardedAtelierBot`."""
        return frozenset([None])

    @property
    def atelier_tree(self) -> AtelierTree:
        """The command tree, typed as the bot's own subclass."""
        tree = self.tree
        assert isinstance(tree, AtelierTree)
        return tree

    async def setup_hook(self) -> None:
        """Decide the Message Content intent, load the extensions, then sync the commands if they changed.

        Runs after login, which read the application (`GET /applications/@me`) and before the gateway connects.
        Raises `PrivilegedIntentError` if `reply_editing = true` and the portal does not allow the intent.
        """
        self._decide_message_content()
        for extension in self._extensions:
            await self.load_extension(extension)
        log.info("Loaded %d extension(s): %s", len(self._extensions), ", ".join(self._extensions))
        shards = self.settings.shards
        if shards is not None and not shards.syncs_commands:
            log.info("Running shards %s; the process running shard 0 syncs the commands", shards)
            return
        try:
            await self.sync_commands()
        except discord.HTTPException:
            # Commands synced earlier keep working; the next start tries again because the hash was not stored.
            log.exception("Syncing the commands failed; Discord may show outdated commands until the next start")

    def _decide_message_content(self) -> None:
        """Set the Message Content intent from `[discord] reply_editing` and the application's flags."""
        mode = self.settings.app.discord.reply_editing
        self.reply_editing = decide(mode, self.application.flags.value if self.application is not None else 0)
        self._gateway_intents.message_content = self.reply_editing.on
        log.info("%s", self.reply_editing.summary())
        advice = self.reply_editing.advice()
        if advice is not None and mode == "auto":
            log.info("To turn reply editing on: %s", advice)

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Sync to `ATELIER_DEV_GUILD` if set, else globally, only if the definitions changed; True if synced."""
        if self.application_id is None:
            raise RuntimeError("sync_commands() needs the application id, which is known after login")
        dev_guild = self.settings.dev_guild
        guild = discord.Object(dev_guild) if dev_guild is not None else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        payload = [command.to_dict(self.tree) for command in self.tree.get_commands(guild=guild)]
        digest = commands_hash(payload)
        scope = f"guild:{dev_guild}" if dev_guild is not None else "global"
        key = f"{_COMMANDS_HASH_KEY}:{self.application_id}:{scope}"
        if dev_guild is not None:
            await self._forget_global_sync()
        if not force and await self.services.meta.get(key) == digest:
            log.info("Commands unchanged (%s, %d command(s)); not syncing", scope, len(payload))
            return False
        synced = await self.tree.sync(guild=guild)
        await self.services.meta.set(key, digest)
        log.info("Synced %d command(s) (%s)", len(synced), scope)
        return True

    async def _forget_global_sync(self) -> None:
        """Warn that globally synced commands stay in Discord while syncing to the dev guild, and forget their hash.

        They are not deleted: another instance of the same application may rely on them. Forgetting the hash makes
        the next start without `ATELIER_DEV_GUILD` sync again, even if someone cleared them by hand meanwhile.
        """
        if await self.services.meta.delete(f"{_COMMANDS_HASH_KEY}:{self.application_id}:global"):
            log.warning(
                "ATELIER_DEV_GUILD is set but the commands were synced globally before: Discord keeps the global "
                "ones, so servers may show each command twice. Clearing them is described in the README "
                "(Create the Discord application)"
            )

    async def login(self, token: str) -> None:
        """Log in on a session whose connections to Discord are capped (`bot.discord.lean`), then as discord.py does."""
        if self.http.connector is discord.utils.MISSING:
            self.http.connector = discord_connector(self.settings.app.limits.delivery_concurrency)
        await super().login(token)

    async def serve(self, token: str, stop: asyncio.Event) -> None:
        """Log in and stay connected until `stop` is set (or the connection ends for good), then shut down cleanly.

        Raises `InvalidTokenError` if Discord refuses the token (on login, or later on the gateway),
        `PrivilegedIntentError` if it refuses the Message Content intent, `DiscordRefusedError` for another refusal
        (a 4xx), `DiscordUnavailableError` for a server error
        on login or a gateway closed for good; network errors (`OSError`, `aiohttp.ClientError`) propagate.
        """
        runner = asyncio.create_task(self.start(token), name="atelier-discord")
        stopper = asyncio.create_task(stop.wait(), name="atelier-stop")
        try:
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            runner.cancel()
            raise
        finally:
            stopper.cancel()
        if not runner.done():
            log.info("Shutting down")
            await self.shutdown()
        try:
            await runner
        except Exception as exc:
            if stop.is_set():
                # Stopped while still connecting: the half-open connection was closed under it, which is expected.
                log.debug("Connection ended during shutdown", exc_info=True)
                return
            failure = connection_failure(exc)
            if failure is None:
                raise
            raise failure from exc

    async def shutdown(self, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Let running commands and jobs finish (new ones are turned away politely), then close the connection.

        Jobs still running after the grace period stay `submitted` or `queued` in the database and resume on the
        next start; they are never re-submitted to Runware.
        """
        if self.is_closed():
            # Without a connection nothing can be delivered: interrupt the jobs at once, to be resumed later.
            await self.services.generation.stop(grace=0)
            self.services.delivery.close()
            return
        await self.atelier_tree.drain(grace_seconds)
        if self._jobs_started is not None:
            # A start that is still resuming jobs finishes first, so the stop below really stops everything.
            await asyncio.wait({self._jobs_started})
        await self.services.generation.stop(grace=grace_seconds)
        self.services.delivery.close()
        await self.close()

    async def on_message(self, message: discord.Message, /) -> None:
        """Ignore messages: no prefix commands here (`cogs.generation.edit` handles replies that mention the bot)."""

    async def on_ready(self) -> None:
        """Log once the gateway session is ready; the first time, start the job service (it can deliver now)."""
        self._gateway_state(None, up=True)
        user = self.user
        shards = f" on shards {self.settings.shards}" if self.settings.shards is not None else ""
        log.info("Ready as %s (id %s) in %d guild(s)%s", user, user.id if user else "?", len(self.guilds), shards)
        if self._jobs_started is None and not self.atelier_tree.closing:
            self._jobs_started = asyncio.create_task(self._start_jobs(), name="atelier-start-jobs")

    async def _start_jobs(self) -> ResumeReport | None:
        """Resume the jobs a previous run left unfinished (each delivered and charged once), then run new ones.

        Return what the start found (None if the job service could not start).
        """
        try:
            report = await self.services.generation.resume(self.reconciled)
        except Exception:
            log.exception("The job service could not start; queued jobs wait for the next start")
            return None
        log.info(
            "Job service started: %d resumed, %d re-queued, %d awaiting approval",
            len(report.resumed),
            len(report.requeued),
            len(report.waiting_approval),
        )
        return report

    async def on_resumed(self) -> None:
        """Log a resumed gateway session (after a dropped connection)."""
        self._gateway_state(None, up=True)
        log.info("Gateway session resumed")

    async def on_disconnect(self) -> None:
        """Mark the gateway down for `/healthz` until the session is ready or resumed again."""
        self._gateway_state(None, up=False)

    def _gateway_state(self, shard_id: int | None, *, up: bool) -> None:
        """Record one connection (`None`: the unsharded one) as up or down; `/healthz` is up when all of ours are."""
        own = self._own_shard_ids()
        if shard_id not in own:
            return
        if up:
            self._shards_up.add(shard_id)
        else:
            self._shards_up.discard(shard_id)
        health = metrics.current().health
        if self._shards_up >= own:
            health.gateway_up()
        else:
            health.gateway_down()
