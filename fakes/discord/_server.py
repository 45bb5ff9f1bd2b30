"""FakeDiscord: the aiohttp app (REST under /api/v9|v10, CDN, media proxy, gateway WebSocket) and its test-facing
controls.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from aiohttp import BodyPartReader, WSMsgType, web

from fakes.openapi_check import OpenAPIChecker, get_checker

from ._flags import ALL_INTENTS, DEFAULT_BOT_PERMISSIONS, PRIVILEGED_INTENTS, Intent
from ._gateway import OP, GatewaySession, frame
from ._inject import InjectMixin
from ._models import FakeGuild, FakeInteraction, FakeMessage, StoredBlob
from ._records import RecordedRequest, UploadedFile
from ._rest import RequestContext, RestMixin
from ._rules import CODE_INVALID_JSON, FakeHTTPError

__all__ = ["FakeDiscord"]

_API_PATH = re.compile(r"^/api(?:/v(?P<version>\d+))?(?P<path>/.*)$")
_JSON = "application/json"


@dataclass
class _Planned429:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    global_: bool


@dataclass
class _PlannedError:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    status: int


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class FakeDiscord(RestMixin, InjectMixin):
    """A fake Discord (REST + gateway + CDN) on 127.0.0.1 that an unmodified discord.py client talks to.

    Point discord.py at it with ``Route.BASE = fake.api_base`` and
    ``DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`` (the Atelier bot does this from
    DISCORD_API_BASE / DISCORD_GATEWAY_URL). See shared/reference/discord-testing.md for the protocol details.
    """

    def __init__(
        self,
        *,
        application_id: int = 4242,
        bot_user_id: int = 4242,
        token: str = "fake-bot-token",
        heartbeat_interval_ms: int = 45000,
        ack_deadline: float = 3.0,
        validate_openapi: bool = True,
        attachment_size_limit: int = 10 * 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = 15 * 60.0,
        strict_intents: bool = True,
        validate_responses: bool = False,
        spec_path: Path | None = None,
        control_api: bool = False,
        bot_name: str = "Atelier",
        bot_permissions: int = int(DEFAULT_BOT_PERMISSIONS),
        replay_buffer: int = 10_000,
        privileged_intents: int = int(PRIVILEGED_INTENTS),
        shard_count: int = 1,
        require_shards: bool = False,
    ) -> None:
        """Configure the fake; nothing listens until :meth:`start`.

        ``strict_intents`` applies Discord's intent rules (member list in GUILD_CREATE needs GUILD_PRESENCES, message
        content needs MESSAGE_CONTENT unless the bot is mentioned). ``validate_responses`` also checks the fake's own
        replies against the spec (into ``openapi_response_failures``). ``control_api`` serves ``/_fake/…`` for
        another process (standalone mode). ``bot_permissions`` go to the bot's managed role in every new guild;
        ``replay_buffer`` is how many events a session keeps for RESUME. ``privileged_intents`` are the privileged
        intents switched on in the developer portal (default: all three; ``GET /applications/@me`` serves their
        ``_LIMITED`` flags, or the attribute ``application_flags`` when a test sets it, which then rules the gateway
        too); an IDENTIFY asking for another one is closed with 4014, as Discord does. ``shard_count`` is what
        ``GET /gateway/bot`` recommends and the only count an IDENTIFY's ``shard`` may name (else 4010); each server's
        events go to the session of its shard; ``require_shards`` closes an IDENTIFY without ``shard`` with 4011.
        """
        super().__init__(
            application_id=application_id,
            bot_user_id=bot_user_id,
            token=token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            ack_deadline=ack_deadline,
            validate_openapi=validate_openapi,
            attachment_size_limit=attachment_size_limit,
            host=host,
            port=port,
            token_ttl=token_ttl,
            strict_intents=strict_intents,
            validate_responses=validate_responses,
            bot_name=bot_name,
            bot_permissions=bot_permissions,
            replay_buffer=replay_buffer,
            privileged_intents=privileged_intents,
            shard_count=shard_count,
            require_shards=require_shards,
        )
        self.spec_path = spec_path
        self.control_api = control_api
        self.gateway_connections: list[str] = []
        self._checker: OpenAPIChecker | None = None
        self._runner: web.AppRunner | None = None
        self._planned: list[_Planned429] = []
        self._planned_errors: list[_PlannedError] = []
        self._route_table = self._routes()
        self._sockets: set[web.WebSocketResponse] = set()
        self.gateway_open = asyncio.Event()
        """Cleared: new gateway connections wait before HELLO (an outage; `kill_gateway` then keeps the bot out)."""
        self.gateway_open.set()
        self.internal_errors: list[str] = []
        self.api_latency = 0.0
        """Seconds each REST answer waits before it is sent: the round trip to the real Discord (none on 127.0.0.1)."""
        self.api_peers: set[tuple[str, int]] = set()
        """The client address of every connection a REST request came in on (one entry per TCP connection)."""
        self.proxied: dict[str, StoredBlob] = {}
        """Pictures from other sites behind the media proxy (:meth:`external_image`), by their decoded proxy path."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The port it listens on (after :meth:`start`)."""
        return int(self._require_started().rsplit(":", 1)[1])

    @property
    def openapi_skip_reason(self) -> str | None:
        """Why requests are not being validated, or ``None`` when they are."""
        if not self.validate_openapi:
            return "OpenAPI validation is switched off (validate_openapi=False)"
        if self._checker is None:
            return "the fake has not been started"
        return self._checker.skip_reason

    async def start(self) -> None:
        """Load the OpenAPI spec (once per process, in a thread) and start listening."""
        if self._runner is not None:
            raise RuntimeError("this FakeDiscord is already started")
        if self.validate_openapi:
            self._checker = await asyncio.to_thread(get_checker, self.spec_path)
        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/api/{tail:.*}", self._handle_api)
        app.router.add_get("/attachments/{owner}/{blob}/{filename}", self._handle_cdn)
        app.router.add_get("/ephemeral-attachments/{owner}/{blob}/{filename}", self._handle_cdn)
        app.router.add_get("/external/{signature}/{tail:.+}", self._handle_media_proxy)
        app.router.add_get("/", self._handle_gateway)
        app.router.add_get("/resume-gateway/", self._handle_gateway)
        if self.control_api:
            from ._control import add_control_routes

            add_control_routes(app, self)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        """Close every gateway socket (code 1001) and stop listening."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake Discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        """Start, for ``async with FakeDiscord() as fake``."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close."""
        await self.close()

    # ------------------------------------------------------------------ test controls

    def plan_429(
        self, method: str, path_regex: str, *, times: int = 1, retry_after: float = 0.05, global_: bool = False
    ) -> None:
        """Answer the next ``times`` matching requests with a 429 that discord.py honours and retries.

        ``path_regex`` is searched in the path after ``/api/v10`` (e.g. ``r"^/channels/\\d+/messages$"``).
        """
        self._planned.append(_Planned429(method.upper(), re.compile(path_regex), times, retry_after, global_))

    def plan_error(self, method: str, path_regex: str, status: int = 503, *, times: int = 1) -> None:
        """Answer the next ``times`` matching requests with ``status`` (an outage: 500, 502, 503, 504…).

        ``path_regex`` is searched as in :meth:`plan_429`. discord.py retries 500, 502, 504 and 524 up to five times
        (sleeping 1, 3, 5, 7 s) and raises ``DiscordServerError`` at once for other 5xx such as 503.
        """
        self._planned_errors.append(_PlannedError(method.upper(), re.compile(path_regex), times, status))

    async def reset_token(self, new_token: str | None = None) -> str:
        """Regenerate the bot token, as **Reset Token** in the developer portal does; return the new token.

        The old token stops working at once: REST answers 401 and a RESUME or IDENTIFY with it is closed with 4004
        (Authentication failed). Connected clients are disconnected here (code 4000) so they meet that at once, as a
        bot on Discord does at its next reconnect.
        """
        self.token = new_token or f"fake-bot-token-{secrets.token_hex(8)}"
        for session in self.sessions:
            ws = session.ws
            session.ws = None
            session.invalid = True
            if ws is not None and not ws.closed:
                await self._close_socket(ws, 4000, "token reset")
        self._notify()
        return self.token

    def advance_time(self, seconds: float) -> None:
        """Move the fake's clock forward (interaction tokens expire after ``token_ttl`` of fake time)."""
        self.clock.advance(seconds)
        self._notify()

    def external_image(self, url: str, data: bytes, content_type: str | None = None) -> dict[str, Any]:
        """Serve ``data`` as the picture at ``url`` on another site, through the fake's media proxy.

        Returns the embed media object Discord stores in an embed's ``image`` or ``thumbnail`` for it: ``url`` is
        the outside address (which the fake never serves, like any site Discord does not own) and ``proxy_url``
        Discord's cached copy, ``{base}/external/{signature}/{scheme}/{host}{path}`` as on
        ``images-ext-1.discordapp.net``, which the fake serves (each download is recorded in :attr:`cdn_hits`).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an external image needs an http(s) address, not {url!r}")
        signature = hashlib.sha256(url.encode()).hexdigest()[:43]
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        proxy_path = f"/external/{signature}/{parts.scheme}/{parts.netloc}{quote(path, safe='/')}"
        blob = StoredBlob.build(
            blob_id=self.new_id(),
            data=data,
            filename=parts.path.rsplit("/", 1)[-1] or "image",
            content_type=content_type,
            url=url,
        )
        blob.proxy_url = self.base_url + proxy_path
        self.proxied[unquote(proxy_path)] = blob
        media: dict[str, Any] = {"url": url, "proxy_url": blob.proxy_url, "flags": 0}
        if blob.width is not None and blob.height is not None:
            media.update(width=blob.width, height=blob.height)
        if blob.content_type:
            media["content_type"] = blob.content_type
        return media

    async def kill_gateway(self, code: int = 4000, *, resumable: bool = True, shard: int | None = None) -> None:
        """Close every connected gateway socket (only shard ``shard``'s, if given) with ``code``; the client
        reconnects and RESUMEs.

        With ``resumable=False`` the sessions are invalidated: RESUME gets INVALID_SESSION and the client IDENTIFYs.
        """
        sessions = [s for s in self.sessions if s.connected and (shard is None or (s.shard or [0])[0] == shard)]
        if not sessions:
            raise RuntimeError("no connected gateway session to kill")
        for session in sessions:
            ws = session.ws
            session.ws = None
            if not resumable:
                session.invalid = True
            if ws is not None:
                await self._close_socket(ws, code, "closed by the test")
        self._notify()

    async def announce_guild(self, guild_id: int) -> None:
        """Send GUILD_CREATE for ``guild_id`` again, so connected clients pick up roles, channels and members.

        World changes made after READY are otherwise invisible to the bot's cache (the fake sends no
        CHANNEL_CREATE / GUILD_ROLE_* / GUILD_MEMBER_* events); interaction payloads always carry current data.
        """
        guild = self.guild(guild_id)
        await self._broadcast(
            "GUILD_CREATE",
            lambda s: (
                self._guild_create(guild, s.intents) if not self.strict_intents or s.intents & Intent.GUILDS else None
            ),
            guild_id=guild_id,
        )

    async def wait_ready(self, timeout: float = 10.0, *, shard: int | None = None) -> GatewaySession:  # noqa: ASYNC109
        """Wait until a client IDENTIFYed (as shard ``shard``, if given), got READY and GUILD_CREATE, and is
        connected; returns its session."""
        return await self.wait_until(
            lambda: next(
                (
                    s
                    for s in self._live_sessions()
                    if s.connected and (shard is None or (s.shard is not None and s.shard[0] == shard))
                ),
                None,
            ),
            timeout=timeout,
            what="a bot to IDENTIFY and receive READY + GUILD_CREATE" + ("" if shard is None else f" as shard {shard}"),
        )

    async def wait_disconnected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until no client is connected to the gateway (e.g. after stopping a bot process)."""
        await self.wait_until(
            lambda: not any(s.connected for s in self.sessions), timeout=timeout, what="every client to disconnect"
        )

    async def wait_synced(self, count: int = 1, timeout: float = 10.0) -> dict[int | None, list[dict[str, Any]]]:  # noqa: ASYNC109
        """Wait until the bot has synced commands ``count`` times in total; returns :attr:`commands`."""
        await self.wait_until(lambda: self.sync_count >= count, timeout=timeout, what=f"{count} command sync(s)")
        return self.commands

    async def wait_for_request(
        self,
        predicate: Callable[[RecordedRequest], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
        *,
        after: int = 0,
    ) -> RecordedRequest:
        """The first answered request (from index ``after`` of :attr:`requests`) for which ``predicate`` holds."""

        def find() -> RecordedRequest | None:
            return next((r for r in self.requests[after:] if r.status is not None and predicate(r)), None)

        return await self.wait_until(find, timeout=timeout, what="a matching request")

    def interaction(self, interaction_id: int) -> FakeInteraction:
        """The interaction with ``interaction_id``."""
        return self.interactions[interaction_id]

    def message(self, message_id: int) -> FakeMessage:
        """The message with ``message_id``."""
        return self.messages[message_id]

    # ------------------------------------------------------------------ HTTP plumbing

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile], bool, FakeHTTPError | None]:
        """``(json or payload_json, files, has_body, parse error)``."""
        files: list[UploadedFile] = []
        if request.content_type == "multipart/form-data":
            payload: Any = None
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                data = bytes(await part.read(decode=False))
                if part.name == "payload_json":
                    try:
                        payload = json.loads(data)
                    except ValueError:
                        return (
                            None,
                            files,
                            True,
                            FakeHTTPError(400, CODE_INVALID_JSON, "The request body contains invalid JSON."),
                        )
                elif part.filename is not None:
                    files.append(UploadedFile(part.name or "", part.filename, part.headers.get("Content-Type"), data))
            return payload if payload is not None else {}, files, True, None
        raw = await request.read()
        if not raw:
            return None, files, False, None
        try:
            return json.loads(raw), files, True, None
        except ValueError:
            return None, files, True, FakeHTTPError(400, CODE_INVALID_JSON, "The request body contains invalid JSON.")

    def _take_planned_429(self, method: str, path: str) -> _Planned429 | None:
        for plan in self._planned:
            if plan.remaining > 0 and plan.method == method and plan.pattern.search(path):
                plan.remaining -= 1
                return plan
        return None

    def _bucket(self, method: str, path: str) -> str:
        template = re.sub(r"/\d{6,}", "/:id", path)
        template = re.sub(r"(/webhooks/:id/|/interactions/:id/)[^/]+", r"\1:token", template)
        return hashlib.md5(f"{method} {template}".encode()).hexdigest()

    def _ratelimit_headers(self, method: str, path: str) -> dict[str, str]:
        # A generous bucket that never runs dry: the fake only rate limits when a test plans a 429, and advertising
        # Discord's real per-route limits would make discord.py pause in benchmarks for no reason.
        return {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "49",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
            "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": self._bucket(method, path),
        }

    def _too_many(self, plan: _Planned429, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(plan.retry_after))),
            "X-RateLimit-Scope": "global" if plan.global_ else "user",
        }
        if plan.global_:
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{time.time() + plan.retry_after:.3f}",
                    "X-RateLimit-Reset-After": f"{plan.retry_after:.3f}",
                    "X-RateLimit-Bucket": self._bucket(method, path),
                }
            )
        body = {
            "message": "You are being rate limited.",
            "retry_after": plan.retry_after,
            "global": plan.global_,
            "code": 0,
        }
        return 429, body, headers

    def _take_planned_error(self, method: str, path: str) -> _PlannedError | None:
        for plan in self._planned_errors:
            if plan.remaining > 0 and plan.method == method and plan.pattern.search(path):
                plan.remaining -= 1
                return plan
        return None

    def _dispatch_route(self, method: str, path: str) -> tuple[Any, dict[str, str]] | None:
        for route_method, pattern, handler in self._route_table:
            if route_method == method:
                match = pattern.match(path)
                if match:
                    return handler, match.groupdict()
        return None

    async def _handle_api(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            self.api_peers.add((peer[0], peer[1]))
        if self.api_latency:
            await asyncio.sleep(self.api_latency)
        try:
            return await self._serve_api(request)
        except Exception:
            # A bug in the fake, not in the bot: make it loud (discord.py would silently retry a plain 500).
            self.internal_errors.append(f"{request.method} {request.path}\n{traceback.format_exc()}")
            self._notify()
            body = {"message": "fake Discord internal error (see fake.internal_errors)", "code": 0}
            return web.Response(status=400, body=_json_bytes(body), headers={"Content-Type": _JSON})

    async def _serve_api(self, request: web.Request) -> web.Response:
        arrival = self.clock.monotonic()
        method = request.method.upper()
        match = _API_PATH.match(request.path)
        assert match is not None
        path, version = match.group("path"), match.group("version")
        query = {key: value for key, value in request.query.items()}
        payload, files, has_body, parse_error = await self._read_body(request)
        authorized = request.headers.get("Authorization") == f"Bot {self.token}"
        record = RecordedRequest(method, path, query, payload, files, at=arrival, authorized=authorized)
        self.requests.append(record)
        headers_in = {key: value for key, value in request.headers.items()}
        if self._checker is not None and version in ("9", "10"):
            failure = self._checker.validate_request(
                method, path, query=query, headers=headers_in, payload=payload, has_body=has_body
            )
            if failure:
                self.openapi_failures.append(f"{method} {path}: {failure}")

        status: int
        body: Any
        extra_headers: dict[str, str] = {}
        plan = self._take_planned_429(method, path)
        outage = self._take_planned_error(method, path) if plan is None else None
        if plan is not None:
            status, body, extra_headers = self._too_many(plan, method, path)
        elif outage is not None:
            status, body = outage.status, {"message": f"{outage.status}: {HTTPStatus(outage.status).phrase}", "code": 0}
        else:
            ctx = RequestContext(method, path, {}, query, payload, files, authorized, arrival)
            try:
                if parse_error is not None:
                    raise parse_error
                if version not in (None, "9", "10"):
                    raise FakeHTTPError(400, 50041, "Invalid API version")
                routed = self._dispatch_route(method, path)
                if routed is None:
                    self.unhandled.append(record)
                    status, body = 404, {"message": "404: Not Found", "code": 0}
                else:
                    handler, ctx.params = routed
                    status, body = await handler(ctx)
            except FakeHTTPError as error:
                status, body = error.status, error.body()
                record.code = error.code
                self._violation(method, path, error, interaction=ctx.interaction, late=ctx.late)
            extra_headers = self._ratelimit_headers(method, path)
        data = _json_bytes(body) if body is not None else None
        headers = dict(extra_headers)
        if data is not None:
            headers["Content-Type"] = _JSON
        record.status = status
        record.response = body
        if (
            self._checker is not None
            and self.validate_responses
            and version in ("9", "10")
            and record not in self.unhandled
            and outage is None
        ):
            failure = self._checker.validate_response(
                method,
                path,
                query=query,
                headers=headers_in,
                payload=payload,
                has_body=has_body,
                status=status,
                response_body=data,
                response_headers=headers,
            )
            if failure:
                self.openapi_response_failures.append(f"{method} {path} -> {status}: {failure}")
        self._notify()
        return web.Response(status=status, body=data, headers=headers)

    async def _handle_cdn(self, request: web.Request) -> web.Response:
        self.cdn_hits.append(request.path)
        blob = self.blobs.get(int(request.match_info["blob"])) if request.match_info["blob"].isdigit() else None
        if blob is None or blob.filename != request.match_info["filename"]:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=blob.data, headers={"Content-Type": blob.content_type or "application/octet-stream"})

    async def _handle_media_proxy(self, request: web.Request) -> web.Response:
        self.cdn_hits.append(request.path)
        blob = self.proxied.get(request.path)
        if blob is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(body=blob.data, headers={"Content-Type": blob.content_type or "application/octet-stream"})

    # ------------------------------------------------------------------ gateway

    def _guild_create(self, guild: FakeGuild, intents: int) -> dict[str, Any]:
        members = list(guild.members.values())
        if self.strict_intents and not intents & Intent.GUILD_PRESENCES:
            # Without GUILD_PRESENCES, GUILD_CREATE lists only the bot (and voice members, which the fake has none of).
            members = [m for m in members if m.id == self.bot_user.id]
        bot_member = guild.members.get(self.bot_user.id)
        return guild.payload(members=members, joined_at=bot_member.joined_at if bot_member else guild.created_at)

    async def _identify(self, ws: web.WebSocketResponse, identify: dict[str, Any]) -> GatewaySession:
        # A fresh IDENTIFY means a client without a socket is gone (a restarted bot process). Discord would keep its
        # session resumable for a while; the fake drops it so injected events go to the new client, not a buffer.
        # Only the same shard's: another shard's session may be between a dropped socket and its RESUME.
        session = GatewaySession(identify, buffer_size=self.replay_buffer)
        for stale in self.sessions:
            if not stale.connected and stale.shard == session.shard:
                stale.invalid = True
        session.ws = ws
        self.sessions.append(session)
        self.identifies.append(identify)
        user = self.bot_user.payload()
        user.update(verified=True, mfa_enabled=False, email=None)
        guilds = [g for g in self.guilds.values() if self.bot_user.id in g.members and self._receives(session, g.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": user,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(self.application_id), "flags": self.served_application_flags()},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "user_settings": {},
            "geo_ordered_rtc_regions": ["fake"],
            "auth": {},
            "_trace": ["fake-discord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await session.dispatch("READY", ready)
        if not self.strict_intents or session.intents & Intent.GUILDS:
            for guild in guilds:
                await session.dispatch("GUILD_CREATE", self._guild_create(guild, session.intents))
        session.ready = True
        return session

    async def _close_socket(self, ws: web.WebSocketResponse, code: int, reason: str) -> None:
        """Close one gateway socket with ``code`` and record it in :attr:`gateway_closes`."""
        self.gateway_closes.append((code, reason))
        await ws.close(code=code, message=reason.encode())

    def _identify_refusal(self, data: Any) -> tuple[int, str] | None:
        """Why Discord would close the socket on this IDENTIFY (close code and reason), or ``None`` to accept it."""
        if not isinstance(data, dict) or data.get("token") != self.token:
            return 4004, "Authentication failed."
        intents = data.get("intents", 0) or 0
        if not isinstance(intents, int) or intents < 0 or intents & ~ALL_INTENTS:
            return 4013, "Invalid intent(s)."
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents():
            return 4014, "Disallowed intent(s)."
        return self._shard_refusal(data.get("shard"))

    def _shard_refusal(self, shard: Any) -> tuple[int, str] | None:
        """4010 for a ``shard`` that is not ``[id, count]`` with ``id < count == shard_count``; 4011 for none when
        sharding is required."""
        if shard is None:
            return (4011, "Sharding required.") if self.require_shards else None
        valid = (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(part, int) and not isinstance(part, bool) for part in shard)
            and 0 <= shard[0] < shard[1] == self.shard_count
        )
        return None if valid else (4010, "Invalid shard.")

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> GatewaySession | None:
        session = next((s for s in self.sessions if s.session_id == data.get("session_id")), None)
        if session is None or session.invalid:
            return None
        previous = session.ws
        if previous is not None and previous is not ws and not previous.closed:
            await previous.close(code=4000, message=b"session resumed elsewhere")
        return session if await session.resume(ws, data.get("seq")) else None

    async def _member_chunk(self, session: GatewaySession, data: dict[str, Any]) -> None:
        self.member_requests.append(data)
        guild = self.guilds.get(int(data.get("guild_id", 0)))
        if guild is None:
            return
        members = list(guild.members.values())
        not_found: list[str] = []
        user_ids = data.get("user_ids")
        if user_ids:
            wanted = [int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])]
            members = [guild.members[i] for i in wanted if i in guild.members]
            not_found = [str(i) for i in wanted if i not in guild.members]
        else:
            query = (data.get("query") or "").lower()
            if query:
                members = [
                    m
                    for m in members
                    if m.user.username.lower().startswith(query) or (m.nick or "").lower().startswith(query)
                ]
            elif self.strict_intents and not session.intents & Intent.GUILD_MEMBERS:
                members = [m for m in members if m.id == self.bot_user.id]
            if data.get("limit"):
                members = members[: int(data["limit"])]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False, timeout=2.0)
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=400,
                body=_json_bytes({"message": "the gateway needs a WebSocket upgrade", "code": 0}),
                headers={"Content-Type": _JSON},
            )
        await self.gateway_open.wait()
        await ws.prepare(request)
        self._sockets.add(ws)
        self.gateway_connections.append(request.path_qs)
        session: GatewaySession | None = None
        try:
            await ws.send_str(frame(OP.HELLO, {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake"]}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                try:
                    packet = json.loads(msg.data)
                except ValueError:
                    await self._close_socket(ws, 4002, "Error while decoding payload.")
                    break
                op, data = packet.get("op"), packet.get("d")
                if op == OP.HEARTBEAT:
                    self.heartbeats += 1
                    await ws.send_str(frame(OP.HEARTBEAT_ACK, None))
                elif op == OP.IDENTIFY:
                    if session is not None:
                        await self._close_socket(ws, 4005, "Already authenticated.")
                        break
                    if isinstance(data, dict):
                        self.identify_attempts.append(data)
                    refusal = self._identify_refusal(data)
                    if refusal is not None:
                        await self._close_socket(ws, *refusal)
                        break
                    session = await self._identify(ws, data)
                elif op == OP.RESUME:
                    self.resumes.append(data)
                    if not isinstance(data, dict) or data.get("token") != self.token:
                        await self._close_socket(ws, 4004, "Authentication failed.")
                        break
                    session = await self._resume(ws, data)
                    if session is None:
                        await ws.send_str(frame(OP.INVALID_SESSION, False))
                elif op == OP.REQUEST_GUILD_MEMBERS:
                    if session is None:
                        await self._close_socket(ws, 4003, "Not authenticated.")
                        break
                    await self._member_chunk(session, data if isinstance(data, dict) else {})
                elif op == OP.PRESENCE_UPDATE:
                    self.presence_updates.append(data)
                self._notify()
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            self._notify()
        return ws

    # ------------------------------------------------------------------ summaries (control API, debugging)

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview: sessions, syncs, counts, rule violations and OpenAPI failures."""
        return {
            "api_base": self.api_base,
            "gateway_url": self.gateway_url,
            "sessions": [
                {
                    "session_id": s.session_id,
                    "connected": s.connected,
                    "intents": s.intents,
                    "seq": s.seq,
                    "shard": s.shard,
                }
                for s in self.sessions
            ],
            "sync_count": self.sync_count,
            "commands": {str(scope): [c["name"] for c in commands] for scope, commands in self.commands.items()},
            "requests": len(self.requests),
            "interactions": len(self.interactions),
            "errors": [asdict(e) for e in self.errors],
            "late_acks": len(self.late_acks),
            "unhandled": [f"{r.method} {r.path}" for r in self.unhandled],
            "gateway_closes": [list(close) for close in self.gateway_closes],
            "internal_errors": list(self.internal_errors),
            "openapi_skip_reason": self.openapi_skip_reason,
            "openapi_failures": list(self.openapi_failures),
            "openapi_response_failures": list(self.openapi_response_failures),
        }
