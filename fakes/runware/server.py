"""The fake Runware's HTTP face: `FakeRunware`, an aiohttp server on 127.0.0.1 for `POST /v1` and `/image/...`.

It owns the lifecycle (start, close, the bound port and URLs), what tests inspect (`requests`, `tasks_submitted`,
`submissions_of`, `polls_of`, `paid_tasks`, `total_cost_micros`, `task`, `image`, `stats`) and the endpoint itself:
authentication (bearer header or a leading `authentication` task), the `{"data"}` / `{"errors"}` envelopes, one
outcome per task of a batch, sync waits, and where a request-level fault (`fail_next`) cuts in. The tasks themselves
are kept by `fakes.runware.tasks.TaskBook`; the admin surface is `fakes.runware.admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from bot.settings import PriceTable
from fakes.runware.admin import add_admin_routes
from fakes.runware.faults import (
    STATUS_FAULTS,
    Fault,
    FaultQueue,
    PendingFault,
    TaskError,
    error_object,
    fault_response,
    unauthorized,
)
from fakes.runware.images import StoredImage
from fakes.runware.prices import default_prices
from fakes.runware.tasks import TaskBook, TaskState

__all__ = ["DEFAULT_API_KEY", "TASK_TYPES", "FakeRunware", "RecordedRequest"]

DEFAULT_API_KEY = "test-runware-key"
"""The API key the fake accepts unless another is given."""

TASK_TYPES = ("imageInference", "getResponse", "imageUpload")
"""The task types the fake serves (besides `authentication` and `ping`)."""


@dataclass(slots=True)
class RecordedRequest:
    """One request to the API endpoint, as received."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    """The parsed body, or None when it was not JSON."""
    text: str
    time: float
    """Wall-clock arrival time (`time.time()`)."""
    duration: float | None = None
    """Seconds spent handling the request (including sync waits); None while still running."""
    status: int | None = None
    """HTTP status sent back; None when the connection was dropped or the request is still running."""
    fault: Fault | None = None
    """The injected fault that hit this request, if any."""

    @property
    def tasks(self) -> list[dict[str, Any]]:
        """The task objects of the body (empty when the body was not a JSON array)."""
        if not isinstance(self.json, list):
            return []
        return [task for task in self.json if isinstance(task, dict)]


class FakeRunware:
    """An in-process fake of the Runware REST API, served by aiohttp on 127.0.0.1.

    `latency` (seconds from acceptance to completion) and `cost_override` (dollars per image, or None for the price
    table) can be changed at any time; they are captured per task when it is accepted. `photo_like` makes results
    as large as real ones (`render_photo`: about 1.5 MB per 1024x1024 PNG) instead of flat drawings (about 21 kB). Set
    `task_errors_as_envelope` to make `getResponse` report a failed task as an HTTP 400 `errors` envelope instead of
    an item with `status: "error"`.

    A repeated imageInference taskUUID is refused with `duplicateTaskUUID`. Whether the real Runware does that is not
    known (reference §10.6), so `reject_duplicate_uuids = False` models the worst case instead: the repeat is run,
    and billed, as a second task (`paid_tasks` then lists the UUID twice; `getResponse` reports the latest run).
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        latency: float = 0.0,
        prices: PriceTable | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.cost_override: float | None = None
        self.task_errors_as_envelope = False
        self.reject_duplicate_uuids = True
        self.photo_like = False
        self.capacity: int | None = None
        """At most this many imageInference tasks running at once (None: no limit); a submission past it is refused
        with `capacity_status` (429 `rateLimitExceeded`, "Queue capacity exceeded", or 503) and nothing is accepted."""
        self.capacity_status = 429
        self.capacity_refusals = 0
        """Submissions refused because `capacity` was reached."""
        self.peak_running = 0
        """The most imageInference tasks that ran at once (counted when a task is accepted)."""
        self.flagged_words: set[str] = set()
        """Words that make the safety check flag a result (`NSFWContent: true`) when a task asks for the check."""
        self.prices: PriceTable = prices if prices is not None else default_prices()
        self.host = host
        self.requests: list[RecordedRequest] = []
        """Every request to the API endpoint (`POST /v1`), in arrival order; images and admin calls are not here."""
        self.downloads: list[str] = []
        """imageUUIDs fetched through `/image/...`, in order."""
        self._port = port
        self._background: set[asyncio.Task[Any]] = set()
        self._faults = FaultQueue()
        self._book = TaskBook(self, self._faults)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._app = web.Application(client_max_size=256 * 1024 * 1024)
        self._app.router.add_post("/v1", self._handle_api)
        self._app.router.add_post("/v1/", self._handle_api)
        self._app.router.add_get("/image/{name}", self._handle_image)
        add_admin_routes(self._app, self)

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Bind the socket and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeRunware is already started")
        self._closing = asyncio.Event()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._port = sock.getsockname()[1]
        runner = web.AppRunner(self._app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner

    async def close(self) -> None:
        """Stop serving; hung and waiting requests are released first. Safe to call twice."""
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def __aenter__(self) -> FakeRunware:
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
            raise RuntimeError("FakeRunware is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the origin of the API and of image URLs."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API endpoint to give the client: `http://127.0.0.1:PORT/v1`."""
        return f"{self.base_url}/v1"

    # ---------------------------------------------------------------- test controls and inspection

    def fail_next(
        self,
        fault: Fault | str,
        *,
        times: int = 1,
        task_type: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        delay: float | None = None,
    ) -> None:
        """Inject `fault` into the next `times` requests that contain a task of `task_type` (None: any request).

        `CONTENT_POLICY` and `TASK_TIMEOUT` hit the next accepted imageInference tasks instead of whole requests.
        `status` and `code` override the HTTP status and error code of the error-answer faults, and `retry_after`
        adds a `Retry-After` header (seconds) to them. `delay` is how long `REGISTER_LATE` holds the request.
        """
        self._faults.add(
            fault, times=times, task_type=task_type, status=status, code=code, retry_after=retry_after, delay=delay
        )

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        """Pending faults as (fault, remaining times, task_type filter)."""
        return self._faults.pending

    def reset(self) -> None:
        """Forget all requests, tasks, images, faults and billing; keep the key, latency and prices."""
        self.requests.clear()
        self.downloads.clear()
        self.capacity_refusals = 0
        self.peak_running = 0
        self._book.reset()
        self._faults.clear()

    def tasks_submitted(self, task_type: str | None = "imageInference") -> list[dict[str, Any]]:
        """Every task object of `task_type` (None: all types) received, as sent, whatever happened to it."""
        return [
            task
            for recorded in self.requests
            for task in recorded.tasks
            if task_type is None or task.get("taskType") == task_type
        ]

    def submissions_of(self, task_uuid: str) -> int:
        """How many times an imageInference task with this taskUUID was received (rejected attempts included)."""
        return sum(1 for task in self.tasks_submitted("imageInference") if task.get("taskUUID") == task_uuid)

    def polls_of(self, task_uuid: str) -> int:
        """How many getResponse tasks asking about this taskUUID were received (refused or failed ones included)."""
        return sum(1 for task in self.tasks_submitted("getResponse") if task.get("taskUUID") == task_uuid)

    @property
    def pending_late_registrations(self) -> int:
        """How many requests held by `REGISTER_LATE` have not been registered yet (whether or not their client still
        waits for the answer).
        """
        return sum(1 for late in self._background if not late.done())

    async def drain(self) -> None:
        """Wait until every request held by `REGISTER_LATE` has been registered (and its tasks accepted or refused),
        including any held while waiting. A task registered with a `latency` is billed once that has passed.
        """
        while self._background:
            await asyncio.gather(*self._background)

    def task(self, task_uuid: str) -> TaskState | None:
        """The up-to-date state of an accepted imageInference task, or None if it was never accepted."""
        state = self._book.tasks.get(task_uuid)
        if state is not None:
            self._book.advance(state)
        return state

    @property
    def paid_tasks(self) -> list[str]:
        """TaskUUIDs of the runs that produced at least one billed image, in order of first billing (one entry per
        run: a UUID run twice, see `reject_duplicate_uuids`, appears twice).
        """
        self._book.advance_all()
        return self._book.paid

    @property
    def total_cost_micros(self) -> int:
        """Sum of the costs of every image produced so far, in micro-dollars."""
        self._book.advance_all()
        return self._book.cost_micros

    def image(self, image_uuid: str) -> StoredImage | None:
        """A generated or uploaded image by its imageUUID."""
        return self._book.images.get(image_uuid)

    def stats(self) -> dict[str, Any]:
        """Counters for the admin surface: submissions per taskUUID, paid tasks, total cost, task statuses."""
        book = self._book
        book.advance_all()
        submissions: dict[str, int] = {}
        for task in self.tasks_submitted("imageInference"):
            key = str(task.get("taskUUID"))
            submissions[key] = submissions.get(key, 0) + 1
        return {
            "requests": len(self.requests),
            "submissions": submissions,
            "paid_tasks": book.paid,
            "total_cost_micros": book.cost_micros,
            "tasks": {task_uuid: state.status for task_uuid, state in book.tasks.items()},
            "uploads": sum(1 for name in book.task_uuids if name not in book.tasks),
        }

    # ---------------------------------------------------------------- the API endpoint

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        text = await request.text()
        body: Any = None
        parsed = True
        try:
            body = json.loads(text)
        except ValueError:
            parsed = False
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            json=body,
            text=text,
            time=time.time(),
        )
        self.requests.append(recorded)
        try:
            response = await self._dispatch(request, body, parsed, recorded)
            if response is not None:
                recorded.status = response.status
                return response
            return self._drop(request)
        finally:
            recorded.duration = time.perf_counter() - started

    async def _dispatch(
        self, request: web.Request, body: Any, parsed: bool, recorded: RecordedRequest
    ) -> web.StreamResponse | None:
        if not self._authorized(request, body):
            return unauthorized()
        if not parsed or not isinstance(body, list) or not body:
            return web.json_response(
                {
                    "errors": [
                        error_object(
                            "invalidRequestBody",
                            "The request body must be a non-empty JSON array of task objects.",
                        )
                    ]
                },
                status=400,
            )
        tasks = [task for task in body if not (isinstance(task, dict) and task.get("taskType") == "authentication")]
        if not tasks:
            return web.json_response(
                {"data": [{"taskType": "authentication", "connectionSessionUUID": str(uuid.uuid4())}]}
            )

        pending = self._faults.take_for_request(tasks)
        fault = pending.fault if pending is not None else None
        recorded.fault = fault
        if pending is not None and fault == Fault.HANG:
            await self._closing.wait()
            return None
        if pending is not None and fault in STATUS_FAULTS:
            return fault_response(pending, tasks)

        refusal = self._over_capacity(tasks)
        if refusal is not None:
            return refusal

        if pending is not None and fault == Fault.REGISTER_LATE:
            # Registered in a task of its own: the handler is cancelled when the client hangs up, the work is not.
            late = asyncio.ensure_future(self._process_later(tasks, 1.0 if pending.delay is None else pending.delay))
            self._background.add(late)
            late.add_done_callback(self._background.discard)
            processed = await asyncio.shield(late)
            if processed is None:
                return None
            outcomes, waiting = processed
        else:
            outcomes, waiting = self._process(tasks)
        if fault == Fault.ACCEPT_THEN_DROP:
            return None
        if fault == Fault.ACCEPT_THEN_502:
            return web.Response(
                status=502,
                text="<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        if waiting:
            await self._sleep_until(max(state.deadline for state in waiting))
        data: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for outcome in outcomes:
            if isinstance(outcome, TaskState):
                self._book.advance(outcome, force=True)
                if outcome.error is not None:
                    errors.append(outcome.error)
                else:
                    data.extend(outcome.results)
            else:
                kind, items = outcome
                (data if kind == "data" else errors).extend(items)

        if fault == Fault.MALFORMED_JSON:
            return web.Response(
                status=200, text='{"data": [{"taskType": "imageInference", "taskUU', content_type="application/json"
            )
        envelope: dict[str, Any] = {}
        if data:
            envelope["data"] = data
        if errors:
            envelope["errors"] = errors
        return web.json_response(envelope, status=200 if data else 400)

    def running_count(self) -> int:
        """How many accepted imageInference tasks are still running now (not failed, before their deadline)."""
        now = time.monotonic()
        return sum(1 for state in self._book.tasks.values() if state.error is None and state.deadline > now)

    def _over_capacity(self, tasks: list[Any]) -> web.Response | None:
        """The refusal of a request whose imageInference tasks would take Runware past `capacity`, if it would."""
        inference = sum(1 for task in tasks if isinstance(task, dict) and task.get("taskType") == "imageInference")
        if not inference:
            return None
        running = self.running_count()
        if self.capacity is not None and running + inference > self.capacity:
            self.capacity_refusals += 1
            fault = Fault.RATE_LIMITED if self.capacity_status == 429 else Fault.UNAVAILABLE
            return fault_response(PendingFault(fault, 1, None, self.capacity_status, None), tasks)
        self.peak_running = max(self.peak_running, running + inference)
        return None

    async def _process_later(
        self, tasks: list[Any], delay: float
    ) -> tuple[list[TaskState | tuple[str, list[dict[str, Any]]]], list[TaskState]] | None:
        """`_process` after `delay` seconds; None (nothing processed) if the fake closes first."""
        await self._sleep_until(time.monotonic() + delay)
        if self._closing.is_set():
            return None
        return self._process(tasks)

    def _authorized(self, request: web.Request, body: Any) -> bool:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credential.strip() == self.api_key:
            return True
        if isinstance(body, list) and body and isinstance(body[0], dict):
            first = body[0]
            return first.get("taskType") == "authentication" and first.get("apiKey") == self.api_key
        return False

    def _drop(self, request: web.Request) -> web.Response:
        """Abort the connection; the response returned afterwards is never written (aiohttp ignores the failure)."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=499)

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)

    def _process(self, tasks: list[Any]) -> tuple[list[TaskState | tuple[str, list[dict[str, Any]]]], list[TaskState]]:
        """Run each task; sync inference tasks come back as states still to wait for."""
        outcomes: list[TaskState | tuple[str, list[dict[str, Any]]]] = []
        waiting: list[TaskState] = []
        for task in tasks:
            task_type = task.get("taskType") if isinstance(task, dict) else None
            task_uuid = task.get("taskUUID") if isinstance(task, dict) else None
            reported_uuid = task_uuid if isinstance(task_uuid, str) else None
            try:
                if not isinstance(task, dict):
                    raise TaskError("invalidRequestBody", "Every item of the request array must be a task object.")
                if task_type == "imageInference":
                    state = self._book.submit_inference(task)
                    if state.spec.delivery == "sync":
                        outcomes.append(state)
                        waiting.append(state)
                    else:
                        outcomes.append(("data", [{"taskType": "imageInference", "taskUUID": state.task_uuid}]))
                elif task_type == "getResponse":
                    outcomes.append(self._book.get_response(task))
                elif task_type == "imageUpload":
                    outcomes.append(("data", [self._book.upload(task)]))
                elif task_type == "ping":
                    outcomes.append(("data", [{"taskType": "ping", "pong": True}]))
                else:
                    raise TaskError(
                        "invalidTaskType",
                        f"Unsupported taskType {task_type!r}; use one of {', '.join(TASK_TYPES)}.",
                        "taskType",
                    )
            except TaskError as exc:
                error = error_object(
                    exc.code,
                    exc.message,
                    parameter=exc.parameter,
                    task_type=task_type if isinstance(task_type, str) else None,
                    task_uuid=reported_uuid,
                )
                outcomes.append(("errors", [error]))
        return outcomes, waiting

    async def _handle_image(self, request: web.Request) -> web.Response:
        image_uuid, _, _extension = request.match_info["name"].partition(".")
        stored = self._book.images.get(image_uuid)
        if stored is None:
            raise web.HTTPNotFound(text="image not found")
        self.downloads.append(image_uuid)
        return web.Response(body=stored.data, content_type=stored.content_type)
