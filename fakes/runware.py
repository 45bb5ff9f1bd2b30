"""A fake Runware REST API on 127.0.0.1 for tests and benchmarks (shared/reference/runware-api.md §1-5).

It speaks the same protocol as `https://api.runware.ai/v1`: a JSON array of tasks per POST, bearer authentication,
`{"data": [...]}` / `{"errors": [...]}` envelopes, sync and async delivery with cumulative `getResponse` polling,
`imageUpload`, and the GPT Image validation rules. Outputs are real Pillow images of the requested size and format,
served from the same app. Tests inject faults with `FakeRunware.fail_next` and inspect what the client sent through
`requests`, `tasks_submitted`, `submissions_of`, `polls_of`, `paid_tasks` and `total_cost_micros`; `drain` waits for the
requests that `REGISTER_LATE` holds.

Run it standalone for subprocess tests and benchmarks::

    python -m fakes.runware --port 0 --latency 0.5

prints one line `RUNWARE_API_URL=http://127.0.0.1:PORT/v1` and serves until SIGTERM or SIGINT. The admin surface
(`/_fake/...`) then lets another process inject faults and read statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import io
import json
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from PIL import Image, ImageChops, ImageDraw, UnidentifiedImageError

from bot.catalog import AIR_TO_MODEL, MODEL_SPECS, Quality, Size
from bot.money import MICROS_PER_USD, usd_to_micros
from bot.settings import PriceTable, load_app_config
from fakes.config_file import CONFIG

__all__ = [
    "DEFAULT_API_KEY",
    "FakeRunware",
    "Fault",
    "InferenceSpec",
    "RecordedRequest",
    "StoredImage",
    "TaskState",
    "main",
    "render_image",
    "render_photo",
]

DEFAULT_API_KEY = "test-runware-key"
"""The API key the fake accepts unless another is given."""

CONFIG_PATH = CONFIG
"""The project's price table, used when no `prices` are passed."""

DOCS_URL = "https://runware.ai/docs/platform/errors"
TEXT_USD_PER_MILLION_TOKENS = Decimal(5)
"""GPT Image 1.5 prompt surcharge: characters / 4 tokens at $5 per million tokens (fitted to the seeds)."""
CHARS_PER_TOKEN = 4
REFERENCE_IMAGE_USD = Decimal("0.0027")
"""GPT Image 1.5 surcharge per reference image (fitted to the seeds; the config estimates more, on purpose)."""
SURCHARGED_MODELS = frozenset({"openai:4@1"})
VARIANTS = 32
"""Distinct picture contents; a prompt and result index map onto one of them, so renders cache well."""

