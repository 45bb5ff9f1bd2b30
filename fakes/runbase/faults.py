"""Errors and injected faults of the fake Runbase: the error bodies of reference §4 and the `Fault` queue.

Every error the fake sends has Runbase's body, `{"error": {"message": ..., "code": ...}}`, with the HTTP status of
the reference's table. Faults (`FakeRunbase.fail_next`) cut into the next matching request(s): a documented error
answered instead of the real one (nothing happens), a server error, a hang, or an answer lost after a run was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from aiohttp import web

__all__ = ["ERRORS", "Fault", "FaultQueue", "PendingFault", "RefusalError", "error_response"]

Endpoint = Literal["create", "poll"]

ERRORS: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "Request body is not valid JSON."),
    "missing_model": (400, "The 'model' field is required."),
    "missing_input": (400, "The 'input' field is required."),
    "invalid_input": (400, "The input is not valid for this model."),
    "model_not_found": (400, "Model not found."),
    "missing_api_key": (401, "Missing API key. Send 'Authorization: Bearer sk-...'."),
    "invalid_api_key": (401, "Invalid, disabled or expired API key."),
    "insufficient_balance": (402, "Insufficient balance. Top up your account to continue."),
    "api_key_spend_limit_exceeded": (403, "This API key has reached its spend limit."),
    "ip_not_allowed": (403, "Requests from this IP address are not allowed for this API key."),
    "run_not_found": (404, "Run not found. Runs are visible only to the API key that created them."),
    "RATE_LIMITED": (429, "Too many requests. Slow down."),
    "USAGE_EXCEEDED": (429, "Usage limit exceeded for this API key."),
}
"""Every documented error code (reference §4): its HTTP status and the fake's message."""


class RefusalError(Exception):
    """A documented error to answer with; `message` may be more specific than the table's."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.status, default = ERRORS[code]
        self.message = message or default
        super().__init__(f"{code}: {self.message}")


def error_response(code: str, message: str | None = None, *, status: int | None = None) -> web.Response:
    """Runbase's error body for `code` (a documented one, or any code with an explicit status)."""
    default_status, default_message = ERRORS.get(code, (500, "Internal server error."))
    return web.json_response(
        {"error": {"message": message or default_message, "code": code}}, status=status or default_status
    )


class Fault(StrEnum):
    """Faults that `FakeRunbase.fail_next` can inject into the next matching request(s)."""

    ERROR = "error"
    """Answer with the documented error `code` (required), nothing done: e.g. `insufficient_balance` on a create."""
    SERVER_ERROR = "server_error"
    """HTTP 500 with `{"error": {"message": "Internal server error."}}` (no code, as the reference says);
    nothing done."""
    BAD_GATEWAY = "bad_gateway"
    """A proxy's HTTP 502 with an HTML body; nothing done."""
    MALFORMED_JSON = "malformed_json"
    """The request IS processed (a create makes and charges its run), then a 200 with a truncated, non-JSON body."""
    HANG = "hang"
    """No answer until the client gives up (or the fake closes); nothing done."""
    DROP_AFTER_CREATE = "drop_after_create"
    """The request IS processed (a create makes and charges its run), then the connection is cut without an answer."""
    SLOW_AFTER_CREATE = "slow_after_create"
    """The request IS processed, then the answer is held `delay` seconds (default 5): a client timing out sooner
    never hears the run id."""
    FAIL_RUN = "fail_run"
    """The next created run ends `failed` (refunded) with `error` = {message, code: `code` or `generation_failed`}."""
    FAIL_RUN_TEXT = "fail_run_text"
    """Like FAIL_RUN, but `error` is a plain string."""


RUN_FAULTS = frozenset({Fault.FAIL_RUN, Fault.FAIL_RUN_TEXT})
"""Faults that hit the next run made rather than a request."""


@dataclass(slots=True)
class PendingFault:
    """One `fail_next` call still to hit `remaining` requests (or runs)."""

    fault: Fault
    remaining: int
    endpoint: Endpoint | None
    code: str | None
    message: str | None
    delay: float | None


class FaultQueue:
    """The faults `fail_next` has queued, consumed in order by the requests and runs they match."""

    def __init__(self) -> None:
        self._faults: list[PendingFault] = []

    def __len__(self) -> int:
        return len(self._faults)

    def add(
        self,
        fault: Fault | str,
        *,
        times: int = 1,
        endpoint: Endpoint | None = None,
        code: str | None = None,
        message: str | None = None,
        delay: float | None = None,
    ) -> None:
        """Queue a fault after checking its arguments (see `FakeRunbase.fail_next`)."""
        fault = Fault(fault)
        if times < 1:
            raise ValueError("times must be at least 1")
        if fault is Fault.ERROR and code not in ERRORS:
            raise ValueError(f"Fault.ERROR needs a documented code, one of {sorted(ERRORS)}")
        if fault in (Fault.DROP_AFTER_CREATE, Fault.SLOW_AFTER_CREATE) and endpoint == "poll":
            raise ValueError(f"{fault} applies to creates")
        self._faults.append(PendingFault(fault, times, endpoint, code, message, delay))

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()

    @property
    def pending(self) -> list[tuple[Fault, int, str | None]]:
        """Pending faults as (fault, remaining times, endpoint filter)."""
        return [(pending.fault, pending.remaining, pending.endpoint) for pending in self._faults]

    def take_for_request(self, endpoint: Endpoint) -> PendingFault | None:
        """The first request-level fault matching `endpoint`, consumed once."""
        for pending in self._faults:
            if pending.fault in RUN_FAULTS:
                continue
            if pending.fault in (Fault.DROP_AFTER_CREATE, Fault.SLOW_AFTER_CREATE) and endpoint != "create":
                continue
            if pending.endpoint in (None, endpoint):
                self._consume(pending)
                return pending
        return None

    def take_for_run(self) -> PendingFault | None:
        """The first run-level fault (`FAIL_RUN`, `FAIL_RUN_TEXT`), consumed once, for a run being made."""
        for pending in self._faults:
            if pending.fault in RUN_FAULTS:
                self._consume(pending)
                return pending
        return None

    def _consume(self, pending: PendingFault) -> None:
        pending.remaining -= 1
        if pending.remaining <= 0:
            self._faults.remove(pending)
