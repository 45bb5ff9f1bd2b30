"""`ObservabilityServer`: `/healthz` and Prometheus `/metrics` on 127.0.0.1, served by aiohttp on the bot's loop.

`/healthz` answers 200 when every check of `Health` passes and 503 otherwise, with a small JSON body naming each
check's result (`{"status": "failing", "checks": {...}, "failed": ["gateway"]}`). `/metrics` is the registry of
`Metrics` in Prometheus' text format. Nothing else is served; only the loopback interface listens.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.observability.health import Ping
from bot.observability.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""The one interface the server listens on (contract: `ATELIER_METRICS_PORT` serves on 127.0.0.1)."""


class MetricsServerError(Exception):
    """The health and metrics server could not listen at the configured port; `str()` says why, on one line."""


class ObservabilityServer:
    """The health and metrics endpoints of one bot; `start()` binds the port, `stop()` releases it."""

    def __init__(self, port: int, metrics: Metrics) -> None:
        self._port = port
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.ping: Ping | None = None
        """The database check, set once the database is open (until then `/healthz` says it is not open)."""
        self.port = port
        """The port actually bound (the one asked for, or the system's choice for 0)."""

    async def start(self) -> None:
        """Listen on 127.0.0.1 at the port; raises `MetricsServerError` if it cannot be bound."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise MetricsServerError(f"cannot listen on {HOST}:{self._port} ({exc.strerror or exc})") from exc
        self._runner = runner
        server = site._server  # aiohttp keeps the asyncio server here; its socket says which port was bound
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Serving /healthz and /metrics on http://%s:%d", HOST, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        verdict = await self._metrics.health.check(self.ping or _not_open)
        return web.json_response(verdict.body(), status=200 if verdict.healthy else 503)

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


async def _not_open() -> None:
    raise RuntimeError("the database is not open")
