"""Mapping Runware's error codes, HTTP statuses and envelope shapes onto the one exception tree."""

from __future__ import annotations

from typing import Any

import pytest

from bot.errors import AtelierError
from bot.runware.errors import (
    RunwareAuthError,
    RunwareContentRefusedError,
    RunwareCreditsError,
    RunwareDuplicateTaskError,
    RunwareError,
    RunwareInvalidRequestError,
    RunwareRateLimitedError,
    RunwareServerError,
    RunwareTaskNotFoundError,
    RunwareTimeoutError,
    RunwareTransientError,
    classify_code,
    classify_status,
    error_for_status,
    error_from_wire,
    errors_from_body,
)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("invalidApiKey", RunwareAuthError),
        ("missingApiKey", RunwareAuthError),
        ("unauthorized", RunwareAuthError),
        ("forbidden", RunwareAuthError),
        ("permissionDenied", RunwareAuthError),
        ("tokenExpired", RunwareAuthError),
        ("accountSuspended", RunwareAuthError),
        ("insufficientCredits", RunwareCreditsError),
        ("insufficientBalance", RunwareCreditsError),
        ("quotaExceeded", RunwareCreditsError),
        ("paymentRequired", RunwareCreditsError),
        ("rateLimitExceeded", RunwareRateLimitedError),
        ("contentPolicyViolation", RunwareContentRefusedError),
        ("providerContentPolicyViolation", RunwareContentRefusedError),
        ("invalidProviderContent", RunwareContentRefusedError),
        ("nsfwContentDetected", RunwareContentRefusedError),
        ("promptBlocked", RunwareContentRefusedError),
        ("moderationFailed", RunwareContentRefusedError),
        ("timeoutProvider", RunwareTimeoutError),
        ("requestTimeout", RunwareTimeoutError),
        ("duplicateTaskUUID", RunwareDuplicateTaskError),
        ("taskFailedOrNotFound", RunwareTaskNotFoundError),
        ("taskCancelled", RunwareTaskNotFoundError),
        ("imageNotFound", RunwareTaskNotFoundError),
        ("invalidParameter", RunwareInvalidRequestError),
        ("invalidPositivePrompt", RunwareInvalidRequestError),
        ("missingParameter", RunwareInvalidRequestError),
        ("unsupportedDimensions", RunwareInvalidRequestError),
        ("maxReferenceImagesExceeded", RunwareInvalidRequestError),
        ("unknownParameter", RunwareInvalidRequestError),
        ("unknownModel", RunwareInvalidRequestError),
        ("incompatibleParameters", RunwareInvalidRequestError),
        ("validationFailed", RunwareInvalidRequestError),
        ("inferenceError", RunwareTransientError),
        ("providerError", RunwareTransientError),
        ("modelUnavailable", RunwareTransientError),
        ("serviceUnavailable", RunwareTransientError),
        ("internalServerError", RunwareServerError),
        ("unknownError", RunwareServerError),
        ("somethingNew", None),
        ("", None),
    ],
)
def test_codes_map_by_the_prefix_and_substring_rules(code: str, expected: type[RunwareError] | None) -> None:
    """Each raw code lands in its class (runware-api.md §1.1); unknown codes leave the decision to the status."""
    assert classify_code(code) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, RunwareInvalidRequestError),
        (401, RunwareAuthError),
        (402, RunwareCreditsError),
        (403, RunwareAuthError),
        (404, RunwareTaskNotFoundError),
        (408, RunwareTimeoutError),
        (429, RunwareRateLimitedError),
        (500, RunwareServerError),
        (502, RunwareTransientError),
        (503, RunwareTransientError),
        (504, RunwareTimeoutError),
        (599, RunwareServerError),
    ],
)
def test_http_statuses_map_to_classes(status: int, expected: type[RunwareError]) -> None:
    """Without a recognisable code, the HTTP status decides the class."""
    assert classify_status(status) is expected
    assert type(error_for_status(status, body_text="<html>oops</html>")) is expected


def test_status_only_errors_are_retryable_exactly_when_transient() -> None:
    """408/429/5xx/504 are worth retrying; 4xx client errors are not."""
    retryable = {
        status
        for status in (400, 401, 402, 403, 404, 408, 429, 500, 502, 503, 504)
        if error_for_status(status).retryable
    }
    assert retryable == {408, 429, 500, 502, 503, 504}


