"""The fake's documented errors over raw HTTP, and the client's reading of them and of `costUsd`."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from bot.runbase.errors import (
    RunbaseAuthError,
    RunbaseBalanceError,
    RunbaseInvalidRequestError,
    RunbaseKeyLimitError,
    RunbaseRateLimitedError,
    RunbaseRunNotFoundError,
    RunbaseServerError,
    error_from_body,
)
from bot.runbase.models import Run
from fakes.runbase import ERRORS, FakeRunbase


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, {"model": "openai/gpt-image-1", "input": {"prompt": "x"}}, 401, "missing_api_key"),
        (
            {"Authorization": "Bearer sk-nope"},
            {"model": "openai/gpt-image-1", "input": {"prompt": "x"}},
            401,
            "invalid_api_key",
        ),
        (None, "not json", 400, "invalid_json"),
        (None, {"input": {"prompt": "x"}}, 400, "missing_model"),
        (None, {"model": "openai/gpt-image-9"}, 400, "model_not_found"),
        (None, {"model": "openai/gpt-image-1"}, 400, "missing_input"),
        (None, {"model": "openai/gpt-image-1", "input": {"prompt": "x", "n": 2}}, 400, "invalid_input"),
        (None, {"model": "openai/gpt-image-1", "input": {"prompt": ""}}, 400, "invalid_input"),
        (None, {"model": "openai/gpt-image-2", "input": {"prompt": "x", "resolution": "8K"}}, 400, "invalid_input"),
        (None, {"model": "openai/gpt-image-1", "input": {"prompt": "x", "aspect_ratio": "16:9"}}, 400, "invalid_input"),
    ],
)
async def test_the_fake_answers_each_documented_error(
    fake_runbase: FakeRunbase, headers: dict[str, str] | None, body: Any, status: int, code: str
) -> None:
    sent = {"Authorization": f"Bearer {fake_runbase.api_key}"} if headers is None else headers
    async with aiohttp.ClientSession() as http:
        data = body if isinstance(body, str) else None
        async with http.post(
            f"{fake_runbase.url}/runs", headers=sent, data=data, json=None if data else body
        ) as answer:
            payload = await answer.json()
            assert answer.status == status == ERRORS[code][0]
    assert payload["error"]["code"] == code and payload["error"]["message"]
    assert fake_runbase.total_charged_micros == 0 and not fake_runbase.runs


async def test_an_unknown_run_is_run_not_found(fake_runbase: FakeRunbase) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {fake_runbase.api_key}"}
        async with http.get(f"{fake_runbase.url}/runs/run_nope", headers=headers) as answer:
            assert answer.status == 404 and (await answer.json())["error"]["code"] == "run_not_found"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("invalid_input", RunbaseInvalidRequestError),
        ("missing_api_key", RunbaseAuthError),
        ("invalid_api_key", RunbaseAuthError),
        ("insufficient_balance", RunbaseBalanceError),
        ("api_key_spend_limit_exceeded", RunbaseKeyLimitError),
        ("ip_not_allowed", RunbaseKeyLimitError),
        ("run_not_found", RunbaseRunNotFoundError),
        ("RATE_LIMITED", RunbaseRateLimitedError),
        ("USAGE_EXCEEDED", RunbaseKeyLimitError),
    ],
)
def test_every_documented_code_has_its_class(code: str, error: type) -> None:
    status = ERRORS[code][0]
    built = error_from_body({"error": {"message": "m", "code": code}}, status)
    assert type(built) is error and built.status == status and built.from_runware


def test_a_500_without_a_code_is_a_server_error() -> None:
    built = error_from_body({"error": {"message": "Internal server error."}}, 500)
    assert isinstance(built, RunbaseServerError) and built.retryable


@pytest.mark.parametrize(("wire", "micros"), [(50_000, 50_000), (120000.0, 120_000), ("70000", 70_000), (0, 0)])
def test_cost_usd_is_read_as_exact_micro_dollars(wire: object, micros: int) -> None:
    assert Run.model_validate({"id": "run_1", "status": "succeeded", "costUsd": wire}).cost_micros == micros


@pytest.mark.parametrize("wire", [0.05, "0.05", -1, True])
def test_a_cost_that_is_not_whole_micro_dollars_is_refused(wire: object) -> None:
    with pytest.raises(ValidationError):
        Run.model_validate({"id": "run_1", "status": "pending", "costUsd": wire})


def test_a_failed_run_counts_as_nothing() -> None:
    run = Run.model_validate({"id": "run_1", "status": "failed", "costUsd": 50_000, "error": "boom"})
    assert run.done and not run.succeeded and run.charged_micros == 0
