"""`RunbaseClient`: create runs (one image each), poll them through the key's limiter, check the key for free.

Runbase has no idempotency key and no way to list runs (reference §6), so a create is sent again only when Runbase
certainly made no run: a 429 `RATE_LIMITED`, or a connection that was never opened. A create whose answer was lost
(a timeout after sending, a dropped connection, a 5xx, an unreadable answer) raises `RunbaseOutcomeUnknownError` and
is never repeated: the run may exist and be paid for, and nothing can find it. Polls are free and are retried.
Every request, create or poll, first takes its turn from the key's `RunbaseLimiter`.

With `load` (the Runbase lane's `bot.jobs.concurrency.AdaptiveLimit`), every create reports how Runbase coped: the
time its answer took (the limiter's wait not included) on success, an overload on a 429 `RATE_LIMITED` or a 503.
A 429 `USAGE_EXCEEDED` is the key's quota, not load, and is not reported.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from pydantic import ValidationError

from bot.runbase.errors import (
    RunbaseAuthError,
    RunbaseError,
    RunbaseKeyCheckError,
    RunbaseKeyLimitError,
    RunbaseOutcomeUnknownError,
    RunbaseRateLimitedError,
    RunbaseRunNotFoundError,
    RunbaseServerError,
    RunbaseTimeoutError,
    RunbaseTransientError,
    run_failure,
)
from bot.runbase.limiter import RequestKind, RunbaseLimiter, Sleep
from bot.runbase.models import CreateRun, Run
from bot.runbase.transport import RunbaseTransport
from bot.runware.client import OVERLOAD_STATUSES, LoadSignals
from bot.settings import RunwareConfig

log = logging.getLogger(__name__)

BeforeSend = Callable[[], Awaitable[None]]
"""What `create` awaits just before sending (see there)."""

KEY_CHECK_RUN_PREFIX = "run_atelier_key_check_"
"""The key check asks for a run id that cannot exist: this prefix and random hex."""


@dataclass(frozen=True, slots=True)
class RunbaseOptions:
    """Timeouts and retry policy of the Runbase client."""

    request_timeout_seconds: float = 60.0
    task_timeout_seconds: float = 600.0
    max_retries: int = 4
    retry_base_delay: float = 1.0
    retry_max_delay: float = 30.0

    @classmethod
    def from_config(cls, config: RunwareConfig) -> RunbaseOptions:
        """Return the `[runware]` timeouts and retries, which Atelier applies to every provider."""
        return cls(
            request_timeout_seconds=config.request_timeout_seconds,
            task_timeout_seconds=config.task_timeout_seconds,
            max_retries=config.max_retries,
        )


class RunbaseClient:
    """Talk to Runbase with one key over one injected `aiohttp.ClientSession`; the key goes in a header only.

    Give every client of the same key the same `limiter` (by default each client makes its own: keep one client
    per key).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_key: str,
        api_url: str,
        options: RunbaseOptions | None = None,
        limiter: RunbaseLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        load: LoadSignals | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._options = options or RunbaseOptions()
        self._api_url = api_url
        self._api_key = api_key
        self._transport = RunbaseTransport(
            session, api_key=api_key, api_url=api_url, request_timeout=self._options.request_timeout_seconds
        )
        self.limiter = limiter or RunbaseLimiter(sleep=sleep)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._load = load

    def __repr__(self) -> str:
        return f"RunbaseClient(api_url={self._api_url!r})"

    async def generate(self, request: CreateRun) -> Run:
        """Create one run and wait until it succeeded; see `create` and `wait` for what can be raised."""
        run = await self.create(request)
        return await self.wait(run.id)

    async def create(self, request: CreateRun, *, before_send: BeforeSend | None = None) -> Run:
        """Create one run (one image) and return Runbase's answer: its id, status and `costUsd`.

        `before_send` is awaited once the limiter gave the create its turn, just before each sending (a retry after a
        429 included); if it raises, nothing is sent. A caller that must survive a crash stores the run there, so a
        create that waited in the limiter and was never sent is not mistaken for one whose answer was lost.

        Sent again, after a backoff, only when Runbase certainly made no run (429 `RATE_LIMITED`, a connection never
        opened), up to `max_retries` times. Any other refusal (400, 401, 402, 403, 429 `USAGE_EXCEEDED`) is raised
        as it is, with `not_created` set. When the request may have reached Runbase but no readable answer came
        back, `RunbaseOutcomeUnknownError` is raised and the create is NOT sent again.
        """
        payload = request.to_payload()
        attempt = 0
        while True:
            try:
                async with self.limiter.request(RequestKind.CREATE):
                    if before_send is not None:
                        await before_send()
                    sent = time.monotonic()
                    body = await self._transport.send("POST", "/runs", payload)
            except RunbaseError as exc:
                self._report_overload(exc)
                if isinstance(exc, RunbaseRateLimitedError):
                    self.limiter.rate_limited()
                else:
                    self._raise_create_failure(exc, request)
                if attempt >= self._options.max_retries:
                    raise
                delay = self._backoff(attempt)
                log.warning("Runbase create not accepted (%s); trying again in %.2fs", exc.code or exc.status, delay)
                await self._sleep(delay)
                attempt += 1
                continue
            self.limiter.answered()
            if self._load is not None:
                self._load.on_answer(time.monotonic() - sent)
            try:
                run = Run.model_validate(body)
            except ValidationError as exc:
                log.warning("Runbase answered a create of %s unreadably; the run may exist: %s", request.model, exc)
                raise RunbaseOutcomeUnknownError(
                    f"Runbase's answer to a create of {request.model} is unreadable "
                    f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']})",
                    code="malformedResponse",
                ) from exc
            log.info("Runbase run %s created (%s, %d micro-dollars)", run.id, request.model, run.cost_micros)
            return run

    def _report_overload(self, exc: RunbaseError) -> None:
        """Tell `load` that a create met an overload: a 429 `RATE_LIMITED` or a 503 (not a 429 `USAGE_EXCEEDED`)."""
        if self._load is None or exc.status not in OVERLOAD_STATUSES or isinstance(exc, RunbaseKeyLimitError):
            return
        self._load.on_overload(exc.status)

    def _raise_create_failure(self, exc: RunbaseError, request: CreateRun) -> None:
        """Raise what a failed create means, unless it may be sent again (a connection never opened: return)."""
        if isinstance(exc, RunbaseTransientError) and exc.not_created:
            return
        if exc.status is not None and 400 <= exc.status < 500 and exc.status != 408:
            exc.not_created = True
            raise exc
        log.warning("Runbase create of %s got no usable answer (%s); it is not sent again", request.model, exc)
        unknown = RunbaseOutcomeUnknownError(
            f"the create of {request.model} may have made a run, but its answer was lost ({exc})",
            code=exc.code or "outcomeUnknown",
            status=exc.status,
        )
        raise unknown from exc

    async def get_run(self, run_id: str) -> Run:
        """Ask once (through the limiter) how a run is doing."""
        try:
            async with self.limiter.request(RequestKind.POLL):
                body = await self._transport.send("GET", f"/runs/{run_id}", run_id=run_id)
        except RunbaseRateLimitedError:
            self.limiter.rate_limited()
            raise
        self.limiter.answered()
        try:
            return Run.model_validate(body)
        except ValidationError as exc:
            raise RunbaseServerError(
                f"Runbase answered a poll with a run of an unexpected shape ({exc.errors()[0]['msg']})",
                code="malformedResponse",
                task_uuid=run_id,
            ) from exc

    async def wait(self, run_id: str, *, timeout: float | None = None) -> Run:  # noqa: ASYNC109 (a polling budget)
        """Poll a run, at the limiter's cadence, until it has ended; return it when it succeeded.

        A failed run raises `RunbaseRunFailedError` or `RunbaseContentRefusedError` (it was refunded: $0). Transient
        poll failures are retried up to `max_retries` times in a row; 429s only slow the cadence. Past `timeout`
        (default `task_timeout_seconds`) `RunbaseTimeoutError` is raised: the run may still finish, and be paid.
        """
        limit = self._options.task_timeout_seconds if timeout is None else timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        failures = 0
        self.limiter.run_started()
        try:
            while True:
                if loop.time() - started > limit:
                    raise RunbaseTimeoutError(
                        f"run did not finish within {limit:g}s", code="clientTimeout", task_uuid=run_id, retryable=False
                    )
                await self._sleep(self.limiter.poll_interval())
                try:
                    run = await self.get_run(run_id)
                except RunbaseRateLimitedError:
                    continue
                except RunbaseError as exc:
                    if not exc.retryable or failures >= self._options.max_retries:
                        raise
                    failures += 1
                    log.warning("poll of Runbase run %s failed (%s); retry %d", run_id, exc, failures)
                    await self._sleep(self._backoff(failures - 1))
                    continue
                failures = 0
                if run.status == "failed":
                    raise run_failure(run_id, run.error)
                if run.succeeded:
                    if not run.urls:
                        raise RunbaseServerError("run succeeded without output URLs", task_uuid=run_id, retryable=False)
                    return run
        finally:
            self.limiter.run_finished()

    async def download(self, url: str, *, run_id: str | None = None) -> bytes:
        """Return the bytes of a result URL (no key sent), retried on transient failures; download promptly."""
        attempt = 0
        while True:
            try:
                return await self._transport.download(url, run_id=run_id)
            except RunbaseError as exc:
                if not exc.retryable or attempt >= self._options.max_retries:
                    raise
                await self._sleep(self._backoff(attempt))
                attempt += 1

    async def verify_key(self) -> None:
        """Check the key and the URL without spending: GET a run id that cannot exist.

        Only Runbase's own 404 `run_not_found` passes (a run is looked up only for a key Runbase accepted). A refused
        key (`RunbaseAuthError`) or a key limit (`RunbaseKeyLimitError`, e.g. `ip_not_allowed`) is raised as it is;
        anything else is a `RunbaseKeyCheckError` naming RUNBASE_API_URL.
        """
        run_id = KEY_CHECK_RUN_PREFIX + secrets.token_hex(8)
        where = f"RUNBASE_API_URL ({self._api_url})"
        attempt = 0
        while True:
            try:
                await self.get_run(run_id)
            except RunbaseRunNotFoundError as exc:
                if exc.from_runware and exc.code == "run_not_found":
                    log.debug("key check: Runbase answered run_not_found, so the key works")
                    return
                raise RunbaseKeyCheckError(
                    f"{where} answered HTTP 404 without Runbase's run_not_found; check RUNBASE_API_URL"
                ) from exc
            except (RunbaseAuthError, RunbaseKeyLimitError):
                raise
            except RunbaseError as exc:
                if exc.retryable and attempt < self._options.max_retries:
                    await self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                if exc.status is None:
                    raise RunbaseKeyCheckError(
                        f"could not reach {where}: {exc.message}; check RUNBASE_API_URL"
                    ) from exc
                raise RunbaseKeyCheckError(
                    f"{where} answered the key check with {exc.code or 'no Runbase error code'} (HTTP {exc.status}) "
                    'instead of "run not found"; check RUNBASE_API_URL and RUNBASE_API_KEY'
                ) from exc
            raise RunbaseKeyCheckError(
                f"{where} answered a run that cannot exist as if it did; check that it is Runbase's API"
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter."""
        ceiling = min(self._options.retry_max_delay, self._options.retry_base_delay * 2.0**attempt)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)
