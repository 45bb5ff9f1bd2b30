"""One exception tree for everything Runbase answers or fails with, on the same categories as Runware's.

Each class derives from `RunbaseError` and from the `bot.runware.errors` category with the same meaning
(`RunbaseBalanceError` is a `RunwareCreditsError`, `RunbaseRateLimitedError` a `RunwareRateLimitedError`, ...), so a
caller that handles Runware's categories handles Runbase's alike, while `user_message` names Runbase and its setting.
Two meanings Runware has no category for get their own: `RunbaseKeyLimitError` (a limit set on the key, which the
owner must lift: 403 `api_key_spend_limit_exceeded`/`ip_not_allowed`, 429 `USAGE_EXCEEDED`) and
`RunbaseOutcomeUnknownError` (a create whose answer was lost: it must never be sent again).

`not_created` says Runbase certainly made no run and charged nothing (a refusal it answered, or a connection never
opened): the condition under which work may move to another provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.runware.errors import (
    RunwareAuthError,
    RunwareContentRefusedError,
    RunwareCreditsError,
    RunwareError,
    RunwareInvalidRequestError,
    RunwareKeyCheckError,
    RunwareRateLimitedError,
    RunwareServerError,
    RunwareTaskNotFoundError,
    RunwareTimeoutError,
    RunwareTransientError,
)

_FREE = " Nothing was charged."


class RunbaseError(RunwareError):
    """A Runbase request or run failed.

    `task_uuid` holds the run id when there is one; `from_runware` is True when the error came from the provider's own
    JSON error body (Runbase's here).
    """

    not_created = False
    """True when Runbase certainly made no run (and took no money) for the request that failed."""

    @property
    def run_id(self) -> str | None:
        """The run the error is about, if any."""
        return self.task_uuid


class RunbaseAuthError(RunbaseError, RunwareAuthError):
    """HTTP 401: the key is missing, wrong, disabled or expired (`missing_api_key`, `invalid_api_key`)."""

    default_message = "Runbase rejected the API key."
    not_created = True

    @property
    def user_message(self) -> str:
        """Point the owner at the key without showing it."""
        return "Runbase rejected the bot's API key. The bot owner needs to check RUNBASE_API_KEY." + _FREE


class RunbaseBalanceError(RunbaseError, RunwareCreditsError):
    """HTTP 402 `insufficient_balance`: the owner's prepaid Runbase balance is too low for this run."""

    default_message = "The Runbase balance is too low for this run."
    not_created = True

    @property
    def user_message(self) -> str:
        """Say whose account is empty and that the member's budget was not touched."""
        return (
            "The bot owner's Runbase balance is too low, so no images can be generated there right now. "
            "Nothing was charged to your budget."
        )


class RunbaseKeyLimitError(RunbaseError):
    """A limit set on the key refuses the request; the owner must lift it, asking again will not help.

    The key's spend limit (403), its IP allow-list (403) or its usage quota (429 `USAGE_EXCEEDED`, which is not a
    transient rate limit).
    """

    default_message = "A limit set on the Runbase key refused the request."
    not_created = True

    @property
    def user_message(self) -> str:
        """Name the limit the owner has to lift."""
        what = {
            "api_key_spend_limit_exceeded": "has reached its spend limit",
            "ip_not_allowed": "does not allow requests from this server's IP address",
            "USAGE_EXCEEDED": "has used up its usage quota",
        }.get(self.code, "has reached a limit set on it")
        return f"The bot's Runbase key {what}; the bot owner needs to lift that limit on Runbase." + _FREE


class RunbaseInvalidRequestError(RunbaseError, RunwareInvalidRequestError):
    """HTTP 400 (`invalid_json`, `missing_model`, `missing_input`, `invalid_input`, `model_not_found`)."""

    default_message = "Runbase rejected the request as invalid."
    not_created = True

    @property
    def user_message(self) -> str:
        """Quote Runbase's reason."""
        return f"Runbase rejected the request: {self.message.rstrip('.')}." + _FREE


class RunbaseRateLimitedError(RunbaseError, RunwareRateLimitedError):
    """HTTP 429 `RATE_LIMITED`: too many requests for the key right now; nothing was done, retry after a backoff."""

    default_message = "Runbase refused the request: too many requests."
    not_created = True

    @property
    def user_message(self) -> str:
        """Say Runbase is busy."""
        return "Runbase is receiving too many requests from the bot right now. Please try again in a minute." + _FREE


class RunbaseRunNotFoundError(RunbaseError, RunwareTaskNotFoundError):
    """HTTP 404 `run_not_found`: no such run for this key."""

    default_message = "Runbase does not know this run."

    @property
    def user_message(self) -> str:
        """Say the run is gone."""
        return "Runbase no longer knows this image's run." + _FREE


class RunbaseTransientError(RunbaseError, RunwareTransientError):
    """A connection failure. `not_created` is True when the connection was never opened (nothing was sent)."""

    default_message = "Runbase could not be reached."

    @property
    def user_message(self) -> str:
        """Suggest trying again soon."""
        return "Runbase could not be reached. Please try again in a minute." + _FREE


class RunbaseTimeoutError(RunbaseError, RunwareTimeoutError):
    """A request that got no answer in time, or a run that did not finish within the task timeout."""

    default_message = "Runbase did not answer in time."

    @property
    def user_message(self) -> str:
        """Say it timed out."""
        return "The image took too long on Runbase and was abandoned. Please try again." + _FREE


class RunbaseServerError(RunbaseError, RunwareServerError):
    """HTTP 5xx, or an answer that is not what the protocol promises."""

    default_message = "Runbase had an internal error."

    @property
    def user_message(self) -> str:
        """Blame the service."""
        return "Runbase had an internal error. Please try again later." + _FREE


class RunbaseRunFailedError(RunbaseError, RunwareServerError):
    """The run ended `failed`; Runbase refunded it, so it cost nothing."""

    default_message = "The Runbase run failed."
    retryable_by_default = False

    @property
    def user_message(self) -> str:
        """Quote the reason Runbase gave."""
        return f"Runbase could not generate this image ({self.message.rstrip('.')})." + _FREE


class RunbaseContentRefusedError(RunbaseError, RunwareContentRefusedError):
    """The run failed because the prompt or an image was refused under the content policy; refunded."""

    default_message = "The request was refused under the content policy."

    @property
    def user_message(self) -> str:
        """Explain the refusal."""
        return "Runbase refused this request under its content policy." + _FREE


class RunbaseOutcomeUnknownError(RunbaseError):
    """A create was sent but its answer was lost (a timeout, a dropped connection, a 5xx, an unreadable body).

    Runbase has no idempotency key and no way to list runs, so whether a run was made (and paid) cannot be found out;
    the create is never sent again automatically. A caller must assume it may have been charged.
    """

    default_message = "Runbase's answer to a create was lost; the run may or may not exist."

    @property
    def user_message(self) -> str:
        """Say what happened and why it is not retried; no promise that nothing was charged."""
        return (
            "Runbase's answer to this request was lost, so the bot cannot tell whether the image was started; it is "
            "not sent again, which could charge twice. The bot owner may have been charged for it on Runbase."
        )


class RunbaseKeyCheckError(RunbaseError, RunwareKeyCheckError):
    """The key check got an answer that does not show the key works; the message says what to fix."""

    default_message = "The Runbase key could not be verified."

    @property
    def user_message(self) -> str:
        """The one-line finding."""
        return self.message


_BY_CODE: dict[str, type[RunbaseError]] = {
    "invalid_json": RunbaseInvalidRequestError,
    "missing_model": RunbaseInvalidRequestError,
    "missing_input": RunbaseInvalidRequestError,
    "invalid_input": RunbaseInvalidRequestError,
    "model_not_found": RunbaseInvalidRequestError,
    "missing_api_key": RunbaseAuthError,
    "invalid_api_key": RunbaseAuthError,
    "insufficient_balance": RunbaseBalanceError,
    "api_key_spend_limit_exceeded": RunbaseKeyLimitError,
    "ip_not_allowed": RunbaseKeyLimitError,
    "run_not_found": RunbaseRunNotFoundError,
    "RATE_LIMITED": RunbaseRateLimitedError,
    "USAGE_EXCEEDED": RunbaseKeyLimitError,
}
"""Every documented code (reference §4). Codes are matched exactly first, then case-insensitively."""

_BY_STATUS: dict[int, type[RunbaseError]] = {
    400: RunbaseInvalidRequestError,
    401: RunbaseAuthError,
    402: RunbaseBalanceError,
    403: RunbaseKeyLimitError,
    404: RunbaseRunNotFoundError,
    408: RunbaseTimeoutError,
    429: RunbaseRateLimitedError,
    504: RunbaseTimeoutError,
}

_CONTENT_WORDS = ("content_policy", "contentpolicy", "moderation", "safety", "nsfw", "content policy")


def classify(code: str, status: int | None) -> type[RunbaseError]:
    """Return the class for a code (documented codes exactly) or, when the code says nothing, the HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    for known, cls in _BY_CODE.items():
        if code.lower() == known.lower():
            return cls
    if status is None:
        return RunbaseServerError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return RunbaseInvalidRequestError
    return RunbaseServerError


def error_from_body(body: Any, status: int, *, run_id: str | None = None, text: str = "") -> RunbaseError:
    """Build the exception for an error answer: Runbase's `{"error": {"message", "code"}}`, or just its status."""
    error = body.get("error") if isinstance(body, Mapping) else None
    code = message = ""
    if isinstance(error, Mapping):
        code = _text(error.get("code"))
        message = _text(error.get("message"))
    elif isinstance(error, str):
        message = error.strip()
    cls = classify(code, status)
    if not message:
        snippet = " ".join(text.split())[:200]
        message = f"HTTP {status} from Runbase" + (f": {snippet}" if snippet else "")
    failure = cls(message, code=code, status=status, task_uuid=run_id)
    failure.from_runware = isinstance(error, Mapping | str) and bool(code or message)
    return failure


def run_failure(run_id: str, error: Any) -> RunbaseError:
    """Build the exception for a failed run: its `error` is a string or `{message, code}` (reference §2)."""
    if isinstance(error, Mapping):
        code, message = _text(error.get("code")), _text(error.get("message"))
    else:
        code, message = "", error.strip() if isinstance(error, str) else ""
    words = f"{code} {message}".lower()
    cls: type[RunbaseError] = (
        RunbaseContentRefusedError if any(word in words for word in _CONTENT_WORDS) else RunbaseRunFailedError
    )
    failure = cls(message or "no reason given", code=code, task_uuid=run_id, retryable=False)
    failure.from_runware = True
    return failure


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""
