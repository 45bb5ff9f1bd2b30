"""The Runbase client against the fake Runbase over real sockets: runs, costs, images, errors, never paying twice."""

from __future__ import annotations

import io
import logging

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.jobs.concurrency import AdaptiveLimit
from bot.runbase.client import RunbaseClient
from bot.runbase.errors import (
    RunbaseAuthError,
    RunbaseBalanceError,
    RunbaseContentRefusedError,
    RunbaseError,
    RunbaseInvalidRequestError,
    RunbaseKeyCheckError,
    RunbaseKeyLimitError,
    RunbaseOutcomeUnknownError,
    RunbaseRateLimitedError,
    RunbaseRunFailedError,
    RunbaseRunNotFoundError,
)
from bot.runbase.models import CreateRun, RunInput
from bot.runware.errors import (
    RunwareAuthError,
    RunwareCreditsError,
    RunwareInvalidRequestError,
    RunwareRateLimitedError,
)
from fakes.runbase import FakeRunbase, Fault, pixel_size
from tests.local_server import serve
from tests.runbase.conftest import make_client

GPT1 = CreateRun(model="openai/gpt-image-1", input=RunInput(prompt="a red fox in the snow", aspect_ratio="3:2"))


def gpt2(resolution: str, aspect_ratio: str = "16:9") -> CreateRun:
    return CreateRun(
        model="openai/gpt-image-2",
        input=RunInput(prompt="a lighthouse at dusk", aspect_ratio=aspect_ratio, resolution=resolution),
    )


