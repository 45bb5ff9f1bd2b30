"""The Runware client over real HTTP against the fake server: results, polling, errors, retries, no double billing."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging

import aiohttp
import pytest
from aiohttp import web
from PIL import Image

from bot.catalog import ModelName
from bot.images import decode_image
from bot.runware.client import PollState, RunwareClient, Sleep
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
from bot.runware.models import ImageInferenceRequest, ImageResult
from bot.settings import RunwareConfig
from fakes.runware import FakeRunware, Fault
from tests.local_server import serve


def small_png() -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


MINI = ImageInferenceRequest(model="gpt-image-1-mini", prompt="a red fox in the snow", quality="medium")
"""Mini, medium, square: $0.011 per image in the price table."""


def make_client(
    session: aiohttp.ClientSession,
    fake: FakeRunware,
    config: RunwareConfig,
    *,
    api_key: str,
    api_url: str | None = None,
    sleep: Sleep = asyncio.sleep,
    late_probes: int | None = None,
    retry_base_delay: float = 0.005,
    retry_max_delay: float = 0.02,
) -> RunwareClient:
    """A client for `fake` (or for `api_url`, when `fake` is closed) with millisecond backoffs unless told otherwise;
    `late_probes` None keeps the client's own number."""
    return RunwareClient(
        session,
        api_key=api_key,
        api_url=fake.url if api_url is None else api_url,
        config=config,
        sleep=sleep,
        retry_base_delay=retry_base_delay,
        retry_max_delay=retry_max_delay,
        **({} if late_probes is None else {"late_probes": late_probes}),
    )


# ------------------------------------------------------------------------------------------------ success