_SIZES = frozenset({(1024, 1024), (1536, 1024), (1024, 1536)})
_OUTPUT_TYPES = {"URL": "imageURL", "base64Data": "imageBase64Data", "dataURI": "imageDataURI"}
_FORMATS: dict[str, tuple[str, str, str]] = {
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
_QUALITIES = frozenset(quality.value for quality in Quality)
_BACKGROUNDS = frozenset({"auto", "opaque", "transparent"})
_INFERENCE_KEYS = frozenset(
    {
        "taskType",
        "taskUUID",
        "model",
        "positivePrompt",
        "width",
        "height",
        "numberResults",
        "outputType",
        "outputFormat",
        "outputQuality",
        "includeCost",
        "deliveryMethod",
        "webhookURL",
        "uploadEndpoint",
        "ttl",
        "safety",
        "inputs",
        "providerSettings",
    }
)
_TASK_TYPES = ("imageInference", "getResponse", "imageUpload")


class Fault(StrEnum):
    """Faults that `FakeRunware.fail_next` can inject into the next matching request(s)."""

    UNAUTHORIZED = "unauthorized"
    """HTTP 401 `invalidApiKey`; nothing is processed."""
    INSUFFICIENT_CREDITS = "insufficient_credits"
    """HTTP 402 `insufficientCredits`; nothing is processed."""
    RATE_LIMITED = "rate_limited"
    """HTTP 429 `rateLimitExceeded`; nothing is processed."""
    SERVER_ERROR = "server_error"
    """HTTP 500 `internalServerError`; nothing is processed."""
    UNAVAILABLE = "unavailable"
    """HTTP 503 `serviceUnavailable`; nothing is processed."""
    CONTENT_POLICY = "content_policy"
    """The imageInference task itself fails with `contentPolicyViolation` (sync: HTTP 400; async: via getResponse)."""
    TASK_TIMEOUT = "task_timeout"
    """The imageInference task itself fails with `timeoutProvider` (sync: HTTP 400; async: via getResponse)."""
    MALFORMED_JSON = "malformed_json"
    """The request IS processed, but the answer is HTTP 200 with a truncated, non-JSON body."""
    HANG = "hang"
    """No answer at all until the client gives up (or the fake closes); nothing is processed."""
    ACCEPT_THEN_DROP = "accept_then_drop"
    """The request IS processed (tasks accepted and running), then the connection is aborted without an answer."""
    ACCEPT_THEN_502 = "accept_then_502"
    """The request IS processed, then a proxy-style HTTP 502 with an HTML body is returned."""
    REGISTER_LATE = "register_late"
    """The request is held `delay` seconds (default 1) before it is processed: its tasks are registered (and billed)
    only then, and answered normally, by which time a client with a shorter request timeout has given up. A client
    that asks about the task before then hears `taskFailedOrNotFound`."""
    ERROR_ENVELOPE_SINGULAR = "error_envelope_singular"
    """An error shaped `{"error": {...}}` (default HTTP 400 `invalidParameter`); nothing is processed."""
    ERROR_ENVELOPE_BARE_LIST = "error_envelope_bare_list"
    """An error shaped `[{...}]` (default HTTP 400 `invalidParameter`); nothing is processed."""


_TASK_FAULTS = frozenset({Fault.CONTENT_POLICY, Fault.TASK_TIMEOUT})
_STATUS_FAULTS: dict[Fault, tuple[int, str, str]] = {
    Fault.UNAUTHORIZED: (401, "invalidApiKey", "Invalid API key. Get one at https://my.runware.ai/keys"),
    Fault.INSUFFICIENT_CREDITS: (402, "insufficientCredits", "Insufficient credits. Top up your account balance."),
    Fault.RATE_LIMITED: (429, "rateLimitExceeded", "Queue capacity exceeded. Retry with exponential backoff."),
    Fault.SERVER_ERROR: (500, "internalServerError", "Internal server error. Please retry."),
    Fault.UNAVAILABLE: (503, "serviceUnavailable", "Service temporarily unavailable. Please retry."),
    Fault.ERROR_ENVELOPE_SINGULAR: (400, "invalidParameter", "Simulated error in a singular `error` envelope."),
    Fault.ERROR_ENVELOPE_BARE_LIST: (400, "invalidParameter", "Simulated error in a bare-list envelope."),
}


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


@dataclass(frozen=True, slots=True)
class InferenceSpec:
    """A validated imageInference task."""

    model: str
    prompt: str
    width: int
    height: int
    number_results: int
    output_type: str
    output_format: str
    output_quality: int
    include_cost: bool
    delivery: Literal["sync", "async"]
    quality: str
    background: str
    references: tuple[str, ...]


@dataclass(slots=True)
class TaskState:
    """The server-side state of one accepted imageInference task."""

    task_uuid: str
    request: dict[str, Any]
    spec: InferenceSpec
    submitted_at: float
    """`time.monotonic()` at acceptance."""
    latency: float
    """Seconds from acceptance to completion, captured at acceptance."""
    cost_override: float | None
    failure: dict[str, Any] | None = None
    """The error the task is scheduled to end with (injected fault)."""
    results: list[dict[str, Any]] = field(default_factory=list)
    """Finished result items so far, as sync delivery returns them (no `status` key)."""
    error: dict[str, Any] | None = None
    """The error object once the task has failed."""
    cost_micros: int = 0
    """What the finished images cost, in micro-dollars."""

    @property
    def status(self) -> Literal["processing", "success", "error"]:
        """Where the task stands: `processing` until every image is done or it failed."""
        if self.error is not None:
            return "error"
        if len(self.results) >= self.spec.number_results:
            return "success"
        return "processing"

    @property
    def done(self) -> bool:
        """True once the task succeeded or failed."""
        return self.status != "processing"

    @property
    def deadline(self) -> float:
        """`time.monotonic()` value at which the task is complete."""
        return self.submitted_at + self.latency


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image the fake serves under `/image/<imageUUID>.<ext>`."""

    data: bytes
    content_type: str
    extension: str


@dataclass(slots=True)
class _PendingFault:
    fault: Fault
    remaining: int
    task_type: str | None
    status: int | None
    code: str | None
    retry_after: float | None = None
    delay: float | None = None


class _TaskError(Exception):
    """A per-task error; becomes one item of the `errors` envelope."""

    def __init__(self, code: str, message: str, parameter: str | list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter


def _error_object(
    code: str,
    message: str,
    *,
    parameter: str | list[str] | None = None,
    task_type: str | None = None,
    task_uuid: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    if task_type is not None:
        error["taskType"] = task_type
    if task_uuid is not None:
        error["taskUUID"] = task_uuid
    error["documentation"] = DOCS_URL
    return error


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_image(value: str) -> bytes | None:
    """Decode a data URI or bare base64 string; return the bytes if they are an image Pillow can read."""
    payload = value
    if value.startswith("data:"):
        header, sep, payload = value.partition(",")
        if not sep or ";base64" not in header:
            return None
    try:
        raw = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return raw


@lru_cache(maxsize=512)
def render_image(
    width: int, height: int, output_format: str, transparent: bool, variant: int, quality: int = 95
) -> bytes:
    """Render a deterministic picture: a vertical gradient and four shapes picked by `variant`.

    `output_format` is `JPG`, `PNG` or `WEBP`. With `transparent`, PNG and WEBP get an RGBA image whose background
    is fully transparent; JPG has no alpha channel and stays RGB, as on Runware.
    """
    pil_format = _FORMATS[output_format][0]
    digest = hashlib.sha256(f"atelier-fake-{variant}".encode()).digest()
    top, bottom = digest[0:3], digest[3:6]
    if transparent and pil_format != "JPEG":
        image = Image.new("RGBA", (width, height), (top[0], top[1], top[2], 0))
        opaque: tuple[int, ...] = (255,)
    else:
        column = Image.new("RGB", (1, height))
        column.putdata([tuple(top[c] + (bottom[c] - top[c]) * y // height for c in range(3)) for y in range(height)])
        image = column.resize((width, height), Image.Resampling.NEAREST)
        opaque = ()
    draw = ImageDraw.Draw(image)
    short = min(width, height)
    for k in range(4):
        x0 = digest[6 + k] * width // 256
        y0 = digest[10 + k] * height // 256
        side = short // 8 + digest[14 + k] % (short // 3)
        fill = (digest[18 + k], digest[22 + k], digest[26 + k], *opaque)
        box = (x0, y0, min(x0 + side, width - 1), min(y0 + side, height - 1))
        if k % 2:
            draw.ellipse(box, fill=fill)
        else:
            draw.rectangle(box, fill=fill)
    buffer = io.BytesIO()
    if pil_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pil_format == "JPEG":
        image.save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, "WEBP", quality=quality, method=0)
    return buffer.getvalue()


PHOTO_VARIANTS = 4
"""Distinct photo-like pictures per size and format: each is large (about 1.5 MB as a 1024x1024 PNG)."""


def render_photo(
    width: int, height: int, output_format: str, transparent: bool, variant: int, quality: int = 95
) -> bytes:
    """Render a picture as large as real GPT Image output: film grain over `render_image`'s drawing.

    The drawings compress to almost nothing (about 21 kB as a 1024x1024 PNG); with the grain a 1024x1024 PNG is
    about 1.5 MB, like a real result. Only opaque images get grain (a transparent one stays a drawing), and `variant`
    is folded into `PHOTO_VARIANTS` so the cache stays small (rendering one takes a quarter of a second).
    """
    if transparent and output_format != "JPG":
        return render_image(width, height, output_format, transparent, variant, quality)
    return _render_photo(width, height, output_format, variant % PHOTO_VARIANTS, quality)


@lru_cache(maxsize=4 * PHOTO_VARIANTS)
def _render_photo(width: int, height: int, output_format: str, variant: int, quality: int) -> bytes:
    drawn = render_image(width, height, "PNG", False, variant)
    with Image.open(io.BytesIO(drawn)) as opened:
        base = opened.convert("RGB")
    grain = Image.effect_noise((width, height), 12).convert("RGB")
    photo = ImageChops.add(base, grain, offset=-128)
    pil_format = _FORMATS[output_format][0]
    buffer = io.BytesIO()
    if pil_format == "PNG":
        photo.save(buffer, "PNG", compress_level=6)
    else:
        photo.save(buffer, pil_format, quality=quality)
    return buffer.getvalue()


def _variant(prompt: str, index: int) -> int:
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    return (seed + index) % VARIANTS


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
        self.prices: PriceTable = prices if prices is not None else load_app_config(CONFIG_PATH).prices
        self.host = host
        self.requests: list[RecordedRequest] = []
        """Every request to the API endpoint (`POST /v1`), in arrival order; images and admin calls are not here."""
        self.downloads: list[str] = []
        """imageUUIDs fetched through `/image/...`, in order."""
        self._port = port
        self._tasks: dict[str, TaskState] = {}
        self._replaced: list[TaskState] = []
        """Earlier runs of a taskUUID submitted again while `reject_duplicate_uuids` is off; they still finish."""
        self._background: set[asyncio.Task[Any]] = set()
        self._task_uuids: set[str] = set()
        self._images: dict[str, StoredImage] = {}
        self._faults: list[_PendingFault] = []
        self._paid: list[str] = []
        self._cost_micros = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._app = web.Application(client_max_size=256 * 1024 * 1024)
        self._app.router.add_post("/v1", self._handle_api)
        self._app.router.add_post("/v1/", self._handle_api)
        self._app.router.add_get("/image/{name}", self._handle_image)
        self._app.router.add_get("/_fake/requests", self._admin_requests)
        self._app.router.add_get("/_fake/stats", self._admin_stats)
        self._app.router.add_post("/_fake/fail", self._admin_fail)
        self._app.router.add_post("/_fake/config", self._admin_config)
        self._app.router.add_post("/_fake/reset", self._admin_reset)

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
        fault = Fault(fault)
        if times < 1:
            raise ValueError("times must be at least 1")
        if fault in _TASK_FAULTS and task_type not in (None, "imageInference"):
            raise ValueError(f"{fault} only applies to imageInference tasks")
        if delay is not None and not delay >= 0:
            raise ValueError("delay must be a number of seconds, at least 0")
        self._faults.append(_PendingFault(fault, times, task_type, status, code, retry_after, delay))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending_faults(self) -> list[tuple[Fault, int, str | None]]:
        """Pending faults as (fault, remaining times, task_type filter)."""
        return [(pending.fault, pending.remaining, pending.task_type) for pending in self._faults]

    def reset(self) -> None:
        """Forget all requests, tasks, images, faults and billing; keep the key, latency and prices."""
        self.requests.clear()
        self.downloads.clear()
        self._tasks.clear()
        self._replaced.clear()
        self._task_uuids.clear()
        self._images.clear()
        self._faults.clear()
        self._paid.clear()
        self._cost_micros = 0

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
        state = self._tasks.get(task_uuid)
        if state is not None:
            self._advance(state)
        return state

    @property
    def paid_tasks(self) -> list[str]:
        """TaskUUIDs of the runs that produced at least one billed image, in order of first billing (one entry per
        run: a UUID run twice, see `reject_duplicate_uuids`, appears twice).
        """
        self._advance_all()
        return list(self._paid)

    @property
    def total_cost_micros(self) -> int:
        """Sum of the costs of every image produced so far, in micro-dollars."""
        self._advance_all()
        return self._cost_micros

    def image(self, image_uuid: str) -> StoredImage | None:
        """A generated or uploaded image by its imageUUID."""
        return self._images.get(image_uuid)

    def stats(self) -> dict[str, Any]:
        """Counters for the admin surface: submissions per taskUUID, paid tasks, total cost, task statuses."""
        self._advance_all()
        submissions: dict[str, int] = {}
        for task in self.tasks_submitted("imageInference"):
            key = str(task.get("taskUUID"))
            submissions[key] = submissions.get(key, 0) + 1
        return {
            "requests": len(self.requests),
            "submissions": submissions,
            "paid_tasks": list(self._paid),
            "total_cost_micros": self._cost_micros,
            "tasks": {task_uuid: state.status for task_uuid, state in self._tasks.items()},
            "uploads": sum(1 for name in self._task_uuids if name not in self._tasks),
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
            return self._unauthorized()
        if not parsed or not isinstance(body, list) or not body:
            return web.json_response(
                {
                    "errors": [
                        _error_object(
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

        pending = self._take_request_fault(tasks)
        fault = pending.fault if pending is not None else None
        recorded.fault = fault
        if pending is not None and fault == Fault.HANG:
            await self._closing.wait()
            return None
        if pending is not None and fault in _STATUS_FAULTS:
            return self._fault_response(pending, tasks)

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
                self._advance(outcome, force=True)
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

    def _unauthorized(self, status: int = 401, code: str = "invalidApiKey") -> web.Response:
        error = _error_object(
            code,
            "Invalid API key. Get one at https://my.runware.ai/keys",
            parameter="apiKey",
            task_type="authentication",
        )
        return web.json_response({"errors": [error]}, status=status)

    def _take_request_fault(self, tasks: list[Any]) -> _PendingFault | None:
        types = {task.get("taskType") for task in tasks if isinstance(task, dict)}
        for pending in self._faults:
            if pending.fault in _TASK_FAULTS:
                continue
            if pending.task_type is None or pending.task_type in types:
                self._consume(pending)
                return pending
        return None

    def _take_task_fault(self) -> Fault | None:
        for pending in self._faults:
            if pending.fault in _TASK_FAULTS:
                self._consume(pending)
                return pending.fault
        return None

    def _consume(self, pending: _PendingFault) -> None:
        pending.remaining -= 1
        if pending.remaining <= 0:
            self._faults.remove(pending)

    def _fault_response(self, pending: _PendingFault, tasks: list[Any]) -> web.Response:
        default_status, default_code, message = _STATUS_FAULTS[pending.fault]
        status = pending.status or default_status
        code = pending.code or default_code
        headers = {} if pending.retry_after is None else {"Retry-After": f"{pending.retry_after:g}"}
        if pending.fault == Fault.UNAUTHORIZED:
            response = self._unauthorized(status, code)
            response.headers.update(headers)
            return response
        errors = [
            _error_object(
                code,
                message,
                task_type=task.get("taskType") if isinstance(task, dict) else None,
                task_uuid=task.get("taskUUID") if isinstance(task, dict) else None,
            )
            for task in tasks
        ]
        if pending.fault == Fault.ERROR_ENVELOPE_SINGULAR:
            return web.json_response({"error": errors[0]}, status=status, headers=headers)
        if pending.fault == Fault.ERROR_ENVELOPE_BARE_LIST:
            return web.json_response(errors, status=status, headers=headers)
        return web.json_response({"errors": errors}, status=status, headers=headers)

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
                    raise _TaskError("invalidRequestBody", "Every item of the request array must be a task object.")
                if task_type == "imageInference":
                    state = self._submit_inference(task)
                    if state.spec.delivery == "sync":
                        outcomes.append(state)
                        waiting.append(state)
                    else:
                        outcomes.append(("data", [{"taskType": "imageInference", "taskUUID": state.task_uuid}]))
                elif task_type == "getResponse":
                    outcomes.append(self._get_response(task))
                elif task_type == "imageUpload":
                    outcomes.append(("data", [self._upload(task)]))
                elif task_type == "ping":
                    outcomes.append(("data", [{"taskType": "ping", "pong": True}]))
                else:
                    raise _TaskError(
                        "invalidTaskType",
                        f"Unsupported taskType {task_type!r}; use one of {', '.join(_TASK_TYPES)}.",
                        "taskType",
                    )
            except _TaskError as exc:
                error = _error_object(
                    exc.code,
                    exc.message,
                    parameter=exc.parameter,
                    task_type=task_type if isinstance(task_type, str) else None,
                    task_uuid=reported_uuid,
                )
                outcomes.append(("errors", [error]))
        return outcomes, waiting

    # ---------------------------------------------------------------- imageInference

    def _submit_inference(self, task: dict[str, Any]) -> TaskState:
        spec = self._validate_inference(task)
        task_uuid = str(task["taskUUID"])
        if task_uuid in self._task_uuids and (self.reject_duplicate_uuids or task_uuid not in self._tasks):
            raise _TaskError(
                "duplicateTaskUUID", f"A task with taskUUID {task_uuid} was already submitted.", "taskUUID"
            )
        earlier = self._tasks.get(task_uuid)
        if earlier is not None:
            self._replaced.append(earlier)
        state = TaskState(
            task_uuid=task_uuid,
            request=task,
            spec=spec,
            submitted_at=time.monotonic(),
            latency=max(0.0, float(self.latency)),
            cost_override=self.cost_override,
        )
        fault = self._take_task_fault()
        if fault == Fault.CONTENT_POLICY:
            state.failure = _error_object(
                "contentPolicyViolation",
                "The prompt was rejected by the provider's content policy.",
                parameter="positivePrompt",
                task_type="imageInference",
                task_uuid=task_uuid,
            )
        elif fault == Fault.TASK_TIMEOUT:
            state.failure = _error_object(
                "timeoutProvider",
                "The provider did not finish the task in time.",
                task_type="imageInference",
                task_uuid=task_uuid,
            )
        self._task_uuids.add(task_uuid)
        self._tasks[task_uuid] = state
        return state

    def _validate_inference(self, task: dict[str, Any]) -> InferenceSpec:
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise _TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
        if not _is_uuid(task_uuid):
            raise _TaskError("invalidTaskUUID", "taskUUID must be a UUID (v4 recommended).", "taskUUID")
        for key in task:
            if key not in _INFERENCE_KEYS:
                raise _TaskError("unknownParameter", f"Unknown parameter '{key}' for imageInference.", key)

        model = task.get("model")
        if model is None:
            raise _TaskError("missingParameter", "Missing required parameter 'model'.", "model")
        if not isinstance(model, str) or model not in AIR_TO_MODEL:
            raise _TaskError(
                "invalidModel", f"Invalid model {model!r}; supported: {', '.join(sorted(AIR_TO_MODEL))}.", "model"
            )
        model_spec = MODEL_SPECS[AIR_TO_MODEL[model]]

        prompt = task.get("positivePrompt")
        if prompt is None:
            raise _TaskError("missingParameter", "Missing required parameter 'positivePrompt'.", "positivePrompt")
        if not isinstance(prompt, str) or not model_spec.min_prompt_chars <= len(prompt) <= model_spec.max_prompt_chars:
            raise _TaskError(
                "invalidPositivePrompt",
                f"positivePrompt must be a string of {model_spec.min_prompt_chars} to "
                f"{model_spec.max_prompt_chars} characters for {model}.",
                "positivePrompt",
            )

        width, height = self._validate_dimensions(task)

        number_results = task.get("numberResults", 1)
        if not _is_int(number_results) or not 1 <= number_results <= 20:
            raise _TaskError("invalidNumberResults", "numberResults must be an integer from 1 to 20.", "numberResults")
        output_type = task.get("outputType", "URL")
        if output_type not in _OUTPUT_TYPES:
            raise _TaskError("invalidOutputType", "outputType must be one of URL, base64Data, dataURI.", "outputType")
        output_format = task.get("outputFormat", "JPG")
        if output_format not in _FORMATS:
            raise _TaskError("invalidOutputFormat", "outputFormat must be one of JPG, PNG, WEBP.", "outputFormat")
        output_quality = task.get("outputQuality", 95)
        if not _is_int(output_quality) or not 20 <= output_quality <= 99:
            raise _TaskError("invalidOutputQuality", "outputQuality must be an integer from 20 to 99.", "outputQuality")
        include_cost = task.get("includeCost", False)
        if not isinstance(include_cost, bool):
            raise _TaskError("invalidIncludeCost", "includeCost must be a boolean.", "includeCost")
        delivery = task.get("deliveryMethod", "sync")
        if delivery not in ("sync", "async"):
            raise _TaskError("invalidDeliveryMethod", "deliveryMethod must be 'sync' or 'async'.", "deliveryMethod")
        for key in ("webhookURL", "uploadEndpoint"):
            value = task.get(key)
            if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
                raise _TaskError(f"invalid{key[0].upper()}{key[1:]}", f"{key} must be an http(s) URL.", key)
        ttl = task.get("ttl")
        if ttl is not None and (not _is_int(ttl) or ttl < 60):
            raise _TaskError("invalidTtl", "ttl must be an integer of at least 60 seconds.", "ttl")
        self._validate_safety(task.get("safety"))
        quality, background = self._validate_provider_settings(task.get("providerSettings"))
        references = self._validate_inputs(task.get("inputs"))
        return InferenceSpec(
            model=model,
            prompt=prompt,
            width=width,
            height=height,
            number_results=number_results,
            output_type=output_type,
            output_format=output_format,
            output_quality=output_quality,
            include_cost=include_cost,
            delivery=delivery,
            quality=quality,
            background=background,
            references=references,
        )

    @staticmethod
    def _validate_dimensions(task: dict[str, Any]) -> tuple[int, int]:
        width, height = task.get("width"), task.get("height")
        if width is None and height is None:
            return 1024, 1024
        if width is None:
            raise _TaskError("missingParameter", "width and height must be given together.", "width")
        if height is None:
            raise _TaskError("missingParameter", "width and height must be given together.", "height")
        if not _is_int(width) or width not in (1024, 1536):
            raise _TaskError("invalidWidth", "width must be 1024 or 1536.", "width")
        if not _is_int(height) or height not in (1024, 1536):
            raise _TaskError("invalidHeight", "height must be 1024 or 1536.", "height")
        if (width, height) not in _SIZES:
            raise _TaskError(
                "invalidDimensions",
                f"{width}x{height} is not supported; use 1024x1024, 1536x1024 or 1024x1536.",
                ["width", "height"],
            )
        return width, height

    @staticmethod
    def _validate_safety(safety: Any) -> None:
        if safety is None:
            return
        if not isinstance(safety, dict):
            raise _TaskError("invalidSafety", "safety must be an object.", "safety")
        for key, value in safety.items():
            if key == "checkContent" and not isinstance(value, bool):
                raise _TaskError("invalidCheckContent", "safety.checkContent must be a boolean.", "safety.checkContent")
            if key == "mode" and not isinstance(value, str):
                raise _TaskError("invalidMode", "safety.mode must be a string.", "safety.mode")
            if key not in ("checkContent", "mode"):
                raise _TaskError("unknownParameter", f"Unknown parameter 'safety.{key}'.", f"safety.{key}")

    @staticmethod
    def _validate_provider_settings(settings: Any) -> tuple[str, str]:
        if settings is None:
            return "auto", "auto"
        if not isinstance(settings, dict):
            raise _TaskError("invalidProviderSettings", "providerSettings must be an object.", "providerSettings")
        for provider in settings:
            if provider != "openai":
                raise _TaskError(
                    "unknownProviderSettingsProvider",
                    f"Unknown provider '{provider}' in providerSettings; this model takes 'openai'.",
                    f"providerSettings.{provider}",
                )
        openai = settings.get("openai", {})
        if not isinstance(openai, dict):
            raise _TaskError(
                "invalidProviderSettings", "providerSettings.openai must be an object.", "providerSettings.openai"
            )
        for key in openai:
            if key not in ("quality", "background"):
                raise _TaskError(
                    "unknownParameter",
                    f"Unknown parameter 'providerSettings.openai.{key}'.",
                    f"providerSettings.openai.{key}",
                )
        quality = openai.get("quality", "auto")
        if quality not in _QUALITIES:
            raise _TaskError(
                "invalidQuality",
                "providerSettings.openai.quality must be one of auto, high, medium, low.",
                "providerSettings.openai.quality",
            )
        background = openai.get("background", "auto")
        if background not in _BACKGROUNDS:
            raise _TaskError(
                "invalidBackground",
                "providerSettings.openai.background must be one of auto, opaque, transparent.",
                "providerSettings.openai.background",
            )
        return quality, background

    def _validate_inputs(self, inputs: Any) -> tuple[str, ...]:
        if inputs is None:
            return ()
        if not isinstance(inputs, dict):
            raise _TaskError("invalidInputs", "inputs must be an object.", "inputs")
        for key in inputs:
            if key != "referenceImages":
                raise _TaskError("unknownParameter", f"Unknown parameter 'inputs.{key}'.", f"inputs.{key}")
        references = inputs.get("referenceImages")
        parameter = "inputs.referenceImages"
        if not isinstance(references, list) or not 1 <= len(references) <= 16:
            raise _TaskError("invalidReferenceImages", "inputs.referenceImages must hold 1 to 16 images.", parameter)
        for index, reference in enumerate(references):
            problem = self._reference_problem(reference)
            if problem is not None:
                raise _TaskError("invalidReferenceImages", f"inputs.referenceImages[{index}]: {problem}", parameter)
        return tuple(references)

    def _reference_problem(self, reference: Any) -> str | None:
        if not isinstance(reference, str) or not reference:
            return "must be a non-empty string (imageUUID, URL, data URI or base64)."
        if reference.startswith(("http://", "https://")):
            return None
        if _is_uuid(reference):
            return None if reference in self._images else f"unknown imageUUID {reference}."
        if _decode_image(reference) is None:
            return "is not a decodable image (data URI or base64)."
        return None

    def _advance_all(self) -> None:
        for state in [*self._replaced, *self._tasks.values()]:
            self._advance(state)

    def _advance(self, state: TaskState, *, force: bool = False) -> None:
        """Materialise whatever has finished by now; images finish one by one, evenly spread over the latency."""
        if state.done:
            return
        elapsed = time.monotonic() - state.submitted_at
        if state.failure is not None:
            if force or elapsed >= state.latency:
                state.error = state.failure
            return
        count = state.spec.number_results
        while len(state.results) < count:
            index = len(state.results)
            if not force and elapsed < state.latency * (index + 1) / count:
                break
            state.results.append(self._finish_image(state, index))

    def _finish_image(self, state: TaskState, index: int) -> dict[str, Any]:
        spec = state.spec
        transparent = spec.background == "transparent"
        quality = spec.output_quality if spec.output_format != "PNG" else 95
        render = render_photo if self.photo_like else render_image
        data = render(spec.width, spec.height, spec.output_format, transparent, _variant(spec.prompt, index), quality)
        _, extension, content_type = _FORMATS[spec.output_format]
        image_uuid = str(uuid.uuid4())
        self._images[image_uuid] = StoredImage(data, content_type, extension)
        item: dict[str, Any] = {"taskType": "imageInference", "taskUUID": state.task_uuid, "imageUUID": image_uuid}
        if spec.output_type == "URL":
            item["imageURL"] = f"{self.base_url}/image/{image_uuid}.{extension}"
        elif spec.output_type == "base64Data":
            item["imageBase64Data"] = base64.b64encode(data).decode("ascii")
        else:
            item["imageDataURI"] = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
        cost = self._image_cost(state)
        if spec.include_cost:
            item["cost"] = cost
        micros = usd_to_micros(cost)
        state.cost_micros += micros
        self._cost_micros += micros
        if not state.results:  # the run's first billed image makes it a paid task
            self._paid.append(state.task_uuid)
        return item

    def _image_cost(self, state: TaskState) -> float:
        """Dollars per image: the price table (auto as high), plus the 1.5 input surcharge, to 5 decimals."""
        if state.cost_override is not None:
            return float(state.cost_override)
        spec = state.spec
        quality = Quality(spec.quality)
        if quality is Quality.AUTO:
            quality = Quality.HIGH
        size = Size.from_dimensions(spec.width, spec.height)
        amount = Decimal(self.prices[AIR_TO_MODEL[spec.model]][quality][size]) / MICROS_PER_USD
        if spec.model in SURCHARGED_MODELS:
            tokens = Decimal(len(spec.prompt)) / CHARS_PER_TOKEN
            amount += tokens * TEXT_USD_PER_MILLION_TOKENS / 1_000_000
            amount += len(spec.references) * REFERENCE_IMAGE_USD
        return float(amount.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP))

    # ---------------------------------------------------------------- getResponse and imageUpload

    def _get_response(self, task: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        for key in task:
            if key not in ("taskType", "taskUUID"):
                raise _TaskError("unknownParameter", f"Unknown parameter '{key}' for getResponse.", key)
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise _TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
        if not _is_uuid(task_uuid):
            raise _TaskError("invalidTaskUUID", "taskUUID must be a UUID.", "taskUUID")
        state = self._tasks.get(task_uuid)
        if state is None:
            raise _TaskError("taskFailedOrNotFound", f"No task found with taskUUID {task_uuid}.")
        self._advance(state)
        if state.error is not None:
            if self.task_errors_as_envelope:
                return "errors", [state.error]
            item = {"taskType": "imageInference", "taskUUID": task_uuid, "status": "error", "error": state.error}
            return "data", [item]
        items = [{**result, "status": "success"} for result in state.results]
        if not state.done:
            items.append({"taskType": "imageInference", "taskUUID": task_uuid, "status": "processing"})
        return "data", items

    def _upload(self, task: dict[str, Any]) -> dict[str, Any]:
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise _TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
        if not _is_uuid(task_uuid):
            raise _TaskError("invalidTaskUUID", "taskUUID must be a UUID.", "taskUUID")
        for key in task:
            if key not in ("taskType", "taskUUID", "image"):
                raise _TaskError("unknownParameter", f"Unknown parameter '{key}' for imageUpload.", key)
        image = task.get("image")
        if image is None:
            raise _TaskError("missingParameter", "Missing required parameter 'image'.", "image")
        if not isinstance(image, str) or not image:
            raise _TaskError("invalidImage", "image must be a URL, a data URI or base64 data.", "image")
        if task_uuid in self._task_uuids:
            raise _TaskError(
                "duplicateTaskUUID", f"A task with taskUUID {task_uuid} was already submitted.", "taskUUID"
            )
        if image.startswith(("http://", "https://")):
            digest = int.from_bytes(hashlib.sha256(image.encode()).digest()[:4], "big")
            data = render_image(1024, 1024, "PNG", False, digest % VARIANTS)
        else:
            raw = _decode_image(image)
            if raw is None:
                raise _TaskError("invalidImage", "image is not a decodable image.", "image")
            data = self._as_png(raw)
        image_uuid = str(uuid.uuid4())
        self._images[image_uuid] = StoredImage(data, "image/png", "png")
        self._task_uuids.add(task_uuid)
        return {
            "taskType": "imageUpload",
            "taskUUID": task_uuid,
            "imageUUID": image_uuid,
            "imageURL": f"{self.base_url}/image/{image_uuid}.png",
        }

    @staticmethod
    def _as_png(raw: bytes) -> bytes:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format == "PNG":
                return raw
            converted = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
        buffer = io.BytesIO()
        converted.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue()

    # ---------------------------------------------------------------- images and admin

    async def _handle_image(self, request: web.Request) -> web.Response:
        image_uuid, _, _extension = request.match_info["name"].partition(".")
        stored = self._images.get(image_uuid)
        if stored is None:
            raise web.HTTPNotFound(text="image not found")
        self.downloads.append(image_uuid)
        return web.Response(body=stored.data, content_type=stored.content_type)

    async def _admin_requests(self, request: web.Request) -> web.Response:
        task_type = request.query.get("task_type")
        return web.json_response(self.tasks_submitted(task_type))

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _admin_fail(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            raw_fault = str(body["fault"])
            fault = Fault[raw_fault.upper()] if raw_fault.upper() in Fault.__members__ else Fault(raw_fault.lower())
            self.fail_next(
                fault,
                times=int(body.get("times", 1)),
                task_type=body.get("task_type"),
                status=body.get("status"),
                code=body.get("code"),
                retry_after=body.get("retry_after"),
                delay=body.get("delay"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response({"ok": True, "pending": len(self._faults)})

    async def _admin_config(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if "latency" in body:
                self.latency = float(body["latency"])
            if "cost_override" in body:
                override = body["cost_override"]
                self.cost_override = None if override is None else float(override)
            if "task_errors_as_envelope" in body:
                self.task_errors_as_envelope = bool(body["task_errors_as_envelope"])
            if "reject_duplicate_uuids" in body:
                self.reject_duplicate_uuids = bool(body["reject_duplicate_uuids"])
        except (ValueError, TypeError, AttributeError) as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        return web.json_response(
            {
                "ok": True,
                "latency": self.latency,
                "cost_override": self.cost_override,
                "task_errors_as_envelope": self.task_errors_as_envelope,
                "reject_duplicate_uuids": self.reject_duplicate_uuids,
            }
        )

    async def _admin_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


# -------------------------------------------------------------------- standalone mode


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeRunware(api_key=args.api_key, latency=args.latency, host=args.host, port=args.port)
    fake.cost_override = args.cost_override
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with fake:
        sys.stdout.write(f"RUNWARE_API_URL={fake.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve the fake until SIGTERM/SIGINT, after printing `RUNWARE_API_URL=...` on stdout."""
    parser = argparse.ArgumentParser(prog="python -m fakes.runware", description="Fake Runware REST API.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds from submission to completion")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="the accepted API key")
    parser.add_argument("--cost-override", type=float, default=None, help="report this cost (USD) per image")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
