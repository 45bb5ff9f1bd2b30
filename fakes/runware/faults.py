"""Errors and injected faults of the fake Runware: the `Fault` kinds, the queue `fail_next` fills, error objects.

Every error the fake sends is built here, shaped as Runware's (`code`, `message`, optional `parameter`, `taskType`,
`taskUUID`, and a `documentation` link): per-task errors (`TaskError`, one item of an `errors` envelope), the 401 of
a bad key, and the answers of the request-level faults (including the two odd envelopes a client must also read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aiohttp import web

__all__ = [
    "DOCS_URL",
    "STATUS_FAULTS",
    "TASK_FAULTS",
    "Fault",
    "FaultQueue",
    "PendingFault",
    "TaskError",
    "error_object",
    "fault_response",
    "unauthorized",
]

DOCS_URL = "https://runware.ai/docs/platform/errors"


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


TASK_FAULTS = frozenset({Fault.CONTENT_POLICY, Fault.TASK_TIMEOUT})
"""Faults that hit the next accepted imageInference task rather than a whole request."""

STATUS_FAULTS: dict[Fault, tuple[int, str, str]] = {
    Fault.UNAUTHORIZED: (401, "invalidApiKey", "Invalid API key. Get one at https://my.runware.ai/keys"),
    Fault.INSUFFICIENT_CREDITS: (402, "insufficientCredits", "Insufficient credits. Top up your account balance."),
    Fault.RATE_LIMITED: (429, "rateLimitExceeded", "Queue capacity exceeded. Retry with exponential backoff."),
    Fault.SERVER_ERROR: (500, "internalServerError", "Internal server error. Please retry."),
    Fault.UNAVAILABLE: (503, "serviceUnavailable", "Service temporarily unavailable. Please retry."),
    Fault.ERROR_ENVELOPE_SINGULAR: (400, "invalidParameter", "Simulated error in a singular `error` envelope."),
    Fault.ERROR_ENVELOPE_BARE_LIST: (400, "invalidParameter", "Simulated error in a bare-list envelope."),
}
"""Faults answered with an error and nothing processed: default HTTP status, error code, message."""


@dataclass(slots=True)
class PendingFault:
    """One `fail_next` call still to hit `remaining` requests (or tasks)."""

    fault: Fault
    remaining: int
    task_type: str | None
    status: int | None
    code: str | None
    retry_after: float | None = None
    delay: float | None = None


class FaultQueue:
    """The faults `fail_next` has queued, consumed in order by the requests and tasks they match."""

    def __init__(self) -> None:
        self._faults: list[PendingFault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def add(
        self,
        fault: Fault | str,
        *,
        times: int,
        task_type: str | None,
        status: int | None,
        code: str | None,
        retry_after: float | None,
        delay: float | None,
    ) -> None:
        """Queue a fault after checking its arguments (see `FakeRunware.fail_next`)."""
        fault = Fault(fault)
        if times < 1:
            raise ValueError("times must be at least 1")
        if fault in TASK_FAULTS and task_type not in (None, "imageInference"):
            raise ValueError(f"{fault} only applies to imageInference tasks")
        if delay is not None and not delay >= 0:
            raise ValueError("delay must be a number of seconds, at least 0")
        self._faults.append(PendingFault(fault, times, task_type, status, code, retry_after, delay))

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending(self) -> list[tuple[Fault, int, str | None]]:
        """Pending faults as (fault, remaining times, task_type filter)."""
        return [(pending.fault, pending.remaining, pending.task_type) for pending in self._faults]

    def take_for_request(self, tasks: Sequence[Any]) -> PendingFault | None:
        """The first request-level fault whose filter matches a task type of `tasks`, consumed once."""
        types = {task.get("taskType") for task in tasks if isinstance(task, dict)}
        for pending in self._faults:
            if pending.fault in TASK_FAULTS:
                continue
            if pending.task_type is None or pending.task_type in types:
                self._consume(pending)
                return pending
        return None

    def take_for_task(self) -> Fault | None:
        """The first task-level fault (`TASK_FAULTS`), consumed once, for an imageInference task being accepted."""
        for pending in self._faults:
            if pending.fault in TASK_FAULTS:
                self._consume(pending)
                return pending.fault
        return None

    def _consume(self, pending: PendingFault) -> None:
        pending.remaining -= 1
        if pending.remaining <= 0:
            self._faults.remove(pending)


class TaskError(Exception):
    """A per-task error; becomes one item of the `errors` envelope."""

    def __init__(self, code: str, message: str, parameter: str | list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.parameter = parameter


def error_object(
    code: str,
    message: str,
    *,
    parameter: str | list[str] | None = None,
    task_type: str | None = None,
    task_uuid: str | None = None,
) -> dict[str, Any]:
    """One Runware error object."""
    error: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        error["parameter"] = parameter
    if task_type is not None:
        error["taskType"] = task_type
    if task_uuid is not None:
        error["taskUUID"] = task_uuid
    error["documentation"] = DOCS_URL
    return error


def unauthorized(status: int = 401, code: str = "invalidApiKey") -> web.Response:
    """The answer to a request without the right API key."""
    error = error_object(
        code,
        "Invalid API key. Get one at https://my.runware.ai/keys",
        parameter="apiKey",
        task_type="authentication",
    )
    return web.json_response({"errors": [error]}, status=status)


def fault_response(pending: PendingFault, tasks: Sequence[Any]) -> web.Response:
    """The error answer of a `STATUS_FAULTS` fault: one error per task, in the envelope the fault asks for."""
    default_status, default_code, message = STATUS_FAULTS[pending.fault]
    status = pending.status or default_status
    code = pending.code or default_code
    headers = {} if pending.retry_after is None else {"Retry-After": f"{pending.retry_after:g}"}
    if pending.fault == Fault.UNAUTHORIZED:
        response = unauthorized(status, code)
        response.headers.update(headers)
        return response
    errors = [
        error_object(
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
