"""One exception tree for everything that can go wrong talking to Runware, and the mapping from wire errors to it.

Runware reports errors in several envelope shapes (`{"errors": [...]}`, `{"error": {...}}`, a bare list,
`{"error": {...}, "taskUUID": ..., "taskType": ...}`, and `getResponse` items with `status: "error"`), with error
codes that are "large and unstable" and vary by provider. The code is kept as a free-form string and classified
with the prefix/substring rules of `shared/reference/runware-api.md` §1.1; when the code says nothing useful, the
HTTP status decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import aiohttp

from bot.errors import AtelierError

Parameter = str | list[str] | None


class RunwareError(AtelierError):
    """A Runware request or task failed; `user_message` says what a Discord member (or the owner) can do about it."""

    default_message: ClassVar[str] = "Runware could not complete this request."
    retryable_by_default: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        code: str = "",
        parameter: Parameter = None,
        task_uuid: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message or self.default_message
        self.parameter = parameter
        self.task_uuid = task_uuid
        self.status = status
        self.retryable = self.retryable_by_default if retryable is None else retryable
        self.retry_after = retry_after
        # True when built from an error object with a code in Runware's JSON answer (an error envelope or a failed
        # item); False for one inferred from an HTTP status, a transport failure or a body that is not Runware's.
        self.from_runware = False
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"{self.code}: {self.message}" if self.code else self.message]
        if self.parameter:
            parts.append(f"parameter={_parameter_text(self.parameter)}")
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.task_uuid:
            parts.append(f"task {self.task_uuid}")
        return " | ".join(parts)

    @property
    def never_sent(self) -> bool:
        """Whether the request never left this machine: the connection was refused or never opened.

        Nothing was sent, so the provider certainly took no work and no money; every "did the provider take it?" rule
        starts here.
        """
        return isinstance(self.__cause__, aiohttp.ClientConnectorError)

    @property
    def user_message(self) -> str:
        """A short sentence for the member who asked; technical detail stays in `str(error)` for the logs."""
        return self.default_message

    def redact(self, secret: str) -> None:
        """Replace every occurrence of `secret` (the API key) in the message and parameter with `***`."""
        if len(secret) < 4:
            return
        self.message = self.message.replace(secret, "***")
        if isinstance(self.parameter, str):
            self.parameter = self.parameter.replace(secret, "***")
        elif isinstance(self.parameter, list):
            self.parameter = [part.replace(secret, "***") for part in self.parameter]
        self.args = (self._describe(),)


class RunwareAuthError(RunwareError):
    """The API key is missing, invalid, expired or lacks permission (HTTP 401/403)."""

    default_message = "Runware rejected the API key."

    @property
    def user_message(self) -> str:
        """Point the owner at the key without ever showing it."""
        return "Runware rejected the bot's API key. The bot owner needs to check RUNWARE_API_KEY. Nothing was charged."


class RunwareCreditsError(RunwareError):
    """The bot owner's Runware account has no credit left (HTTP 402)."""

    default_message = "The Runware account has insufficient credits."

    @property
    def user_message(self) -> str:
        """Say whose account is empty and that the member's budget was not touched."""
        return (
            "The bot owner's Runware account is out of credits, so no images can be generated right now. "
            "Nothing was charged to your budget."
        )


class RunwareInvalidRequestError(RunwareError):
    """Runware refused the request as malformed (HTTP 400); `parameter` names the field involved."""

    default_message = "Runware rejected the request as invalid."

    @property
    def user_message(self) -> str:
        """Quote Runware's reason and the field, which is the most useful thing to change."""
        where = f" (field: {_parameter_text(self.parameter)})" if self.parameter else ""
        return f"Runware rejected the request: {self.message.rstrip('.')}{where}. Nothing was charged."


class RunwareDuplicateTaskError(RunwareInvalidRequestError):
    """The task UUID is already known to Runware: the earlier submission arrived, so poll it instead of resubmitting."""

    default_message = "A task with this UUID already exists."


class RunwareContentRefusedError(RunwareError):
    """Runware or the model provider refused the prompt or an image under its content policy."""

    default_message = "The request was refused under the content policy."

    @property
    def user_message(self) -> str:
        """Explain the refusal and that it cost nothing."""
        return "Runware refused this request under its content policy. Nothing was charged."


class RunwareTransientError(RunwareError):
    """A temporary failure (capacity, provider hiccup, connection trouble); retried with backoff."""

    default_message = "Runware is temporarily unavailable."
    retryable_by_default = True

    @property
    def user_message(self) -> str:
        """Suggest trying again soon."""
        return "Runware is temporarily unavailable. Please try again in a minute. Nothing was charged."


