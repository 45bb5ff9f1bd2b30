"""The one transport seam to Runbase: every HTTP request, the translation of every failure, the key only in a header.

`RunbaseTransport.send` turns connection errors, timeouts, non-JSON bodies and Runbase's error bodies into
`RunbaseError`s (with the key scrubbed from every message) and measures each request. It never retries and never
waits for the rate limit: `RunbaseClient` does both, because whether a request may be sent again depends on what it
was (a create whose answer was lost must never be).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import aiohttp

from bot.observability import metrics
from bot.runbase.errors import (
    RunbaseError,
    RunbaseServerError,
    RunbaseTimeoutError,
    RunbaseTransientError,
    error_from_body,
)

log = logging.getLogger(__name__)

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


class RunbaseTransport:
    """Send JSON requests to the Runbase API over one injected `aiohttp.ClientSession`."""

    def __init__(
        self, session: aiohttp.ClientSession, *, api_key: str, api_url: str, request_timeout: float = 60.0
    ) -> None:
        self._session = session
        self._api_key = api_key
        self._api_url = api_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._request_timeout = request_timeout
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return f"RunbaseTransport(api_url={self._api_url!r})"

    async def send(
        self, method: str, path: str, payload: dict[str, Any] | None = None, *, run_id: str | None = None
    ) -> dict[str, Any]:
        """Send one request and return its JSON object; every failure becomes a `RunbaseError` (measured)."""
        kind = "create" if method == "POST" else "poll"
        started = time.monotonic()
        try:
            body = await self._send(method, path, payload, run_id)
        except RunbaseError as exc:
            exc.redact(self._api_key)
            _observe(kind, started, exc)
            raise
        _observe(kind, started, None)
        return body

    async def _send(self, method: str, path: str, payload: dict[str, Any] | None, run_id: str | None) -> dict[str, Any]:
        url = f"{self._api_url}{path}"
        try:
            async with self._session.request(
                method, url, json=payload, headers=self._headers, timeout=self._timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError as exc:
            raise RunbaseTimeoutError(
                f"no answer from Runbase within {self._request_timeout:g}s",
                code="requestTimeout",
                task_uuid=run_id,
                retryable=True,
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            failure = RunbaseTransientError(
                self.scrub(f"could not connect to Runbase ({type(exc).__name__}: {exc})"),
                code="connectionRefused",
                task_uuid=run_id,
            )
            failure.not_created = True  # the connection was never opened: nothing was sent
            raise failure from exc
        except aiohttp.ClientError as exc:
            raise RunbaseTransientError(
                self.scrub(f"connection to Runbase failed ({type(exc).__name__}: {exc})"),
                code="connectionError",
                task_uuid=run_id,
            ) from exc
        log.debug("%s %s -> HTTP %d (%d bytes)", method, path, status, len(raw))
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        if status >= 400:
            raise error_from_body(body, status, run_id=run_id, text=text if body is None else "")
        if not isinstance(body, dict):
            raise RunbaseServerError(
                f"Runbase answered HTTP {status} with a body that is not a JSON object",
                code="malformedResponse",
                task_uuid=run_id,
                status=status,
            )
        return body

    async def download(self, url: str, *, run_id: str | None = None) -> bytes:
        """GET a result file (without the API key: it is a CDN URL), refusing one over 64 MiB."""
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                if response.status >= 400:
                    raise RunbaseServerError(
                        f"the result file answered HTTP {response.status}", status=response.status, task_uuid=run_id
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > _MAX_DOWNLOAD_BYTES:
                        raise RunbaseServerError("result file is too large", task_uuid=run_id, retryable=False)
                    chunks.append(chunk)
                return b"".join(chunks)
        except TimeoutError as exc:
            raise RunbaseTimeoutError(
                "result download timed out", code="requestTimeout", task_uuid=run_id, retryable=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise RunbaseTransientError(
                f"could not download the result ({type(exc).__name__})", task_uuid=run_id
            ) from exc

    def scrub(self, text: str) -> str:
        """`text` with the API key replaced by `***`."""
        return text.replace(self._api_key, "***")


def _observe(kind: str, started: float, error: RunbaseError | None) -> None:
    """Feed the metrics and the health state with one request's outcome (memory only)."""
    current = metrics.current()
    outcome = "ok" if error is None else type(error).__name__
    current.provider_request(f"runbase.{kind}", outcome, time.monotonic() - started)
    if error is None or (error.status is not None and error.status < 500):
        current.health.provider_answered()
        if error is not None and error.status == 429:
            current.too_many_requests("runbase")
    else:
        current.health.provider_unreachable(error.code or type(error).__name__)
