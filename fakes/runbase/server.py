"""The fake Runbase's HTTP face: `FakeRunbase`, an aiohttp server on 127.0.0.1 for `/api/v1/runs` and the files.

It owns the lifecycle (start, close, the bound port and URLs), the keys and the account (`add_key`, `balance_micros`),
what tests inspect (`requests`, `runs`, `charges`, `refunds`, `total_charged_micros`, `creates`,
`max_in_any_window`, `downloads`, `reference_fetches`) and the two endpoints with their checks in the order a
gateway makes them: the key (401), its IP allow-list (403), the rate limit (429 `RATE_LIMITED`), an injected fault,
then the request itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from fakes.runbase.accounts import KeyAccount, RateWindow, max_in_any_window
from fakes.runbase.faults import Endpoint, Fault, FaultQueue, PendingFault, RefusalError, error_response
from fakes.runbase.runs import Run, advance
from fakes.runbase.validation import fetch_references, validate_create

__all__ = ["DEFAULT_API_KEY", "FakeRunbase", "RecordedRequest"]

DEFAULT_API_KEY = "sk-test-runbase-key"
"""The API key the fake accepts unless another is given."""


@dataclass(slots=True)
class RecordedRequest:
    """One request to `/api/v1/...`, as received."""

    method: str
    path: str
    authorization: str | None
    json: Any
    """The parsed body (None for a GET or a body that is not JSON)."""
    time: float
    """Arrival time, `time.monotonic()` (the clock of the rate limit)."""
    status: int | None = None
    """HTTP status sent back; None when the answer was dropped or is still on its way."""
    code: str | None = None
    """The error code answered, if any."""
    fault: Fault | None = None

    @property
    def endpoint(self) -> Endpoint:
        """`create` for `POST /runs`, else `poll`."""
        return "create" if self.method == "POST" else "poll"


class FakeRunbase:
    """An in-process fake of the Runbase REST API (shared/reference/runbase-api.md), served on 127.0.0.1.

    `pending_seconds` and `processing_seconds` (how long a run stays in each state), `output_format` (`PNG`, `JPG`,
    `WEBP`) and `balance_micros` (None: no limit) can be changed at any time. `rate_limit` requests per `rate_window`
    seconds apply per key (set them before `add_key`, or through the constructor for the default key).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        balance_micros: int | None = None,
        pending_seconds: float = 0.05,
        processing_seconds: float = 0.1,
        rate_limit: int = 20,
        rate_window: float = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.balance_micros = balance_micros
        self.pending_seconds = pending_seconds
        self.processing_seconds = processing_seconds
        self.output_format = "PNG"
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.host = host
        self.keys: dict[str, KeyAccount] = {}
        self.requests: list[RecordedRequest] = []
        """Every request to `/api/v1/...`, in arrival order."""
        self.runs: dict[str, Run] = {}
        self.charges: list[tuple[str, int]] = []
        """(run id, micro-dollars) deducted at each run's creation."""
        self.refunds: list[tuple[str, int]] = []
        """(run id, micro-dollars) given back when a run failed."""
        self.downloads: list[str] = []
        """File names fetched from `/files/generated/...`, in order."""
        self.reference_fetches: list[str] = []
        """Every `image_urls` entry the fake fetched, in order."""
        self.files: dict[str, tuple[bytes, str]] = {}
        self.capacity: int | None = None
        """A test knob beyond the reference (like the fake Runware's): with it set, a create while this many of the
        key's runs are pending or processing is refused with 429 `RATE_LIMITED` and nothing is made, as an overloaded
        Runbase would ("Too many requests. Slow down."). None (the default): no such limit."""
        self.capacity_refusals = 0
        """Creates refused because `capacity` was reached (not counted in `rate_limited`)."""
        self._port = port
        self._faults = FaultQueue()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.add_key(api_key)
        self._app = web.Application()
        self._app.router.add_post("/api/v1/runs", self._handle_create)
        self._app.router.add_get("/api/v1/runs/{run_id}", self._handle_poll)
        self._app.router.add_get("/files/generated/{name}", self._handle_file)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the socket and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeRunbase is already started")
        self._closing = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        runner = web.AppRunner(self._app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        """Stop serving; hung requests are released and runs in progress stopped. Safe to call twice."""
        self._closing.set()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> FakeRunbase:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the server."""
        await self.close()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._runner is None:
            raise RuntimeError("FakeRunbase is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the origin of the API and of the files."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base to give the client (`RUNBASE_API_URL`): `http://127.0.0.1:PORT/api/v1`."""
        return f"{self.base_url}/api/v1"

    # ---------------------------------------------------------------- test controls and inspection

    def add_key(
        self,
        key: str,
        *,
        spend_limit_micros: int | None = None,
        allowed_ips: set[str] | None = None,
        usage_limit: int | None = None,
        disabled: bool = False,
    ) -> KeyAccount:
        """Add (or replace) a key of the account, with the fake's current rate limit and these key limits."""
        account = KeyAccount(
            key,
            spend_limit_micros=spend_limit_micros,
            allowed_ips=frozenset(allowed_ips) if allowed_ips is not None else None,
            usage_limit=usage_limit,
            disabled=disabled,
            rate=RateWindow(self.rate_limit, self.rate_window),
        )
        self.keys[key] = account
        return account

    def account(self, key: str | None = None) -> KeyAccount:
        """The account of `key` (default: the fake's own key)."""
        return self.keys[key or self.api_key]

    def fail_next(
        self,
        fault: Fault | str,
        *,
        times: int = 1,
        endpoint: Endpoint | None = None,
        code: str | None = None,
        message: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Inject `fault` into the next `times` requests to `endpoint` (`create`, `poll`, None: either).

        `Fault.ERROR` answers the documented `code` instead (nothing done). `FAIL_RUN`/`FAIL_RUN_TEXT` make the next
        runs fail (and be refunded), with `code`/`message` in their `error`. `delay` is how long `SLOW_AFTER_CREATE`
        holds the answer. The faults come after the key, IP and rate checks: a faulted request still counts.
        """
        self._faults.add(fault, times=times, endpoint=endpoint, code=code, message=message, delay=delay)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        """Faults still queued: (fault, remaining times, endpoint filter)."""
        return self._faults.pending

    @property
    def creates(self) -> list[RecordedRequest]:
        """Every `POST /runs` received (whatever was answered)."""
        return [request for request in self.requests if request.endpoint == "create"]

    @property
    def polls(self) -> list[RecordedRequest]:
        """Every `GET /runs/{id}` received."""
        return [request for request in self.requests if request.endpoint == "poll"]

    @property
    def total_charged_micros(self) -> int:
        """What the account paid: every run's price at creation, refunds deducted."""
        return sum(micros for _, micros in self.charges) - sum(micros for _, micros in self.refunds)

    @property
    def rate_limited(self) -> int:
        """How many requests (all keys) were refused with 429 `RATE_LIMITED`."""
        return sum(account.rate.refused for account in self.keys.values())

    def request_times(self, key: str | None = None) -> list[float]:
        """Arrival times (monotonic seconds) of every request of `key` (default: the fake's own key)."""
        return list(self.account(key).rate.times)

    def max_in_any_window(self, window: float | None = None, key: str | None = None) -> int:
        """The most requests of `key` that arrived within any `window` seconds (default: the rate window)."""
        return max_in_any_window(self.request_times(key), self.rate_window if window is None else window)

    async def drain(self) -> None:
        """Wait until every run made so far has finished (succeeded or failed)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # ---------------------------------------------------------------- endpoints

    async def _handle_create(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
        recorded = self._record(request, body)
        account, refusal = self._gate(request, recorded)
        if refusal is not None:
            return refusal
        assert account is not None
        pending = self._faults.take_for_request("create")
        early = await self._fault_answer(pending, recorded)
        if early is not None:
            return early
        try:
            if body is None:
                raise RefusalError("invalid_json")
            spec, inputs = validate_create(body)
            if "image_urls" in inputs:
                assert self._session is not None
                await fetch_references(self._session, inputs["image_urls"], self.reference_fetches)
            price = spec.price(inputs)
            self._check_money(account, price)
        except RefusalError as failure:
            return self._answer(recorded, error_response(failure.code, failure.message), failure.code)
        if self._over_capacity(account):
            return self._answer(recorded, error_response("RATE_LIMITED"), "RATE_LIMITED")
        run = self._make_run(account, spec.model_id, inputs, price)
        answer = run.answer(created=True)
        if pending is not None and pending.fault == Fault.DROP_AFTER_CREATE:
            return self._drop(request)
        if pending is not None and pending.fault == Fault.SLOW_AFTER_CREATE:
            await self._wait_closing(5.0 if pending.delay is None else pending.delay)
        if pending is not None and pending.fault == Fault.MALFORMED_JSON:
            truncated = web.Response(status=200, text='{"id": "run_', content_type="application/json")
            return self._answer(recorded, truncated)
        return self._answer(recorded, web.json_response(answer, status=201))

    async def _handle_poll(self, request: web.Request) -> web.StreamResponse:
        recorded = self._record(request, None)
        account, refusal = self._gate(request, recorded)
        if refusal is not None:
            return refusal
        assert account is not None
        early = await self._fault_answer(self._faults.take_for_request("poll"), recorded)
        if early is not None:
            return early
        run = self.runs.get(request.match_info["run_id"])
        if run is None or run.key != account.key:
            return self._answer(recorded, error_response("run_not_found"), "run_not_found")
        run.polls += 1
        return self._answer(recorded, web.json_response(run.answer()))

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        stored = self.files.get(name)
        if stored is None:
            return web.Response(status=404, text="Not Found")
        self.downloads.append(name)
        data, content_type = stored
        return web.Response(body=data, content_type=content_type)

    # ---------------------------------------------------------------- the checks

    def _record(self, request: web.Request, body: Any) -> RecordedRequest:
        recorded = RecordedRequest(
            request.method, request.path, request.headers.get("Authorization"), body, time.monotonic()
        )
        self.requests.append(recorded)
        return recorded

    def _gate(self, request: web.Request, recorded: RecordedRequest) -> tuple[KeyAccount | None, web.Response | None]:
        """The key, its IP allow-list and its rate limit, in that order: (account, None) or (None, the refusal)."""
        header = request.headers.get("Authorization", "")
        if not header.strip():
            return None, self._answer(recorded, error_response("missing_api_key"), "missing_api_key")
        scheme, _, key = header.partition(" ")
        account = self.keys.get(key.strip()) if scheme.lower() == "bearer" else None
        if account is None or account.disabled:
            return None, self._answer(recorded, error_response("invalid_api_key"), "invalid_api_key")
        if account.allowed_ips is not None and request.remote not in account.allowed_ips:
            return None, self._answer(recorded, error_response("ip_not_allowed"), "ip_not_allowed")
        if not account.rate.admit(recorded.time):
            return None, self._answer(recorded, error_response("RATE_LIMITED"), "RATE_LIMITED")
        return account, None

    def _over_capacity(self, account: KeyAccount) -> bool:
        """Whether `capacity` refuses a create of `account` now (counted in `capacity_refusals`)."""
        if self.capacity is None:
            return False
        active = sum(
            1 for run in self.runs.values() if run.key == account.key and run.status in ("pending", "processing")
        )
        if active < self.capacity:
            return False
        self.capacity_refusals += 1
        return True

    def _check_money(self, account: KeyAccount, price: int) -> None:
        if account.usage_limit is not None and account.runs_created >= account.usage_limit:
            raise RefusalError("USAGE_EXCEEDED")
        if account.spend_limit_micros is not None and account.spent_micros + price > account.spend_limit_micros:
            raise RefusalError("api_key_spend_limit_exceeded")
        if self.balance_micros is not None and self.balance_micros < price:
            raise RefusalError("insufficient_balance")

    async def _fault_answer(self, pending: PendingFault | None, recorded: RecordedRequest) -> web.Response | None:
        """The answer of a fault that replaces the request's work, or None to go on."""
        if pending is None:
            return None
        recorded.fault = pending.fault
        if pending.fault == Fault.ERROR:
            assert pending.code is not None
            return self._answer(recorded, error_response(pending.code, pending.message), pending.code)
        if pending.fault == Fault.SERVER_ERROR:
            body = {"error": {"message": pending.message or "Internal server error."}}
            return self._answer(recorded, web.json_response(body, status=500))
        if pending.fault == Fault.BAD_GATEWAY:
            html = "<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"
            return self._answer(recorded, web.Response(status=502, text=html, content_type="text/html"))
        if pending.fault == Fault.HANG:
            await self._closing.wait()
            return web.Response(status=503)
        return None

    # ---------------------------------------------------------------- runs and money

    def _make_run(self, account: KeyAccount, model: str, inputs: dict[str, Any], price: int) -> Run:
        run = Run(f"run_{secrets.token_hex(12)}", account.key, model, inputs, price, dt.datetime.now(dt.UTC))
        run_fault = self._faults.take_for_run()
        if run_fault is not None:
            message = run_fault.message or "The model provider could not generate this image."
            if run_fault.fault == Fault.FAIL_RUN_TEXT:
                run.fail_with = message
            else:
                run.fail_with = {"message": message, "code": run_fault.code or "generation_failed"}
        self.runs[run.run_id] = run
        account.runs_created += 1
        account.spent_micros += price
        if self.balance_micros is not None:
            self.balance_micros -= price
        self.charges.append((run.run_id, price))
        task = asyncio.ensure_future(
            advance(
                run,
                pending_seconds=self.pending_seconds,
                processing_seconds=self.processing_seconds,
                output_format=self.output_format,
                file_url=f"{self.base_url}/files/generated",
                store=self.files,
                on_refund=self._refund,
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return run

    def _refund(self, run: Run) -> None:
        self.refunds.append((run.run_id, run.price_micros))
        self.keys[run.key].spent_micros -= run.price_micros
        if self.balance_micros is not None:
            self.balance_micros += run.price_micros

    # ---------------------------------------------------------------- answers

    @staticmethod
    def _answer(recorded: RecordedRequest, response: web.Response, code: str | None = None) -> web.Response:
        recorded.status = response.status
        recorded.code = code
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Abort the connection; the response returned afterwards is never written."""
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=499)

    async def _wait_closing(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