async def test_generate_returns_the_images_and_the_cost_in_micro_dollars(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """One async submission, polled to completion: one image, $0.011 as 11,000 micro-dollars, one paid task."""
    result = await client.generate(MINI)

    assert len(result.images) == 1
    assert result.cost_micros == 11_000
    assert result.images[0].cost_micros == 11_000
    assert result.images[0].task_uuid == result.task_uuid
    assert fake_runware.paid_tasks == [result.task_uuid]
    [sent] = fake_runware.tasks_submitted("imageInference")
    assert sent["includeCost"] is True
    assert sent["deliveryMethod"] == "async"
    assert sent["taskUUID"] == result.task_uuid


async def test_downloaded_result_is_a_decodable_image_of_the_requested_size(client: RunwareClient) -> None:
    """The image URL is fetched with the same session and decodes as a 1536x1024 WEBP."""
    request = ImageInferenceRequest(model="gpt-image-1", prompt="a harbour", size="1536x1024", format="webp")
    result = await client.generate(request)

    decoded = decode_image(await client.download(result.images[0]))
    assert (decoded.format, decoded.width, decoded.height) == ("WEBP", 1536, 1024)


async def test_base64_results_are_decoded_without_a_download(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """With outputType base64Data the bytes come inline and nothing is downloaded."""
    request = ImageInferenceRequest(model="gpt-image-1-mini", prompt="a kite", output_type="base64Data")
    result = await client.generate(request)

    assert decode_image(await client.download(result.images[0])).format == "PNG"
    assert fake_runware.downloads == []


async def test_caller_chosen_task_uuid_is_used(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """A job that stored its task UUID first gets exactly that UUID on the wire."""
    task_uuid = client.new_task_uuid()
    result = await client.generate(MINI, task_uuid=task_uuid)
    assert result.task_uuid == task_uuid
    assert fake_runware.submissions_of(task_uuid) == 1


async def test_polling_accumulates_partial_results_deduplicated_by_image_uuid(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """Images finish one by one; polls repeat earlier ones; the task yields each image exactly once."""
    fake_runware.latency = 0.3
    request = ImageInferenceRequest(model="gpt-image-1-mini", prompt="three foxes", quality="medium", count=3)
    task_uuid = client.new_task_uuid()
    assert await client.submit(request, task_uuid) == []

    states: list[PollState] = []
    while not states or not states[-1].done:
        states.append(await client.poll(task_uuid, 3))
        await asyncio.sleep(0.02)
    partial = [state for state in states if 0 < len(state.images) < 3]
    assert partial, "no poll saw a partial result"
    assert all(not state.done and state.pending for state in partial)
    for earlier, later in itertools.pairwise(states):
        assert {image.image_uuid for image in earlier.images} <= {image.image_uuid for image in later.images}

    images = await client.wait(task_uuid, 3)
    assert len(images) == 3
    assert len({image.image_uuid for image in images}) == 3
    assert sum(image.cost_micros or 0 for image in images) == 33_000


async def test_wait_deduplicates_repeated_items_across_polls(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """`generate` over several cumulative polls returns each image once and the summed cost."""
    fake_runware.latency = 0.2
    result = await client.generate(
        ImageInferenceRequest(model="gpt-image-1-mini", prompt="foxes", quality="medium", count=4)
    )

    assert len(fake_runware.tasks_submitted("getResponse")) > 2
    assert len({image.image_uuid for image in result.images}) == 4 == len(result.images)
    assert result.cost_micros == 44_000


async def test_upload_image_sends_a_data_uri_and_returns_a_reusable_uuid(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """An uploaded reference comes back as a UUID that an inference task can then use."""
    png = small_png()
    uploaded = await client.upload_image(png, "image/png")

    [sent] = fake_runware.tasks_submitted("imageUpload")
    assert sent["image"].startswith("data:image/png;base64,")
    assert fake_runware.image(uploaded.image_uuid) is not None
    request = ImageInferenceRequest(
        model="gpt-image-1-mini", prompt="like this", reference_images=[uploaded.image_uuid]
    )
    result = await client.generate(request)
    assert len(result.images) == 1
    [inference] = fake_runware.tasks_submitted("imageInference")
    assert inference["inputs"] == {"referenceImages": [uploaded.image_uuid]}


async def test_verify_key_accepts_a_good_key_without_spending(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """The key check submits no generation and bills nothing."""
    await client.verify_key()
    assert fake_runware.tasks_submitted("imageInference") == []
    assert fake_runware.paid_tasks == []


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        pytest.param(None, None, None, id="taskFailedOrNotFound"),
        pytest.param(Fault.ERROR_ENVELOPE_SINGULAR, 404, "taskNotFound", id="404-taskNotFound"),
        pytest.param(Fault.ERROR_ENVELOPE_BARE_LIST, 400, "taskCancelled", id="400-taskCancelled"),
        pytest.param(Fault.ERROR_ENVELOPE_SINGULAR, 410, "taskExpired", id="410-taskExpired"),
    ],
)
async def test_verify_key_takes_runwares_task_not_found_answer_as_a_working_key(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault | None, status: int | None, code: str | None
) -> None:
    """Runware can only say a task is not there once it accepted the key, so each of its not-found codes that names
    a task, in any of its error envelopes, means the key works. Asked once, nothing spent."""
    if fault is not None:
        fake_runware.fail_next(fault, task_type="getResponse", status=status, code=code)
    await client.verify_key()
    assert len(fake_runware.requests) == 1
    assert fake_runware.tasks_submitted("imageInference") == []


def key_check_app(status: int, body: str, content_type: str, seen: list[object]) -> web.Application:
    """A stand-in for whatever RUNWARE_API_URL points at: every POST gets the same answer ({uuid} is the asked one)."""

    async def answer(request: web.Request) -> web.Response:
        tasks = await request.json() if request.content_type == "application/json" else None
        seen.append(tasks)
        asked = tasks[0].get("taskUUID", "") if isinstance(tasks, list) and tasks else ""
        return web.Response(status=status, text=body.replace("{uuid}", asked), content_type=content_type)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


async def test_verify_key_takes_a_successful_runware_answer_as_a_working_key(
    session: aiohttp.ClientSession, runware_key: str, runware_config: RunwareConfig
) -> None:
    """A `data` answer (Runware accepted the request) means the key works; the question was a getResponse."""
    seen: list[object] = []
    async with serve(key_check_app(200, '{"data": []}', "application/json", seen)) as base:
        client = RunwareClient(session, api_key=runware_key, api_url=f"{base}/v1", config=runware_config)
        await client.verify_key()
    [tasks] = seen
    assert isinstance(tasks, list) and [task["taskType"] for task in tasks] == ["getResponse"]


NGINX_404 = "<html><head><title>404 Not Found</title></head><body><center><h1>404 Not Found</h1></center></body></html>"


def runware_error(code: str, **fields: str) -> str:
    """A Runware `errors` envelope with one error object about the asked task."""
    error = {"code": code, "message": f"Simulated {code}.", "taskType": "getResponse", "taskUUID": "{uuid}"} | fields
    return json.dumps({"errors": [error]})


@pytest.mark.parametrize(
    ("status", "body", "content_type", "names"),
    [
        pytest.param(404, NGINX_404, "text/html", ["RUNWARE_API_URL"], id="404-html"),
        pytest.param(405, "405: Method Not Allowed", "text/plain", ["RUNWARE_API_URL"], id="405-text"),
        pytest.param(404, '{"detail": "Not Found"}', "application/json", ["RUNWARE_API_URL"], id="404-other-json"),
        pytest.param(404, '{"error": "Not Found"}', "application/json", ["RUNWARE_API_URL"], id="404-error-text"),
        pytest.param(200, "<html><body>Welcome</body></html>", "text/html", ["RUNWARE_API_URL"], id="200-html"),
        pytest.param(200, '{"ok": true}', "application/json", ["RUNWARE_API_URL"], id="200-other-json"),
        pytest.param(
            401,
            "<html>401 Authorization Required</html>",
            "text/html",
            ["RUNWARE_API_URL", "RUNWARE_API_KEY"],
            id="401-html",
        ),
        pytest.param(
            404,
            runware_error("invalidParameter"),
            "application/json",
            ["RUNWARE_API_KEY", "RUNWARE_API_URL"],
            id="404-invalidParameter",
        ),
        pytest.param(
            400,
            runware_error("invalidParameter", parameter="taskUUID"),
            "application/json",
            ["RUNWARE_API_KEY", "RUNWARE_API_URL"],
            id="400-invalidParameter-on-taskUUID",
        ),
        pytest.param(
            400,
            runware_error("invalidTaskUUID", parameter="taskUUID"),
            "application/json",
            ["RUNWARE_API_KEY", "RUNWARE_API_URL"],
            id="400-invalidTaskUUID",
        ),
        pytest.param(
            404,
            runware_error("unknownModel"),
            "application/json",
            ["RUNWARE_API_KEY", "RUNWARE_API_URL"],
            id="404-unknownModel",
        ),
        pytest.param(
            404,
            runware_error("taskNotFound", taskUUID="00000000-0000-4000-8000-000000000000"),
            "application/json",
            ["RUNWARE_API_KEY", "RUNWARE_API_URL"],
            id="404-taskNotFound-of-another-task",
        ),
    ],
)
async def test_verify_key_refuses_answers_that_do_not_show_the_key_works(
    session: aiohttp.ClientSession,
    runware_key: str,
    runware_config: RunwareConfig,
    status: int,
    body: str,
    content_type: str,
    names: list[str],
) -> None:
    """A page that is not Runware's (a typo in RUNWARE_API_URL), or a Runware error other than "this task does not
    exist", fails the key check with one line naming the settings to look at, and never shows the key."""
    seen: list[object] = []
    async with serve(key_check_app(status, body, content_type, seen)) as base:
        url = f"{base}/v1"
        client = RunwareClient(session, api_key=runware_key, api_url=url, config=runware_config, retry_base_delay=0.001)
        with pytest.raises(RunwareKeyCheckError) as caught:
            await client.verify_key()
    line = caught.value.user_message
    assert "\n" not in line and url in line
    for name in names:
        assert name in line, line
    assert runware_key not in line and runware_key not in str(caught.value)
    # A 2xx that is not Runware's JSON is taken for a garbled answer and asked again (the client's retry policy).
    assert len(seen) == (runware_config.max_retries + 1 if status < 300 else 1)


async def test_verify_key_names_the_url_when_nothing_answers(
    session: aiohttp.ClientSession, runware_key: str, runware_config: RunwareConfig
) -> None:
    """A closed port (after the retries) fails the key check with a line naming RUNWARE_API_URL."""
    fake = FakeRunware()
    await fake.start()
    url = fake.url
    await fake.close()
    client = RunwareClient(session, api_key=runware_key, api_url=url, config=runware_config, retry_base_delay=0.001)
    with pytest.raises(RunwareKeyCheckError) as caught:
        await client.verify_key()
    assert "RUNWARE_API_URL" in caught.value.user_message and url in caught.value.user_message
    assert isinstance(caught.value.__cause__, RunwareTransientError)


@pytest.mark.parametrize(
    ("fault", "times", "expected"),
    [
        pytest.param(Fault.UNAUTHORIZED, 1, RunwareAuthError, id="401"),
        pytest.param(Fault.INSUFFICIENT_CREDITS, 1, RunwareCreditsError, id="402"),
        pytest.param(Fault.SERVER_ERROR, 4, RunwareServerError, id="500"),
        pytest.param(Fault.UNAVAILABLE, 4, RunwareTransientError, id="503"),
        pytest.param(Fault.RATE_LIMITED, 4, RunwareRateLimitedError, id="429"),
    ],
)
async def test_verify_key_reports_auth_credit_server_and_transient_failures(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault, times: int, expected: type[RunwareError]
) -> None:
    """A rejected key, an empty account, or a Runware that cannot answer (after the retries) is raised."""
    fake_runware.fail_next(fault, times=times, task_type="getResponse")
    with pytest.raises(expected):
        await client.verify_key()
    assert len(fake_runware.requests) == times


# ------------------------------------------------------------------------------------------------ errors


async def test_wrong_key_raises_auth_error_without_retrying_or_leaking_the_key(
    session: aiohttp.ClientSession,
    fake_runware: FakeRunware,
    runware_config: RunwareConfig,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """401 is final: one request, RunwareAuthError, and the key appears in no message or log line."""
    caplog.set_level(logging.DEBUG)
    secret = "sk-wrong-key-0123456789"
    client = make_client(session, fake_runware, runware_config, api_key=secret)

    with pytest.raises(RunwareAuthError) as caught:
        await client.generate(MINI)
    with pytest.raises(RunwareAuthError):
        await client.verify_key()

    assert len(fake_runware.requests) == 2
    assert caught.value.status == 401
    assert caught.value.code == "invalidApiKey"
    assert "RUNWARE_API_KEY" in caught.value.user_message
    for text in (str(caught.value), caught.value.user_message, repr(client), caplog.text):
        assert secret not in text


async def test_insufficient_credits_is_final_and_blames_the_owners_account(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """402 raises RunwareCreditsError at once, with a message about the owner's account."""
    fake_runware.fail_next(Fault.INSUFFICIENT_CREDITS)
    with pytest.raises(RunwareCreditsError) as caught:
        await client.generate(MINI)
    assert len(fake_runware.requests) == 1
    assert caught.value.code == "insufficientCredits"
    assert "bot owner's Runware account is out of credits" in caught.value.user_message


async def test_runware_validation_error_carries_the_parameter(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """A request Runware rejects (built past our checks) raises RunwareInvalidRequestError naming the field."""
    unchecked = ImageInferenceRequest.model_construct(model=ModelName.GPT_IMAGE_1_5, prompt="x")
    with pytest.raises(RunwareInvalidRequestError) as caught:
        await client.generate(unchecked)
    assert caught.value.parameter == "positivePrompt"
    assert caught.value.code == "invalidPositivePrompt"
    assert "positivePrompt" in caught.value.user_message
    assert len(fake_runware.requests) == 1


async def test_uploading_something_that_is_not_an_image_is_an_invalid_request(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """Runware's refusal of a non-image upload names the `image` parameter and is not retried."""
    with pytest.raises(RunwareInvalidRequestError) as caught:
        await client.upload_image(b"just some text", "image/png")
    assert caught.value.parameter == "image"
    assert len(fake_runware.requests) == 1


@pytest.mark.parametrize("as_envelope", [False, True], ids=["status-error-item", "errors-envelope"])
async def test_content_policy_refusal_is_reported_and_nothing_is_paid(
    client: RunwareClient, fake_runware: FakeRunware, as_envelope: bool
) -> None:
    """A refused task raises RunwareContentRefusedError (either way getResponse reports it); no task is billed."""
    fake_runware.task_errors_as_envelope = as_envelope
    fake_runware.fail_next(Fault.CONTENT_POLICY)
    with pytest.raises(RunwareContentRefusedError) as caught:
        await client.generate(MINI)
    assert caught.value.user_message == "Runware refused this request under its content policy. Nothing was charged."
    assert caught.value.code == "contentPolicyViolation"
    assert fake_runware.paid_tasks == []
    assert len(fake_runware.tasks_submitted("imageInference")) == 1


async def test_provider_timeout_inside_the_task_raises_timeout(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """A task that fails with `timeoutProvider` raises RunwareTimeoutError and is not resubmitted."""
    fake_runware.fail_next(Fault.TASK_TIMEOUT)
    with pytest.raises(RunwareTimeoutError) as caught:
        await client.generate(MINI)
    assert caught.value.code == "timeoutProvider"
    assert len(fake_runware.tasks_submitted("imageInference")) == 1


async def test_task_that_outlives_the_wait_budget_raises_timeout(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """`wait(timeout=...)` gives up with RunwareTimeoutError while the task is still processing."""
    fake_runware.latency = 30
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)
    with pytest.raises(RunwareTimeoutError) as caught:
        await client.wait(task_uuid, 1, timeout=0.1)
    assert caught.value.task_uuid == task_uuid
    assert "did not finish within 0.1s" in str(caught.value)


async def test_wait_timeout_holds_even_with_a_sleep_that_does_not_sleep(
    session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, runware_config: RunwareConfig
) -> None:
    """An injected no-op sleep (as in tests of callers) still ends the wait at the budget."""
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    fake_runware.latency = 30
    client = make_client(session, fake_runware, runware_config, api_key=runware_key, sleep=record)
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)
    with pytest.raises(RunwareTimeoutError):
        await client.wait(task_uuid, 1, timeout=1.0)
    assert sum(slept) == pytest.approx(1.0)
    assert max(slept) <= runware_config.poll_max_interval_seconds


@pytest.mark.parametrize(
    ("fault", "status", "code", "expected"),
    [
        (Fault.UNAUTHORIZED, None, None, RunwareAuthError),
        (Fault.UNAUTHORIZED, 403, "permissionDenied", RunwareAuthError),
        (Fault.INSUFFICIENT_CREDITS, None, None, RunwareCreditsError),
        (Fault.ERROR_ENVELOPE_SINGULAR, None, None, RunwareInvalidRequestError),
        (Fault.ERROR_ENVELOPE_BARE_LIST, None, None, RunwareInvalidRequestError),
        (Fault.ERROR_ENVELOPE_SINGULAR, 404, "gone", RunwareTaskNotFoundError),
        (Fault.ERROR_ENVELOPE_BARE_LIST, 402, "walletEmpty", RunwareCreditsError),
        (Fault.SERVER_ERROR, 408, "requestTimeout", RunwareTimeoutError),
        (Fault.SERVER_ERROR, 504, "queueWaitExceeded", RunwareTimeoutError),
        (Fault.RATE_LIMITED, None, None, RunwareRateLimitedError),
        (Fault.UNAVAILABLE, None, None, RunwareTransientError),
        (Fault.SERVER_ERROR, None, None, RunwareServerError),
        (Fault.SERVER_ERROR, 502, "badGateway", RunwareTransientError),
    ],
)
async def test_persistent_failures_surface_as_their_class(
    client: RunwareClient,
    fake_runware: FakeRunware,
    runware_config: RunwareConfig,
    fault: Fault,
    status: int | None,
    code: str | None,
    expected: type[RunwareError],
) -> None:
    """Each HTTP status and envelope form, failing every time, ends in its exception class and bills nothing."""
    fake_runware.fail_next(fault, times=50, status=status, code=code)
    with pytest.raises(RunwareError) as caught:
        await client.generate(MINI)
    assert type(caught.value) is expected
    assert caught.value.user_message
    assert fake_runware.paid_tasks == []
    # Bounded: every submission and every probe gives up after max_retries retries.
    attempts = runware_config.max_retries + 1
    assert len(fake_runware.requests) <= attempts * (1 + attempts)


@pytest.mark.parametrize("fault", [Fault.ERROR_ENVELOPE_SINGULAR, Fault.ERROR_ENVELOPE_BARE_LIST])
async def test_error_envelope_forms_keep_code_and_task_uuid(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault
) -> None:
    """`{"error": {...}}` and a bare list are parsed like `{"errors": [...]}`: code, message and task UUID survive."""
    fake_runware.fail_next(fault)
    task_uuid = client.new_task_uuid()
    with pytest.raises(RunwareInvalidRequestError) as caught:
        await client.submit(MINI, task_uuid)
    assert caught.value.code == "invalidParameter"
    assert caught.value.task_uuid == task_uuid
    assert caught.value.status == 400
    assert "Simulated error" in caught.value.message


# ------------------------------------------------------------------------------------------------ retries


async def test_rate_limited_submission_is_resubmitted_after_backoff(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """Two 429s (task not accepted) then success: three submissions of one UUID, one paid task."""
    fake_runware.fail_next(Fault.RATE_LIMITED, times=2, task_type="imageInference")
    result = await client.generate(MINI)
    assert fake_runware.submissions_of(result.task_uuid) == 3
    assert fake_runware.paid_tasks == [result.task_uuid]
    assert result.cost_micros == 11_000


@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.SERVER_ERROR])
async def test_transient_poll_failures_are_retried(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault
) -> None:
    """503/500 answers to getResponse are retried; the generation still succeeds with one paid task."""
    fake_runware.fail_next(fault, times=2, task_type="getResponse")
    result = await client.generate(MINI)
    assert len(result.images) == 1
    assert fake_runware.submissions_of(result.task_uuid) == 1
    assert fake_runware.paid_tasks == [result.task_uuid]


async def test_poll_failures_beyond_the_retry_budget_raise(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """A getResponse that keeps failing ends in RunwareTransientError after max_retries retries."""
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)
    fake_runware.fail_next(Fault.UNAVAILABLE, times=50, task_type="getResponse")
    with pytest.raises(RunwareTransientError):
        await client.wait(task_uuid, 1)
    assert len(fake_runware.tasks_submitted("getResponse")) == 4


@pytest.mark.parametrize("fault", [Fault.UNAVAILABLE, Fault.SERVER_ERROR, Fault.HANG])
async def test_rejected_or_unanswered_submission_is_checked_then_resubmitted_once(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault
) -> None:
    """When the submission never reached Runware, the client asks first, then resubmits the same UUID: one paid task."""
    fake_runware.fail_next(fault, task_type="imageInference")
    result = await client.generate(MINI)
    assert fake_runware.submissions_of(result.task_uuid) == 2
    assert fake_runware.paid_tasks == [result.task_uuid]
    assert result.cost_micros == 11_000
    first_poll = fake_runware.tasks_submitted("getResponse")[0]
    assert first_poll["taskUUID"] == result.task_uuid


@pytest.mark.parametrize("fault", [Fault.ACCEPT_THEN_DROP, Fault.ACCEPT_THEN_502, Fault.MALFORMED_JSON])
async def test_ambiguous_submit_failure_does_not_bill_twice(
    client: RunwareClient, fake_runware: FakeRunware, fault: Fault
) -> None:
    """The task was accepted but the answer was lost: the client finds it by polling and never submits it again."""
    fake_runware.fail_next(fault, task_type="imageInference")
    result = await client.generate(MINI)

    assert fake_runware.submissions_of(result.task_uuid) == 1
    assert fake_runware.paid_tasks == [result.task_uuid]
    assert len(result.images) == 1
    assert result.cost_micros == 11_000
    assert fake_runware.total_cost_micros == 11_000


async def test_a_timed_out_submit_that_registers_late_is_found_not_paid_twice(
    session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, runware_config: RunwareConfig
) -> None:
    """The POST outlives the client's timeout and Runware registers it only later: the client keeps asking before
    it resubmits, finds the task, and the member pays once, even from a Runware that would run a repeated UUID again."""
    late_probes = 4
    waits: list[tuple[float, bool]] = []  # each sleep of the client: (seconds, whether Runware knew the task yet)

    async def record(delay: float) -> None:
        waits.append((delay, fake_runware.task(task_uuid) is not None))
        await asyncio.sleep(delay)

    client = make_client(
        session, fake_runware, runware_config, api_key=runware_key, sleep=record, late_probes=late_probes
    )
    fake_runware.reject_duplicate_uuids = False
    delay = runware_config.request_timeout_seconds * 1.6
    fake_runware.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=delay)
    task_uuid = client.new_task_uuid()
    result = await client.generate(MINI, task_uuid=task_uuid)

    assert fake_runware.submissions_of(task_uuid) == 1
    assert fake_runware.paid_tasks == [task_uuid]
    assert fake_runware.total_cost_micros == result.cost_micros == 11_000
    late_waits = [known for seconds, known in waits if seconds == runware_config.request_timeout_seconds / late_probes]
    assert late_waits and not late_waits[0], f"an 'unknown' right after the timeout must not be taken as final: {waits}"
    assert fake_runware.polls_of(task_uuid) >= 2


async def test_without_the_late_probes_the_same_fault_bills_twice(
    session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, runware_config: RunwareConfig
) -> None:
    """The control for the test above: a client that trusts the first "unknown" resubmits, and a Runware that
    runs a repeated UUID bills the generation twice. (So the fault really is the danger the probes guard against.)"""
    fake_runware.reject_duplicate_uuids = False
    client = make_client(session, fake_runware, runware_config, api_key=runware_key, late_probes=0)
    delay = runware_config.request_timeout_seconds * 1.6
    fake_runware.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=delay)
    result = await client.generate(MINI)
    assert fake_runware.pending_late_registrations == 1, "the first POST is still held when the second is done"
    await fake_runware.drain()
    assert fake_runware.submissions_of(result.task_uuid) == 2
    assert fake_runware.paid_tasks == [result.task_uuid, result.task_uuid]


async def test_late_probes_are_bounded_then_the_task_is_resubmitted_under_the_same_uuid(
    session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, runware_config: RunwareConfig
) -> None:
    """A timed-out submit is asked about once plus four times over the request timeout, then resubmitted; a request
    registering later still is refused as a duplicate by this (default) fake, so one task is paid."""
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)
        await asyncio.sleep(delay)

    client = make_client(session, fake_runware, runware_config, api_key=runware_key, sleep=record)
    timeout = runware_config.request_timeout_seconds
    fake_runware.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=timeout * 2.5)
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)

    assert fake_runware.polls_of(task_uuid) == 1 + 4
    assert slept[1:] == [timeout / 4] * 4, slept
    assert fake_runware.submissions_of(task_uuid) == 2
    assert fake_runware.pending_late_registrations == 1, "the first POST is still held when it is resubmitted"
    await fake_runware.drain()
    assert fake_runware.paid_tasks == [task_uuid]


async def test_before_post_is_awaited_before_every_post_of_the_task(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """The hook runs before the first POST and before each re-POST (after a 429 and after an unanswered 503), each
    time before that POST reaches Runware, so a caller can record the time of the latest one."""
    fake_runware.fail_next(Fault.RATE_LIMITED, task_type="imageInference")
    fake_runware.fail_next(Fault.UNAVAILABLE, task_type="imageInference")
    task_uuid = client.new_task_uuid()
    seen_before: list[int] = []

    async def before_post() -> None:
        seen_before.append(fake_runware.submissions_of(task_uuid))

    await client.submit(MINI, task_uuid, before_post=before_post)
    assert seen_before == [0, 1, 2]
    assert fake_runware.submissions_of(task_uuid) == 3
    assert fake_runware.paid_tasks == [task_uuid]


async def test_a_failing_before_post_stops_the_post(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """When the hook raises (the time could not be recorded), the task is not sent and the error reaches the caller."""

    async def before_post() -> None:
        raise RuntimeError("could not record the POST")

    with pytest.raises(RuntimeError, match="could not record"):
        await client.submit(MINI, client.new_task_uuid(), before_post=before_post)
    assert fake_runware.requests == []


async def test_a_connection_that_never_opened_is_not_waited_for(
    session: aiohttp.ClientSession, runware_key: str, runware_config: RunwareConfig
) -> None:
    """Nothing was sent when the connection could not be opened, so no late probes: only the retry backoffs."""
    fake = FakeRunware()
    await fake.start()
    url = fake.url
    await fake.close()
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    client = make_client(session, fake, runware_config, api_key=runware_key, api_url=url, sleep=record)
    with pytest.raises(RunwareTransientError):
        await client.submit(MINI, client.new_task_uuid())
    assert slept and all(delay <= 0.02 for delay in slept), slept


async def test_ambiguous_failure_while_the_task_is_still_running_continues_with_it(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """A dropped answer for a slow task: the probe sees it processing, and the images arrive from that one task."""
    fake_runware.latency = 0.2
    fake_runware.fail_next(Fault.ACCEPT_THEN_DROP, task_type="imageInference")
    result = await client.generate(ImageInferenceRequest(model="gpt-image-1-mini", prompt="two foxes", count=2))
    assert fake_runware.submissions_of(result.task_uuid) == 1
    assert len(result.images) == 2
    assert fake_runware.paid_tasks == [result.task_uuid]


async def test_duplicate_task_uuid_on_resubmit_means_poll_the_existing_task(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """Submitting a UUID Runware already has answers duplicateTaskUUID; the client polls instead of failing."""
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)
    assert await client.submit(MINI, task_uuid) == []
    images = await client.wait(task_uuid, 1)
    assert len(images) == 1
    assert fake_runware.paid_tasks == [task_uuid]


async def test_polling_an_unknown_task_raises_task_not_found(client: RunwareClient) -> None:
    """getResponse for a UUID Runware never saw raises RunwareTaskNotFoundError with `taskFailedOrNotFound`."""
    with pytest.raises(RunwareTaskNotFoundError) as caught:
        await client.poll(client.new_task_uuid())
    assert caught.value.code == "taskFailedOrNotFound"


# ------------------------------------------------------------------------------------------------ find_task


async def test_find_task_tells_an_unknown_task_from_a_running_or_finished_one(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """None only for a UUID Runware never saw; for a known task, its state (running, or finished with its images).
    Asking never submits anything."""
    assert await client.find_task(client.new_task_uuid()) is None

    finished_uuid = client.new_task_uuid()
    await client.submit(MINI, finished_uuid)
    fake_runware.latency = 30
    running_uuid = client.new_task_uuid()
    await client.submit(MINI, running_uuid)

    running = await client.find_task(running_uuid)
    assert running is not None and running.task_uuid == running_uuid
    assert running.pending and not running.done and running.images == ()
    finished = await client.find_task(finished_uuid)
    assert finished is not None and finished.done and len(finished.images) == 1
    assert finished.images[0].task_uuid == finished_uuid
    assert len(fake_runware.tasks_submitted()) == 2


@pytest.mark.parametrize("max_retries", [0, 1, 3])
async def test_find_task_retries_transient_failures_with_the_clients_retry_policy(
    session: aiohttp.ClientSession,
    fake_runware: FakeRunware,
    runware_key: str,
    runware_config: RunwareConfig,
    max_retries: int,
) -> None:
    """Up to the configured `max_retries` transient failures are retried after the client's backoff (exponential,
    jittered, capped); one more is raised, never taken for "unknown", and nothing is ever submitted."""
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    config = runware_config.model_copy(update={"max_retries": max_retries})
    client = make_client(
        session, fake_runware, config, api_key=runware_key, sleep=record, retry_base_delay=0.5, retry_max_delay=1.5
    )
    task_uuid = client.new_task_uuid()
    await client.submit(MINI, task_uuid)
    if max_retries:
        fake_runware.fail_next(Fault.UNAVAILABLE, times=max_retries, task_type="getResponse")
    state = await client.find_task(task_uuid)
    assert state is not None and state.task_uuid == task_uuid
    assert fake_runware.polls_of(task_uuid) == max_retries + 1
    assert len(slept) == max_retries
    for attempt, delay in enumerate(slept):
        ceiling = min(1.5, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling, (attempt, delay)

    unknown_uuid = client.new_task_uuid()
    slept.clear()
    fake_runware.fail_next(Fault.UNAVAILABLE, times=max_retries + 1, task_type="getResponse", retry_after=1.2)
    with pytest.raises(RunwareTransientError):
        await client.find_task(unknown_uuid)
    assert fake_runware.polls_of(unknown_uuid) == max_retries + 1
    assert len(slept) == max_retries and all(1.2 <= delay <= 1.5 for delay in slept), slept
    assert fake_runware.submissions_of(unknown_uuid) == 0
    assert await client.find_task(unknown_uuid) is None


@pytest.mark.parametrize(
    ("fault", "status", "code", "expected"),
    [
        (Fault.ERROR_ENVELOPE_SINGULAR, 404, "gone", RunwareTaskNotFoundError),
        (Fault.UNAUTHORIZED, None, None, RunwareAuthError),
        (Fault.ERROR_ENVELOPE_SINGULAR, None, None, RunwareInvalidRequestError),
    ],
)
async def test_find_task_raises_other_answers_at_once(
    client: RunwareClient,
    fake_runware: FakeRunware,
    fault: Fault,
    status: int | None,
    code: str | None,
    expected: type[RunwareError],
) -> None:
    """Only `taskFailedOrNotFound` means "unknown": another not-found code or a permanent error is raised unretried."""
    task_uuid = client.new_task_uuid()
    fake_runware.fail_next(fault, task_type="getResponse", status=status, code=code)
    with pytest.raises(RunwareError) as caught:
        await client.find_task(task_uuid)
    assert type(caught.value) is expected
    assert fake_runware.polls_of(task_uuid) == 1


async def test_unreachable_server_is_a_transient_error(
    session: aiohttp.ClientSession, runware_key: str, runware_config: RunwareConfig
) -> None:
    """A closed port becomes RunwareTransientError after the retries, not an aiohttp exception."""
    fake = FakeRunware()
    await fake.start()
    url = fake.url
    await fake.close()
    client = RunwareClient(session, api_key=runware_key, api_url=url, config=runware_config, retry_base_delay=0.001)
    with pytest.raises(RunwareTransientError) as caught:
        await client.find_task(client.new_task_uuid())
    assert caught.value.code == "connectionError"


async def test_result_download_retries_transient_failures_then_gives_up(
    client: RunwareClient, runware_config: RunwareConfig
) -> None:
    """A 503 from the image host is retried with backoff; a host that keeps failing ends in RunwareTransientError."""
    png = small_png()
    failures = {"flaky": 2, "down": 1000}
    hits = {"flaky": 0, "down": 0}

    async def image(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        hits[name] += 1
        if hits[name] <= failures[name]:
            return web.Response(status=503)
        return web.Response(body=png, content_type="image/png")

    app = web.Application()
    app.router.add_get("/{name}.png", image)
    async with serve(app) as base:
        flaky = ImageResult(task_uuid="t", image_uuid="a", url=f"{base}/flaky.png")
        assert await client.download(flaky) == png
        assert hits["flaky"] == 3
        down = ImageResult(task_uuid="t", image_uuid="b", url=f"{base}/down.png")
        with pytest.raises(RunwareTransientError) as caught:
            await client.download(down)
    assert caught.value.task_uuid == "t"
    assert hits["down"] == runware_config.max_retries + 1
