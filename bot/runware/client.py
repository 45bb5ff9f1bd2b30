"""A thin typed client for Runware's REST API: submit `imageInference` tasks, poll them, upload references.

Every request goes through `bot.runware.transport.RunwareTransport`, the one place where connection errors,
timeouts, non-JSON bodies and error envelopes become `RunwareError`s. Generations are submitted with
`deliveryMethod: async` and then polled with `getResponse`; the submission itself is never re-POSTed blindly: after
an ambiguous failure (the request may have reached Runware) the client first asks Runware about the same task UUID
and only resubmits when Runware answers that it does not know the task. That is what keeps a network hiccup from
billing a generation twice.

When the submission may still be on its way (our request timed out, the connection dropped after it was sent, or a
gateway answered 502/504 for Runware), "unknown" may only mean "not registered yet", so the client keeps asking for a
while before it resubmits: see `RunwareClient.submit` for the assumption this rests on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from bot.runware.errors import (
    TASK_NOT_FOUND_CODE,
    RunwareAuthError,
    RunwareCreditsError,
    RunwareDuplicateTaskError,
    RunwareError,
    RunwareKeyCheckError,
    RunwareRateLimitedError,
    RunwareServerError,
    RunwareTaskNotFoundError,
    RunwareTimeoutError,
    RunwareTransientError,
    error_from_wire,
)
from bot.runware.models import (
    GenerationResult,
    ImageInferenceRequest,
    ImageResult,
    UploadedImage,
    image_results,
    total_cost_micros,
)
from bot.runware.polling import FinishEstimate, PollBatcher
from bot.runware.transport import Response, RunwareTransport, Sleep
from bot.settings import RunwareConfig

log = logging.getLogger(__name__)

_POLL_GROWTH = 1.5
_LATE_PROBES = 4
"""Extra `getResponse` probes, spread over the request timeout, before resubmitting a task that may be in flight."""


class LoadSignals(Protocol):
    """Where the client reports how Runware copes with the load (`bot.jobs.concurrency.AdaptiveLimit`)."""

    def on_answer(self, latency: float) -> None:
        """Runware accepted a task after `latency` seconds."""

    def on_overload(self, status: int | None = None) -> None:
        """Runware refused a task because it is overloaded (429, 503)."""


OVERLOAD_STATUSES = frozenset({429, 503})
"""HTTP statuses that mean "too much at once": the adaptive concurrency falls on them."""


@dataclass(frozen=True, slots=True)
class PollState:
    """What one `getResponse` said about a task: the finished images so far and whether the task is over."""

    task_uuid: str
    images: tuple[ImageResult, ...]
    done: bool
    pending: bool
    error: RunwareError | None = None


class RunwareClient:
    """Talk to Runware over one injected `aiohttp.ClientSession`; the API key goes in a header and nowhere else."""

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
        late_probes: int = _LATE_PROBES,
        load: LoadSignals | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        if late_probes < 0:
            raise ValueError("late_probes must not be negative")
        self._api_key = api_key
        self._api_url = api_url
        self._config = config
        self._sleep = sleep
        self._late_probes = late_probes
        self._load = load
        self._transport = RunwareTransport(
            session,
            api_key=api_key,
            api_url=api_url,
            config=config,
            sleep=sleep,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            rng=rng,
        )
        self._batcher = PollBatcher(self._transport.post)
        self._finish = FinishEstimate(
            initial_delay=config.poll_initial_delay_seconds, max_interval=config.poll_max_interval_seconds
        )

    def __repr__(self) -> str:
        return f"RunwareClient(api_url={self._api_url!r})"

    @staticmethod
    def new_task_uuid() -> str:
        """Return a fresh UUID v4 for a task (store it before submitting so a restart can poll instead of resubmit)."""
        return str(uuid.uuid4())

    async def generate(self, request: ImageInferenceRequest, *, task_uuid: str | None = None) -> GenerationResult:
        """Submit `request` and wait for all its images; the cost is the sum Runware reported, in micro-dollars."""
        task_uuid = task_uuid or self.new_task_uuid()
        early = await self.submit(request, task_uuid)
        images = await self.wait(task_uuid, request.count, known=early)
        return GenerationResult(task_uuid=task_uuid, images=tuple(images), cost_micros=total_cost_micros(images))

    async def submit(
        self,
        request: ImageInferenceRequest,
        task_uuid: str,
        *,
        before_post: Callable[[], Awaitable[None]] | None = None,
    ) -> list[ImageResult]:
        """Submit one task for async delivery and return any images the acknowledgement already holds.

        A clear rejection (429: queue full, not accepted) is resubmitted after a backoff. After an ambiguous failure
        (connection dropped, timeout, 5xx, malformed body) Runware is asked about the same task UUID first; the task
        is resubmitted, under the same UUID, only when Runware answers that it does not know it. A `duplicateTaskUUID`
        answer means the task exists, so it is polled rather than submitted again.

        If the submission may still be in flight (our request timed out, the connection dropped after connecting, or
        a gateway answered 502/504), one "unknown" answer is not enough: the original POST may be queued in front of
        Runware and register later, and if Runware then ran both (whether it rejects a repeated task UUID is not
        documented, reference §10.6) the member would pay twice. So the client asks `late_probes` more times, spread
        evenly over `request_timeout_seconds`, and resubmits only if every answer is "unknown". The assumption: a
        request that Runware has not registered within twice the request timeout of being sent (one timeout waiting
        for its answer, one more asking) never will be. When Runware itself answered (500, 503, a malformed body), or
        the connection could not be opened (nothing was sent), one probe is enough.

        `before_post` is awaited before every POST of the task, the first and each resubmission; if it raises, that
        POST is not sent. A caller that may have to resume the task after a restart records the time there, so the
        window above can be counted from the latest POST (`find_recent_task`), not from the first.
        """
        payload = request.to_payload(task_uuid)
        attempt = 0
        started = time.monotonic()
        while True:
            if before_post is not None:
                await before_post()
            try:
                response = await self._post_task(payload)
            except RunwareDuplicateTaskError:
                log.info("Runware already has task %s; polling it instead of resubmitting", task_uuid)
                return []
            except RunwareRateLimitedError as exc:
                if self._out_of_retries(attempt, exc, started):
                    raise
                delay = self._transport.backoff(attempt, exc)
                log.warning("task %s not accepted (%s); resubmitting in %.2fs", task_uuid, exc.code or "429", delay)
                await self._sleep(delay)
                attempt += 1
                continue
            except RunwareError as exc:
                if not exc.retryable:
                    raise
                log.warning(
                    "submit of task %s failed ambiguously (%s); asking Runware whether it arrived", task_uuid, exc
                )
                await self._sleep(self._transport.backoff(attempt, exc))
                state = await self.find_task(task_uuid)
                if state is None and _may_be_in_flight(exc):
                    state = await self._find_late_task(task_uuid, self._config.request_timeout_seconds)
                if state is not None:
                    log.info("task %s did reach Runware; continuing with it", task_uuid)
                    return list(state.images)
                if self._out_of_retries(attempt, exc, started):
                    raise
                attempt += 1
                log.info("Runware does not know task %s; resubmitting it under the same UUID", task_uuid)
                continue
            return image_results(response.items, task_uuid=task_uuid)

    def _out_of_retries(self, attempt: int, exc: RunwareError, started: float) -> bool:
        """Whether `submit` gives up after `attempt` retries of a task refused with `exc`.

        With adaptive concurrency (`load`), a refusal for overload (429, 503) is Runware saying "not now": the bot
        sends less at once and the task tries again, with backoff, for as long as a task may take
        (`task_timeout_seconds` since the first POST), rather than failing after `max_retries`; nothing was accepted,
        so nothing can be paid twice. Other failures, and every failure without `load`, count against `max_retries`.
        """
        if self._load is not None and exc.status in OVERLOAD_STATUSES:
            return time.monotonic() - started >= self._config.task_timeout_seconds
        return attempt >= self._config.max_retries

    async def _post_task(self, payload: dict[str, Any]) -> Response:
        """POST one imageInference task, telling `load` how long Runware took or that it was overloaded."""
        started = time.monotonic()
        try:
            response = await self._transport.post([payload])
        except RunwareError as exc:
            if self._load is not None and exc.status in OVERLOAD_STATUSES:
                self._load.on_overload(exc.status)
            raise
        if self._load is not None:
            self._load.on_answer(time.monotonic() - started)
        return response

    async def find_recent_task(self, task_uuid: str, sent_seconds_ago: float) -> PollState | None:
        """Ask about a task whose latest submission was sent `sent_seconds_ago` seconds ago and may not have registered.

        For a restart after a crash between storing the task UUID and hearing Runware's answer: the POST may have been
        on its way when the process died. Like `submit` after a timeout, an "unknown" answer is only believed once
        twice the request timeout has passed since sending (the assumption stated in `submit`); until then the
        client keeps asking, `late_probes` times spread over what is left of that window. None means Runware does not
        know the task and will not. Count from the *latest* POST of the task (recorded through `submit`'s
        `before_post`): the first POST's window says nothing about a re-POST sent after it.
        """
        state = await self.find_task(task_uuid)
        if state is not None:
            return state
        window = 2 * self._config.request_timeout_seconds - max(sent_seconds_ago, 0.0)
        return await self._find_late_task(task_uuid, window)

    async def _find_late_task(self, task_uuid: str, window: float) -> PollState | None:
        """Keep asking about a task whose submission may still be in flight: `late_probes` probes over `window` s."""
        if not self._late_probes or window <= 0:
            return None
        interval = window / self._late_probes
        for probe in range(1, self._late_probes + 1):
            log.info(
                "Runware does not know task %s yet; asking again in %.2fs (%d of %d) before resubmitting",
                task_uuid,
                interval,
                probe,
                self._late_probes,
            )
            await self._sleep(interval)
            state = await self.find_task(task_uuid)
            if state is not None:
                return state
        return None

    async def poll(self, task_uuid: str, expected_count: int | None = None) -> PollState:
        """Ask Runware once (`getResponse`) how a task is doing.

        `images` holds the finished images so far, de-duplicated by image UUID. `done` is true when nothing is still
        running and `expected_count` generations have finished (or failed), or, without `expected_count`, when
        Runware reported items and none is still running. `error` is the first failure Runware reported for the
        task, if any. A task Runware does not know raises `RunwareTaskNotFoundError`.
        """
        response = await self._batcher.get_response(task_uuid)
        items = [item for item in response.items if item.task_uuid in (None, task_uuid)]
        images = image_results(items, task_uuid=task_uuid)
        failed = [item for item in items if item.failed]
        pending = any(item.pending for item in items)
        error: RunwareError | None = response.errors[0] if response.errors else None
        if failed and error is None:
            wire = failed[0].error.model_dump(by_alias=True, exclude_none=True) if failed[0].error else {}
            error = error_from_wire(wire, task_uuid=task_uuid)
            error.retryable = False
            error.redact(self._api_key)
        finished = len(images) + len(failed)
        if expected_count is None:
            done = bool(items) and not pending
        else:
            done = not pending and (finished >= expected_count or (bool(failed) and not images))
        if error is not None and not pending and not images:
            done = True
        return PollState(task_uuid=task_uuid, images=tuple(images), done=done, pending=pending, error=error)

    async def find_task(self, task_uuid: str) -> PollState | None:
        """Ask Runware whether it knows a task: its `PollState`, or None only when Runware answers that it does not.

        Use it after an ambiguous submission, or after a restart between storing a task UUID and recording Runware's
        acknowledgement, to choose between polling the task and submitting it (under the same UUID) for the first
        time. "Does not know" means a `taskFailedOrNotFound` answer; another not-found answer is raised. Transient
        failures are retried with the client's backoff, up to `max_retries` times, and then raised: an unanswered
        question is never taken for "unknown", which would resubmit (and could bill twice) a task Runware has.
        """
        try:
            return await self._transport.retrying(lambda: self.poll(task_uuid))
        except RunwareTaskNotFoundError as exc:
            if _is_unknown_task(exc):
                return None
            raise

    async def wait(
        self,
        task_uuid: str,
        expected_count: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (a polling budget checked between polls, not a cancellation)
        known: Iterable[ImageResult] = (),
    ) -> list[ImageResult]:
        """Poll a submitted task until `expected_count` images are in, it fails, or `timeout` seconds pass.

        The first poll goes out at the expected finish time (`bot.runware.polling.FinishEstimate`; at first
        `poll_initial_delay_seconds`; never later than `poll_max_interval_seconds`), then polls come close together
        around that time and back off to
        `poll_max_interval_seconds` beyond it; polls of many tasks at once share one request (`PollBatcher`). Images are
        accumulated across polls and de-duplicated by image UUID. Transient poll failures are retried up to
        `max_retries` times in a row. A task that finishes with some images and some failures returns the images it
        has; one that produced nothing raises its error. Past the timeout, `RunwareTimeoutError` is raised.
        """
        limit = self._config.task_timeout_seconds if timeout is None else timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        slept = 0.0
        images: dict[str, ImageResult] = {}
        for image in known:
            images.setdefault(image.image_uuid, image)
        delay = self._finish.first_delay()
        failures = 0
        missed_at: float | None = None
        while len(images) < expected_count:
            # Injected sleeps may not pass real time, so count both the clock and the time asked to sleep.
            remaining = limit - max(loop.time() - started, slept)
            if remaining <= 0:
                raise RunwareTimeoutError(
                    f"task did not finish within {limit:g}s ({len(images)} of {expected_count} images in)",
                    code="clientTimeout",
                    task_uuid=task_uuid,
                    retryable=False,
                )
            pause = min(delay, remaining)
            await self._sleep(pause)
            slept += pause
            backoff = self._next_poll_delay(delay)
            try:
                state = await self.poll(task_uuid, expected_count)
            except RunwareError as exc:
                if not exc.retryable or failures >= self._config.max_retries:
                    raise
                failures += 1
                delay = max(backoff, self._transport.backoff(failures - 1, exc))
                log.warning(
                    "poll of task %s failed (%s); retry %d of %d", task_uuid, exc, failures, self._config.max_retries
                )
                continue
            failures = 0
            for image in state.images:
                images.setdefault(image.image_uuid, image)
            elapsed = max(loop.time() - started, slept)
            if len(images) >= expected_count:
                if timeout is None:  # waited from the acknowledgement on (a resumed wait starts later: not a sample)
                    self._finish.observe(missed_at=missed_at, seen_at=elapsed)
                break
            missed_at = elapsed
            delay = self._finish.next_delay(backoff, elapsed)
            if state.done and len(images) < expected_count:
                if not images:
                    raise state.error or RunwareServerError(
                        "task finished without images", task_uuid=task_uuid, retryable=False
                    )
                log.warning(
                    "task %s finished with %d of %d images (%s)",
                    task_uuid,
                    len(images),
                    expected_count,
                    state.error or "no error reported",
                )
                break
        return list(images.values())

    async def upload_image(self, data: bytes, mime: str) -> UploadedImage:
        """Store an image on Runware (`imageUpload`, as a data URI) and return its reusable UUID and URL."""
        encoded = base64.b64encode(data).decode("ascii")

        def tasks() -> list[dict[str, Any]]:
            # A fresh task UUID per attempt: an upload costs nothing, so a retry never needs to find the first one.
            return [
                {"taskType": "imageUpload", "taskUUID": self.new_task_uuid(), "image": f"data:{mime};base64,{encoded}"}
            ]

        response = await self._transport.post_with_retries(tasks)
        for item in response.items:
            if item.image_uuid:
                return UploadedImage(image_uuid=item.image_uuid, image_url=item.image_url)
        raise RunwareServerError("imageUpload answered without an imageUUID", retryable=False)

    async def verify_key(self) -> None:
        """Check the API key and the URL without spending anything: ask (`getResponse`) about a random task UUID.

        Only an answer that shows Runware accepted the key counts: a successful `data` answer, or a Runware error
        envelope saying that this task does not exist. Whether a task exists can only be said once the key is
        accepted (a task belongs to the key's account), and the not-found codes that name a task are the reference's
        (§1.1, "notFound"): `taskFailedOrNotFound` (what `getResponse` answers for an unknown task, §4; the fake
        does the same), `taskNotFound`, `taskExpired` and `taskCancelled`. Everything else fails:

        - `RunwareAuthError` and `RunwareCreditsError` (a key Runware refused, an account without credit), and
          Runware's own rate-limit, transient and server errors after the retries, as they are;
        - `RunwareKeyCheckError` naming RUNWARE_API_URL for an answer that is not Runware's (an HTML page, JSON
          without an error code, a 404 or 405 without Runware's envelope: a typo in the URL) or no answer at all;
        - `RunwareKeyCheckError` for any other Runware error: a validation code (`invalidTaskUUID`, or
          `invalidParameter` even on the taskUUID) judges the request, and nothing documents that Runware checks the
          key before it does; and an answer refusing a well-formed UUID v4 would refuse the bot's polls too. Other
          not-found codes (`unknownModel`, `mediaNotFound`) are not about the task asked for.
        """
        task_uuid = self.new_task_uuid()
        try:
            await self._transport.post_with_retries(lambda: [{"taskType": "getResponse", "taskUUID": task_uuid}])
        except RunwareError as exc:
            if _says_task_unknown(exc, task_uuid):
                log.debug("key check: Runware answered %s for an unknown task, so the key works", exc.code)
                return
            failure = self._key_check_failure(exc)
            if failure is exc:
                raise
            failure.redact(self._api_key)
            raise failure from exc

    def _key_check_failure(self, exc: RunwareError) -> RunwareError:
        """Return the error `verify_key` raises for an answer that does not show the key works."""
        where = f"RUNWARE_API_URL ({self._api_url})"
        if exc.status is None:
            return RunwareKeyCheckError(f"could not reach {where}: {exc.message}; check RUNWARE_API_URL")
        if not exc.from_runware:
            if exc.status in (401, 403):
                return RunwareKeyCheckError(
                    f"{where} refused the key check with HTTP {exc.status} but not with Runware's JSON error; "
                    "check RUNWARE_API_URL and RUNWARE_API_KEY"
                )
            return RunwareKeyCheckError(
                f"{where} answered HTTP {exc.status} with a body that is not Runware's JSON; check RUNWARE_API_URL"
            )
        if isinstance(exc, RunwareAuthError | RunwareCreditsError | RunwareTransientError | RunwareServerError):
            return exc
        return RunwareKeyCheckError(
            f'Runware answered the key check with {exc.code} (HTTP {exc.status}) instead of "task not found", so '
            f"RUNWARE_API_KEY is not confirmed; check that {where} is Runware's REST endpoint"
        )

    async def download(self, image: ImageResult) -> bytes:
        """Return an image's bytes: decoded inline data, or a GET of its URL (without the API key)."""
        inline = image.inline_bytes()
        if inline is not None:
            return inline
        url = image.url
        if not url:
            raise RunwareServerError("result has neither a URL nor inline data", task_uuid=image.task_uuid)
        return await self._transport.retrying(lambda: self._transport.get(url, task_uuid=image.task_uuid))

    def _next_poll_delay(self, delay: float) -> float:
        ceiling = self._config.poll_max_interval_seconds
        return min(ceiling, max(delay * _POLL_GROWTH, ceiling / 4))


def _may_be_in_flight(error: RunwareError) -> bool:
    """Whether a failed submission may still reach Runware later (so "unknown task" is not yet final)."""
    if error.never_sent:
        return False  # the connection was never opened, so nothing was sent
    return error.code in ("requestTimeout", "connectionError") or error.status in (502, 504)


def _says_task_unknown(error: RunwareError, task_uuid: str) -> bool:
    """Whether Runware itself answered that it has no task `task_uuid` (see `RunwareClient.verify_key`)."""
    code = error.code.lower()
    return (
        error.from_runware
        and isinstance(error, RunwareTaskNotFoundError)
        and code.startswith("task")
        and (error.status is None or (error.status < 500 and error.status not in (401, 402, 403)))
        and error.task_uuid == task_uuid
    )


def _is_unknown_task(error: RunwareError) -> bool:
    return error.code.lower() == TASK_NOT_FOUND_CODE.lower()