def test_rate_limited_is_a_kind_of_transient_and_everything_is_an_atelier_error() -> None:
    """The tree: rate-limited is transient; every class is a RunwareError and an AtelierError."""
    assert issubclass(RunwareRateLimitedError, RunwareTransientError)
    assert issubclass(RunwareDuplicateTaskError, RunwareInvalidRequestError)
    for cls in (
        RunwareAuthError,
        RunwareCreditsError,
        RunwareInvalidRequestError,
        RunwareContentRefusedError,
        RunwareRateLimitedError,
        RunwareTransientError,
        RunwareTimeoutError,
        RunwareServerError,
        RunwareTaskNotFoundError,
    ):
        assert issubclass(cls, RunwareError)
        assert issubclass(cls, AtelierError)
        assert cls("detail").user_message.endswith(".")


def test_wire_error_keeps_code_message_parameter_task_and_status() -> None:
    """All fields of the wire object reach the exception, including a list parameter."""
    error = error_from_wire(
        {
            "code": "invalidDimensions",
            "message": "1024x2048 is not supported",
            "parameter": ["width", "height"],
            "taskType": "imageInference",
            "taskUUID": "t-1",
        },
        status=400,
    )
    assert isinstance(error, RunwareInvalidRequestError)
    assert (error.code, error.message, error.parameter, error.task_uuid, error.status) == (
        "invalidDimensions",
        "1024x2048 is not supported",
        ["width", "height"],
        "t-1",
        400,
    )
    assert error.user_message == (
        "Runware rejected the request: 1024x2048 is not supported (field: width, height). Nothing was charged."
    )


def test_code_beats_status_when_both_say_something() -> None:
    """A content-policy code in a 400 body is a refusal, not a generic invalid request."""
    [error] = errors_from_body({"errors": [{"code": "contentPolicyViolation", "message": "no"}]}, status=400)
    assert isinstance(error, RunwareContentRefusedError)
    assert error.user_message == "Runware refused this request under its content policy. Nothing was charged."


def test_unknown_code_falls_back_to_status() -> None:
    """An unrecognised code in a 402 body is still the credits error."""
    [error] = errors_from_body({"errors": [{"code": "walletEmpty", "message": "m"}]}, status=402)
    assert isinstance(error, RunwareCreditsError)
    assert "bot owner's Runware account is out of credits" in error.user_message


ERROR = {"code": "invalidParameter", "message": "bad width", "parameter": "width"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"errors": [{**ERROR, "taskUUID": "t-1"}]}, id="errors-list"),
        pytest.param({"error": {**ERROR, "taskUUID": "t-1"}}, id="error-object"),
        pytest.param([{**ERROR, "taskUUID": "t-1"}], id="bare-list"),
        pytest.param({"error": ERROR, "taskUUID": "t-1", "taskType": "imageInference"}, id="error-beside-task"),
        pytest.param(
            {"data": [{"taskType": "imageInference", "taskUUID": "t-1", "status": "error", "error": ERROR}]},
            id="getResponse-item",
        ),
    ],
)
def test_every_envelope_form_yields_the_same_error(body: Any) -> None:
    """All five envelope shapes give one invalid-request error with its parameter and task UUID."""
    [error] = errors_from_body(body, status=400)
    assert isinstance(error, RunwareInvalidRequestError)
    assert (error.code, error.message, error.parameter, error.task_uuid) == (
        "invalidParameter",
        "bad width",
        "width",
        "t-1",
    )
    assert error.from_runware


def test_only_error_objects_with_a_code_count_as_runwares_own_answer() -> None:
    """An error read from Runware's envelope with a code is Runware's; one guessed from the HTTP status, or from an
    error object without a code (`{"error": "Not Found"}` from some other server), is not."""
    [coded] = errors_from_body({"errors": [{"code": "taskFailedOrNotFound", "message": "m"}]}, status=400)
    [text_only] = errors_from_body({"error": "Not Found"}, status=404)
    assert coded.from_runware
    assert not text_only.from_runware
    assert not error_for_status(404, body_text="<html>404</html>").from_runware
    assert not RunwareServerError("transport", code="connectionError").from_runware


def test_success_bodies_hold_no_errors() -> None:
    """Result items, processing markers and empty ACKs are not errors."""
    body = {"data": [{"taskUUID": "t", "imageUUID": "i", "imageURL": "u"}, {"taskUUID": "t", "status": "processing"}]}
    assert errors_from_body(body, status=200) == []
    assert errors_from_body({"data": []}, status=200) == []


def test_redact_removes_the_key_from_message_and_parameter() -> None:
    """A key echoed by the server never survives into the exception text."""
    error = error_from_wire(
        {"code": "invalidApiKey", "message": "key sk-secret-123 is wrong", "parameter": "sk-secret-123"}
    )
    error.redact("sk-secret-123")
    assert "sk-secret-123" not in str(error)
    assert "sk-secret-123" not in error.message
    assert "sk-secret-123" not in error.user_message