class RunwareRateLimitedError(RunwareTransientError):
    """Runware's queue is full (HTTP 429); the task was not accepted and may be resubmitted after a backoff."""

    default_message = "Runware's queue is full."

    @property
    def user_message(self) -> str:
        """Say Runware is busy right now."""
        return "Runware is busy right now (its queue is full). Please try again in a minute. Nothing was charged."


class RunwareTimeoutError(RunwareError):
    """A request or task took too long: an HTTP timeout, Runware's queue wait (HTTP 504), or a provider timeout."""

    default_message = "Runware did not answer in time."

    @property
    def user_message(self) -> str:
        """Say it timed out and that unfinished work is not charged."""
        return "The image took too long to generate and was abandoned. Please try again. Nothing was charged."


class RunwareServerError(RunwareError):
    """Runware failed internally (HTTP 5xx) or answered with a body that is not what the protocol promises."""

    default_message = "Runware had an internal error."
    retryable_by_default = True

    @property
    def user_message(self) -> str:
        """Blame the service, not the member."""
        return "Runware had an internal error. Please try again later. Nothing was charged."


class RunwareKeyCheckError(RunwareError):
    """The key check (`python -m bot check`) got an answer that does not show the key works (message: what to fix)."""

    default_message = "The Runware key could not be verified."

    @property
    def user_message(self) -> str:
        """The one-line finding, naming the setting to check."""
        return self.message


class RunwareTaskNotFoundError(RunwareError):
    """Runware does not know the task (`taskFailedOrNotFound`), or it was cancelled or has expired."""

    default_message = "Runware does not know this task."

    @property
    def user_message(self) -> str:
        """Say the task is gone."""
        return "Runware no longer knows this task; it may have failed or expired. Nothing was charged."


TASK_NOT_FOUND_CODE = "taskFailedOrNotFound"
"""The code `getResponse` answers for a task UUID that Runware has never accepted (or has forgotten)."""

_AUTH_CODES = {
    "unauthorized",
    "forbidden",
    "permissiondenied",
    "authenticationfailed",
    "tokenexpired",
    "accountsuspended",
    "accountdisabled",
}
_CREDIT_CODES = {"quotaexceeded", "paymentrequired"}
_CONTENT_CODES = {
    "contentpolicyviolation",
    "providercontentpolicyviolation",
    "sensitivecontentdetected",
    "unsafecontentdetected",
    "nsfwcontentdetected",
    "promptblocked",
    "imageblocked",
    "moderationfailed",
    "invalidprovidercontent",
}
_NOT_FOUND_CODES = {"taskfailedornotfound", "taskcancelled"}
_VALIDATION_CODES = {
    "unknownparameter",
    "incompatibleparameters",
    "unknownprovidersettingsprovider",
    "mismatchprovidersettingsprovider",
    "validationfailed",
    # The reference lists `unknownModel` under "not found"; for this bot it is a bad request, and treating it as
    # "task not found" would wrongly allow a resubmission.
    "unknownmodel",
}
_VALIDATION_PREFIXES = ("invalid", "missing", "unsupported", "conflict", "duplicate", "value", "array", "max", "min")
_TRANSIENT_CODES = {
    "inferenceerror",
    "processingfailed",
    "taskfailed",
    "downloadfailed",
    "uploadfailed",
    "noavailableserver",
    "modelunavailable",
    "modelnotready",
    "serviceunavailable",
    "serveroverloaded",
}
_SERVER_CODES = {"internalservererror", "unknownerror", "standarderror", "internalerror"}


def classify_code(code: str) -> type[RunwareError] | None:
    """Map a raw Runware error code to an exception class, or None when the code alone does not say."""
    key = code.strip().lower()
    if not key:
        return None
    if "apikey" in key or key in _AUTH_CODES:
        return RunwareAuthError
    if any(word in key for word in ("credit", "quota", "balance")) or key in _CREDIT_CODES:
        return RunwareCreditsError
    if "ratelimit" in key:
        return RunwareRateLimitedError
    if key in _CONTENT_CODES or "contentpolicy" in key:
        return RunwareContentRefusedError
    if "timeout" in key:
        return RunwareTimeoutError
    if key.startswith("duplicatetask"):
        return RunwareDuplicateTaskError
    if key in _NOT_FOUND_CODES or key.endswith(("notfound", "expired")):
        return RunwareTaskNotFoundError
    if key in _VALIDATION_CODES or key.startswith(_VALIDATION_PREFIXES):
        return RunwareInvalidRequestError
    if key in _TRANSIENT_CODES or key.startswith("provider"):
        return RunwareTransientError
    if key in _SERVER_CODES:
        return RunwareServerError
    return None


