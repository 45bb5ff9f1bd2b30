"""The one transport seam to Runware's REST API: every POST and GET, retries with backoff, errors in one place.

`RunwareTransport.post` is the one place where connection errors, timeouts, non-JSON bodies and error envelopes
become `RunwareError`s, with the API key scrubbed from every message. `RunwareClient` builds the task protocol on it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson
from pydantic import ValidationError

from bot.observability import metrics
from bot.runware.errors import (
    RunwareError,
    RunwareServerError,
    RunwareTimeoutError,
    RunwareTransientError,
    error_for_status,
    errors_from_body,
)
from bot.runware.models import (
    WireItem,
    parse_items,
)
from bot.settings import RunwareConfig

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_T = TypeVar("_T")

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Response:
    """One answer of Runware: its HTTP status, the result items and the per-task errors in it."""

    status: int
    items: list[WireItem]
    errors: list[RunwareError]


class RunwareTransport:
    """POST task lists and GET result images over one injected `aiohttp.ClientSession`, the key only in a header."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        api_url: str,
        config: RunwareConfig,
        sleep: Sleep = asyncio.sleep,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self._api_url = api_url
        self._config = config
        self._sleep = sleep
        self._retry_base_delay = retry_base_delay
        self._retry_max_delay = retry_max_delay
        self._rng = rng or random.Random()
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout_seconds)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }

    async def post_with_retries(self, tasks: Callable[[], list[dict[str, Any]]]) -> Response:
        """POST a read-only or free request, retrying retryable failures with backoff."""
        return await self.retrying(lambda: self.post(tasks()))

    async def retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Await `call`, trying again after a backoff while it fails retryably, up to `max_retries` times."""
        attempt = 0
        while True:
            try:
                return await call()
            except RunwareError as exc:
                if not exc.retryable or attempt >= self._config.max_retries:
                    raise
                delay = self.backoff(attempt, exc)
                log.warning(
                    "Runware request failed (%s); retry %d of %d in %.2fs",
                    exc,
                    attempt + 1,
                    self._config.max_retries,
                    delay,
                )
                await self._sleep(delay)
                attempt += 1

    async def post(self, tasks: list[dict[str, Any]]) -> Response:
        """Send one POST; turn every failure (network, timeout, non-JSON, error envelope) into a `RunwareError`.

        Each POST is measured (`bot.observability`): its duration and outcome, a 429, and whether Runware answered.
        """
        started = time.monotonic()
        task_type = str(tasks[0].get("taskType", "?")) if tasks else "?"
        try:
            response = await self._post(tasks)
        except RunwareError as exc:
            _observe(task_type, started, exc)
            raise
        _observe(task_type, started, None)
        return response

    async def _post(self, tasks: list[dict[str, Any]]) -> Response:
        first = tasks[0] if tasks else {}
        task_uuid = first.get("taskUUID") if isinstance(first.get("taskUUID"), str) else None
        task_type = first.get("taskType", "?")
        try:
            # orjson: a few times cheaper than the standard library on every submit and poll (the headers say JSON).
            async with self._session.post(
                self._api_url, data=orjson.dumps(tasks), headers=self._headers, timeout=self._timeout
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
                raw = await response.read()
        except TimeoutError as exc:
            raise RunwareTimeoutError(
                f"no answer from Runware within {self._config.request_timeout_seconds:g}s",
                code="requestTimeout",
                task_uuid=task_uuid,
                retryable=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise RunwareTransientError(
                self.scrub(f"connection to Runware failed ({type(exc).__name__}: {exc})"),
                code="connectionError",
                task_uuid=task_uuid,
            ) from exc
        log.debug("%s %s -> HTTP %d (%d bytes)", task_type, task_uuid, status, len(raw))
        text = raw.decode("utf-8", errors="replace")
        try:
            body: Any = orjson.loads(text)
        except ValueError:
            if status >= 400:
                raise self.scrubbed(
                    error_for_status(status, body_text=text, task_uuid=task_uuid, retry_after=retry_after)
                ) from None
            raise RunwareServerError(
                f"Runware answered HTTP {status} with a body that is not JSON",
                code="malformedResponse",
                task_uuid=task_uuid,
                status=status,
            ) from None
        try:
            items = parse_items(body.get("data")) if isinstance(body, dict) else []
        except ValidationError as exc:
            raise RunwareServerError(
                f"Runware answered HTTP {status} with result items of an unexpected shape "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                code="malformedResponse",
                task_uuid=task_uuid,
                status=status,
            ) from None
        errors = errors_from_body(
            body, status=status, task_uuid=task_uuid, retry_after=retry_after, include_items=False
        )
        if status >= 400 and not errors:
            errors = [error_for_status(status, body_text=text, task_uuid=task_uuid, retry_after=retry_after)]
        for error in errors:
            error.redact(self._api_key)
            if status < 400:
                # An error inside a 2xx body is the task's outcome, not a transport hiccup: asking again won't help.
                error.retryable = False
        if status >= 400 or (errors and not items):
            raise _pick(errors, task_uuid)
        if not isinstance(body, dict) or ("data" not in body and not errors):
            raise RunwareServerError(
                "Runware answered without a data or errors key",
                code="malformedResponse",
                task_uuid=task_uuid,
                status=status,
            )
        return Response(status=status, items=items, errors=errors)

    async def get(self, url: str, *, task_uuid: str) -> bytes:
        """GET a result image (no API key sent), refusing one over 64 MiB; failures become `RunwareError`s."""
        try:
            async with self._session.get(url, timeout=self._timeout) as response:
                if response.status >= 400:
                    raise error_for_status(response.status, task_uuid=task_uuid)
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > _MAX_DOWNLOAD_BYTES:
                        raise RunwareServerError(
                            "result image is too large to download", task_uuid=task_uuid, retryable=False
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except TimeoutError as exc:
            raise RunwareTimeoutError(
                "result image download timed out", code="requestTimeout", task_uuid=task_uuid, retryable=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise RunwareTransientError(
                f"could not download the result image ({type(exc).__name__})", task_uuid=task_uuid
            ) from exc

    def backoff(self, attempt: int, error: RunwareError | None = None) -> float:
        """Exponential backoff with "equal jitter", at least as long as a Retry-After the server sent (capped)."""
        ceiling = min(self._retry_max_delay, self._retry_base_delay * 2.0**attempt)
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if error is not None and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, self._retry_max_delay))
        return delay

    def scrub(self, text: str) -> str:
        """Return `text` with the API key replaced by `***`."""
        return text.replace(self._api_key, "***")

    def scrubbed(self, error: RunwareError) -> RunwareError:
        """Return `error` with the API key taken out of its message and parameter."""
        error.redact(self._api_key)
        return error


def _observe(task_type: str, started: float, error: RunwareError | None) -> None:
    """Feed the metrics and the health state with one POST's outcome (memory only, no I/O)."""
    current = metrics.current()
    current.provider_request(task_type, "ok" if error is None else type(error).__name__, time.monotonic() - started)
    if error is None or (error.status is not None and error.status < 500):
        current.health.provider_answered()
        if error is not None and error.status == 429:
            current.too_many_requests("runware")
    else:
        current.health.provider_unreachable(error.code or type(error).__name__)


def _pick(errors: list[RunwareError], task_uuid: str | None) -> RunwareError:
    for error in errors:
        if error.task_uuid == task_uuid:
            return error
    return errors[0]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