def png(size: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue() + b"\0" * size


async def test_a_run_is_created_polled_and_downloaded_with_its_exact_cost(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake_runbase)
    run = await client.generate(GPT1)
    assert run.succeeded and run.cost_micros == 50_000 == run.charged_micros
    assert fake_runbase.total_charged_micros == 50_000 and len(fake_runbase.creates) == 1
    data = await client.download(run.urls[0], run_id=run.id)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (1536, 1024)
    sent = fake_runbase.creates[0].json
    assert sent == {"model": "openai/gpt-image-1", "input": {"prompt": "a red fox in the snow", "aspect_ratio": "3:2"}}


@pytest.mark.parametrize(("resolution", "price"), [("1K", 50_000), ("2K", 70_000), ("4K", 120_000)])
async def test_gpt_image_2_resolutions_give_their_size_and_price(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession, resolution: str, price: int
) -> None:
    client = make_client(session, fake_runbase)
    run = await client.generate(gpt2(resolution))
    assert run.cost_micros == price == fake_runbase.total_charged_micros
    width, height = pixel_size("openai/gpt-image-2", "16:9", resolution)
    assert width == {"1K": 1024, "2K": 2048, "4K": 3840}[resolution] and abs(width / height - 16 / 9) < 0.02
    with Image.open(io.BytesIO(await client.download(run.urls[0]))) as image:
        assert image.size == (width, height)


async def test_quality_prices_of_gpt_image_1_5(fake_runbase: FakeRunbase, session: aiohttp.ClientSession) -> None:
    client = make_client(session, fake_runbase)
    request = CreateRun(model="openai/gpt-image-1.5", input=RunInput(prompt="x", quality="high"))
    run = await client.create(request)
    assert run.cost_micros == 160_000 and run.status == "pending"


async def test_an_unknown_input_key_is_invalid_input_and_costs_nothing(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake_runbase)
    request = CreateRun(model="openai/gpt-image-1", input=RunInput(prompt="x", quality="high"))
    with pytest.raises(RunbaseInvalidRequestError) as caught:
        await client.create(request)
    assert caught.value.code == "invalid_input" and caught.value.status == 400 and caught.value.not_created
    assert "quality" in caught.value.message
    assert isinstance(caught.value, RunwareInvalidRequestError)
    assert fake_runbase.total_charged_micros == 0 and len(fake_runbase.creates) == 1


@pytest.mark.parametrize(
    ("setup", "error", "code", "runware_kind"),
    [
        (
            lambda fake: setattr(fake, "balance_micros", 10_000),
            RunbaseBalanceError,
            "insufficient_balance",
            RunwareCreditsError,
        ),
        (
            lambda fake: fake.add_key(fake.api_key, spend_limit_micros=40_000),
            RunbaseKeyLimitError,
            "api_key_spend_limit_exceeded",
            None,
        ),
        (
            lambda fake: fake.add_key(fake.api_key, allowed_ips={"10.9.8.7"}),
            RunbaseKeyLimitError,
            "ip_not_allowed",
            None,
        ),
        (lambda fake: fake.add_key(fake.api_key, usage_limit=0), RunbaseKeyLimitError, "USAGE_EXCEEDED", None),
        (lambda fake: fake.add_key(fake.api_key, disabled=True), RunbaseAuthError, "invalid_api_key", RunwareAuthError),
    ],
)
async def test_each_refusal_maps_to_its_error_and_is_not_retried(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession, setup, error, code, runware_kind
) -> None:
    setup(fake_runbase)
    client = make_client(session, fake_runbase)
    with pytest.raises(error) as caught:
        await client.create(GPT1)
    assert caught.value.code == code and caught.value.not_created and not caught.value.retryable
    assert runware_kind is None or isinstance(caught.value, runware_kind)
    assert len(fake_runbase.creates) == 1 and fake_runbase.total_charged_micros == 0
    assert "Nothing was charged" in caught.value.user_message


async def test_user_messages_say_what_the_owner_must_do(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    fake_runbase.balance_micros = 0
    with pytest.raises(RunbaseBalanceError) as empty:
        await make_client(session, fake_runbase).create(GPT1)
    assert "owner's Runbase balance is too low" in empty.value.user_message
    fake_runbase.balance_micros = None
    fake_runbase.add_key(fake_runbase.api_key, spend_limit_micros=0)
    with pytest.raises(RunbaseKeyLimitError) as limited:
        await make_client(session, fake_runbase).create(GPT1)
    assert "spend limit" in limited.value.user_message and "lift" in limited.value.user_message


async def test_usage_exceeded_is_not_a_transient_rate_limit(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    fake_runbase.fail_next(Fault.ERROR, code="USAGE_EXCEEDED")
    with pytest.raises(RunbaseKeyLimitError) as caught:
        await make_client(session, fake_runbase).create(GPT1)
    assert caught.value.status == 429 and not isinstance(caught.value, RunwareRateLimitedError)
    assert len(fake_runbase.creates) == 1


async def test_a_rate_limited_create_is_sent_again_after_a_backoff(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    fake_runbase.fail_next(Fault.ERROR, code="RATE_LIMITED", endpoint="create", times=2)
    run = await make_client(session, fake_runbase).create(GPT1)
    assert [request.code for request in fake_runbase.creates] == ["RATE_LIMITED", "RATE_LIMITED", None]
    assert len(fake_runbase.runs) == 1 and fake_runbase.total_charged_micros == run.cost_micros


async def test_a_rate_limited_error_is_transient(fake_runbase: FakeRunbase, session: aiohttp.ClientSession) -> None:
    fake_runbase.fail_next(Fault.ERROR, code="RATE_LIMITED", endpoint="create", times=10)
    with pytest.raises(RunbaseRateLimitedError) as caught:
        await make_client(session, fake_runbase).create(GPT1)
    assert isinstance(caught.value, RunwareRateLimitedError) and caught.value.retryable and caught.value.not_created


@pytest.mark.parametrize("fault", [Fault.DROP_AFTER_CREATE, Fault.MALFORMED_JSON, Fault.SLOW_AFTER_CREATE])
async def test_a_create_whose_answer_is_lost_is_never_sent_again(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    fake_runbase.fail_next(fault, delay=4.0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RunbaseOutcomeUnknownError) as caught:
        await make_client(session, fake_runbase).create(GPT1)
    assert len(fake_runbase.creates) == 1 and len(fake_runbase.runs) == 1
    assert fake_runbase.total_charged_micros == 50_000  # the owner did pay for the run the client never heard of
    assert not caught.value.not_created and "may have been charged" in caught.value.user_message
    assert fake_runbase.api_key not in caplog.text


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.BAD_GATEWAY])
async def test_a_create_answered_with_a_server_error_is_outcome_unknown(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession, fault: Fault
) -> None:
    fake_runbase.fail_next(fault, endpoint="create")
    with pytest.raises(RunbaseOutcomeUnknownError):
        await make_client(session, fake_runbase).create(GPT1)
    assert len(fake_runbase.creates) == 1


async def test_a_refused_connection_is_retried_because_nothing_was_sent(session: aiohttp.ClientSession) -> None:
    async with FakeRunbase() as fake:
        url = fake.url
    client = RunbaseClient(session, api_key="sk-x", api_url=url)
    client._options = type(client._options)(max_retries=1, retry_base_delay=0.01)
    with pytest.raises(RunbaseError) as caught:
        await client.create(GPT1)
    assert caught.value.not_created and caught.value.code == "connectionRefused"


async def test_a_failed_run_is_refunded_and_raises_its_reason(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, fake_runbase)
    fake_runbase.fail_next(Fault.FAIL_RUN, code="generation_failed", message="The provider timed out.")
    with pytest.raises(RunbaseRunFailedError) as caught:
        await client.generate(GPT1)
    assert "provider timed out" in caught.value.user_message and caught.value.run_id
    fake_runbase.fail_next(Fault.FAIL_RUN_TEXT, message="Blocked by the content policy.")
    with pytest.raises(RunbaseContentRefusedError):
        await client.generate(GPT1)
    assert fake_runbase.total_charged_micros == 0 and len(fake_runbase.refunds) == 2
    last = await client.get_run(caught.value.run_id or "")
    assert last.status == "failed" and last.charged_micros == 0


async def test_polls_survive_transient_failures(fake_runbase: FakeRunbase, session: aiohttp.ClientSession) -> None:
    fake_runbase.fail_next(Fault.SERVER_ERROR, endpoint="poll", times=2)
    run = await make_client(session, fake_runbase).generate(GPT1)
    assert run.succeeded and len(fake_runbase.creates) == 1


async def test_a_run_of_another_key_is_not_found(fake_runbase: FakeRunbase, session: aiohttp.ClientSession) -> None:
    run = await make_client(session, fake_runbase).create(GPT1)
    fake_runbase.add_key("sk-other")
    with pytest.raises(RunbaseRunNotFoundError) as caught:
        await make_client(session, fake_runbase, key="sk-other").get_run(run.id)
    assert caught.value.code == "run_not_found" and caught.value.status == 404


async def test_the_key_check_spends_nothing_and_names_bad_keys(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    await make_client(session, fake_runbase).verify_key()
    assert fake_runbase.total_charged_micros == 0 and not fake_runbase.creates
    assert fake_runbase.polls[0].code == "run_not_found"
    with pytest.raises(RunbaseAuthError) as bad:
        await make_client(session, fake_runbase, key="sk-wrong").verify_key()
    assert "RUNBASE_API_KEY" in bad.value.user_message
    fake_runbase.add_key("sk-far", allowed_ips={"192.0.2.1"})
    with pytest.raises(RunbaseKeyLimitError, match="ip_not_allowed"):
        await make_client(session, fake_runbase, key="sk-far").verify_key()


async def test_the_key_check_refuses_a_url_that_is_not_runbase(session: aiohttp.ClientSession) -> None:
    async def not_runbase(_: web.Request) -> web.Response:
        return web.Response(status=404, text="<html>nope</html>")

    app = web.Application()
    app.router.add_get("/api/v1/runs/{run_id}", not_runbase)
    async with serve(app) as base:
        client = RunbaseClient(session, api_key="sk-x", api_url=f"{base}/api/v1")
        with pytest.raises(RunbaseKeyCheckError, match="RUNBASE_API_URL"):
            await client.verify_key()


async def test_references_are_fetched_within_the_limits(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    async def small(_: web.Request) -> web.Response:
        return web.Response(body=png(), content_type="image/png")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=png(4 * 1024 * 1024), content_type="image/png")

    app = web.Application()
    app.router.add_get("/small.png", small)
    app.router.add_get("/big.png", big)
    async with serve(app) as base:
        client = make_client(session, fake_runbase)

        def request(*names: str, model: str = "openai/gpt-image-2") -> CreateRun:
            urls = tuple(f"{base}/{name}" for name in names)
            return CreateRun(model=model, input=RunInput(prompt="edit", image_urls=urls))

        run = await client.create(request("small.png", "small.png"))
        assert run.cost_micros == 50_000 and fake_runbase.reference_fetches == [f"{base}/small.png"] * 2
        with pytest.raises(RunbaseInvalidRequestError, match="larger than 4 MB"):
            await client.create(request("big.png"))
        with pytest.raises(RunbaseInvalidRequestError, match="At most 4"):
            await client.create(request(*["small.png"] * 5))
        await client.create(request(*["small.png"] * 5, model="openai/gpt-image-1"))
        with pytest.raises(RunbaseInvalidRequestError, match="could not be fetched"):
            await client.create(request("missing.png"))
    assert len(fake_runbase.runs) == 2


async def test_the_key_never_reaches_a_log_or_an_error(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_runbase.fail_next(Fault.ERROR, code="invalid_input", message=f"bad key {fake_runbase.api_key} echoed")
    with pytest.raises(RunbaseInvalidRequestError) as caught:
        await make_client(session, fake_runbase).create(GPT1)
    assert fake_runbase.api_key not in str(caught.value) and fake_runbase.api_key not in caught.value.user_message
    assert fake_runbase.api_key not in caplog.text


async def test_creates_tell_the_adaptive_limit_how_runbase_copes(
    fake_runbase: FakeRunbase, session: aiohttp.ClientSession
) -> None:
    """A 429 RATE_LIMITED halves the Runbase lane's limit; a 429 USAGE_EXCEEDED (a key quota) does not."""
    now = [0.0]
    limit = AdaptiveLimit(minimum=1, maximum=8, name="Runbase", clock=lambda: now[0])
    client = make_client(session, fake_runbase, load=limit)
    fake_runbase.fail_next(Fault.ERROR, code="RATE_LIMITED", endpoint="create", times=1)
    await client.create(GPT1)
    assert limit.decreases == 1 and limit.current == 5  # 8 -> 4 on the 429, then + 1 for the steady answer
    assert limit.steady_latency is not None and 0 <= limit.steady_latency < 2.0  # the successful retry's latency
    now[0] += 10.0  # past the cooldown
    fake_runbase.fail_next(Fault.ERROR, code="USAGE_EXCEEDED", endpoint="create")
    with pytest.raises(RunbaseKeyLimitError):
        await client.create(GPT1)
    assert limit.current == 5 and limit.decreases == 1


async def test_a_503_on_create_lowers_the_limit_and_is_outcome_unknown(session: aiohttp.ClientSession) -> None:
    async def unavailable(_: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "Service unavailable."}}, status=503)

    app = web.Application()
    app.router.add_post("/api/v1/runs", unavailable)
    limit = AdaptiveLimit(minimum=2, maximum=6, name="Runbase")
    async with serve(app) as base:
        client = RunbaseClient(session, api_key="sk-x", api_url=f"{base}/api/v1", load=limit)
        with pytest.raises(RunbaseOutcomeUnknownError):
            await client.create(GPT1)
    assert limit.current == 3 and limit.decreases == 1