def classify_status(status: int | None) -> type[RunwareError]:
    """Map an HTTP status (or None for a failure without one) to an exception class."""
    if status is None:
        return RunwareServerError
    if status in (401, 403):
        return RunwareAuthError
    if status == 402:
        return RunwareCreditsError
    if status == 404:
        return RunwareTaskNotFoundError
    if status in (408, 504):
        return RunwareTimeoutError
    if status == 429:
        return RunwareRateLimitedError
    if status in (502, 503):
        return RunwareTransientError
    if status >= 500:
        return RunwareServerError
    if status >= 400:
        return RunwareInvalidRequestError
    return RunwareServerError


def error_from_wire(
    item: Mapping[str, Any],
    *,
    status: int | None = None,
    task_uuid: str | None = None,
    retry_after: float | None = None,
) -> RunwareError:
    """Build the exception for one wire error object (`{code, message, parameter, taskUUID, ...}`)."""
    code = _text(item.get("code")) or _text(item.get("type")) or ""
    message = _text(item.get("message")) or _text(item.get("error")) or ""
    parameter = _parameter(item.get("parameter"))
    uuid = _text(item.get("taskUUID")) or task_uuid
    cls = classify_code(code) or classify_status(status if status is not None and status >= 400 else None)
    retryable: bool | None = None
    if cls is RunwareTimeoutError:
        # A queue-wait or HTTP timeout means "try again"; a provider timeout inside a task is final for that task.
        retryable = status in (408, 504)
    error = cls(
        message,
        code=code,
        parameter=parameter,
        task_uuid=uuid,
        status=status,
        retryable=retryable,
        retry_after=retry_after,
    )
    error.from_runware = bool(code)
    return error


def error_for_status(
    status: int, *, body_text: str = "", task_uuid: str | None = None, retry_after: float | None = None
) -> RunwareError:
    """Build the exception for an HTTP error status whose body holds no recognisable error object."""
    cls = classify_status(status)
    snippet = " ".join(body_text.split())[:200]
    message = f"HTTP {status} from Runware" + (f": {snippet}" if snippet else "")
    retryable = True if cls is RunwareTimeoutError else None
    return cls(message, status=status, task_uuid=task_uuid, retryable=retryable, retry_after=retry_after)


def wire_error_objects(body: Any, *, include_items: bool = True) -> list[dict[str, Any]]:
    """Collect the error objects from any of Runware's error envelopes, attaching the task UUID where it is outside.

    Handles `{"errors": [...]}`, `{"error": {...}}` (with `taskUUID`/`taskType` beside it or not), `{"error": "text"}`,
    a bare list of error objects, and (unless `include_items` is false) `data` items with `status: "error"` and an
    `error` object.
    """
    found: list[dict[str, Any]] = []
    if isinstance(body, list):
        found.extend(_as_error(item, None) for item in body if _looks_like_error(item))
        return found
    if not isinstance(body, dict):
        return found
    errors = body.get("errors")
    if isinstance(errors, list):
        found.extend(_as_error(item, None) for item in errors if isinstance(item, dict | str))
    elif isinstance(errors, dict):
        found.append(_as_error(errors, body))
    single = body.get("error")
    if isinstance(single, dict | str) and single:
        found.append(_as_error(single, body))
    data = body.get("data") if include_items else None
    items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    for item in items:
        if isinstance(item, dict) and _item_failed(item):
            found.append(_as_error(item.get("error") or item, item))
    return found


def errors_from_body(
    body: Any,
    *,
    status: int | None = None,
    task_uuid: str | None = None,
    retry_after: float | None = None,
    include_items: bool = True,
) -> list[RunwareError]:
    """Return every error in a response body as an exception (see `wire_error_objects` for the shapes).

    `task_uuid` is the task the request was about; it is used for errors that do not name their own task.
    """
    objects = wire_error_objects(body, include_items=include_items)
    return [error_from_wire(item, status=status, task_uuid=task_uuid, retry_after=retry_after) for item in objects]


def _item_failed(item: Mapping[str, Any]) -> bool:
    status = item.get("status")
    return (isinstance(status, str) and status.lower() in ("error", "failed")) or isinstance(item.get("error"), dict)


def _looks_like_error(item: Any) -> bool:
    return isinstance(item, dict) and ("code" in item or "message" in item or "error" in item)


def _as_error(value: Any, outer: Mapping[str, Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = dict(value) if isinstance(value, dict) else {"message": str(value)}
    if isinstance(error.get("error"), dict):
        nested = dict(error["error"])
        for key in ("taskUUID", "taskType"):
            if key in error and key not in nested:
                nested[key] = error[key]
        error = nested
    if outer is not None:
        for key in ("taskUUID", "taskType"):
            if key not in error and isinstance(outer.get(key), str):
                error[key] = outer[key]
    return error


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _parameter(value: Any) -> Parameter:
    if isinstance(value, str):
        return value or None
    if isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        names = [str(part) for part in value if part is not None]
        return names or None
    return None


def _parameter_text(parameter: Parameter) -> str:
    if isinstance(parameter, list):
        return ", ".join(parameter)
    return parameter or ""
