"""The fake Runware server behaves like the real API over real HTTP (runware-api.md §1-5)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from bot.money import usd_to_micros
from fakes.runware import DEFAULT_API_KEY, FakeRunware, Fault, render_image

REPO_ROOT = Path(__file__).resolve().parents[2]
AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def new_uuid() -> str:
    return str(uuid.uuid4())


def inference(**overrides: Any) -> dict[str, Any]:
    """A valid imageInference task (Mini, medium, square, URL, JPG) with `overrides` applied; None removes a key."""
    task: dict[str, Any] = {
        "taskType": "imageInference",
        "taskUUID": new_uuid(),
        "model": "openai:1@2",
        "positivePrompt": "a lighthouse made of glass at dusk",
        "width": 1024,
        "height": 1024,
        "numberResults": 1,
        "outputType": "URL",
        "outputFormat": "JPG",
        "includeCost": True,
        "providerSettings": {"openai": {"quality": "medium", "background": "auto"}},
    }
    for key, value in overrides.items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    return task


def poll(task_uuid: str) -> dict[str, Any]:
    return {"taskType": "getResponse", "taskUUID": task_uuid}


def png_data_uri(size: tuple[int, int] = (32, 24), mode: str = "RGB") -> str:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def call(
    session: aiohttp.ClientSession,
    fake: FakeRunware,
    tasks: Any,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """POST `tasks` to the fake and return (status, parsed JSON body)."""
    async with session.post(fake.url, json=tasks, headers=AUTH if headers is None else headers) as response:
        return response.status, await response.json(content_type=None)


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[str, bytes]:
    async with session.get(url) as response:
        assert response.status == 200
        return response.content_type, await response.read()


# ------------------------------------------------------------------ authentication and envelopes


async def test_missing_key_is_401_invalid_api_key(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """No Authorization header and no authentication task: 401 with the documented error object."""
    status, body = await call(session, fake_runware, [inference()], headers={})
    assert status == 401
    error = body["errors"][0]
    assert error["code"] == "invalidApiKey"
    assert error["parameter"] == "apiKey"
    assert error["taskType"] == "authentication"
    assert error["message"].startswith("Invalid API key")
    assert fake_runware.paid_tasks == []


async def test_wrong_key_is_401(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """A wrong bearer key is refused and nothing is processed."""
    task = inference()
    status, body = await call(session, fake_runware, [task], headers={"Authorization": "Bearer nope"})
    assert status == 401
    assert body["errors"][0]["code"] == "invalidApiKey"
    assert fake_runware.task(task["taskUUID"]) is None


async def test_authentication_task_alone_verifies_key(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, runware_key: str
) -> None:
    """An authentication task alone returns a connectionSessionUUID and spends nothing."""
    status, body = await call(
        session, fake_runware, [{"taskType": "authentication", "apiKey": runware_key}], headers={}
    )
    assert status == 200
    item = body["data"][0]
    assert item["taskType"] == "authentication"
    assert uuid.UUID(item["connectionSessionUUID"])
    assert fake_runware.total_cost_micros == 0
    status, _ = await call(session, fake_runware, [{"taskType": "authentication", "apiKey": "bad"}], headers={})
    assert status == 401


async def test_authentication_task_first_replaces_header(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, runware_key: str
) -> None:
    """An authentication task first in the array authorises the rest; its own item is not echoed."""
    tasks = [{"taskType": "authentication", "apiKey": runware_key}, inference()]
    status, body = await call(session, fake_runware, tasks, headers={})
    assert status == 200
    assert [item["taskType"] for item in body["data"]] == ["imageInference"]


async def test_trailing_slash_path_and_other_methods(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """POST /v1/ works like /v1; GET /v1 is not allowed."""
    async with session.post(fake_runware.url + "/", json=[inference()], headers=AUTH) as response:
        assert response.status == 200
    async with session.get(fake_runware.url, headers=AUTH) as response:
        assert response.status == 405


@pytest.mark.parametrize("raw", ['{"taskType": "imageInference"}', "[]", "not json", '"text"'])
async def test_body_must_be_a_json_array(fake_runware: FakeRunware, session: aiohttp.ClientSession, raw: str) -> None:
    """Anything but a non-empty JSON array of tasks is a 400 invalidRequestBody."""
    async with session.post(fake_runware.url, data=raw, headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    assert body["errors"][0]["code"] == "invalidRequestBody"


async def test_batch_holds_data_and_errors(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Several tasks in one POST: per-task results and errors in one body, HTTP 200."""
    good = inference()
    bad = inference(model="openai:9@9")
    missing = new_uuid()
    status, body = await call(session, fake_runware, [good, bad, poll(missing)])
    assert status == 200
    assert [item["taskUUID"] for item in body["data"]] == [good["taskUUID"]]
    codes = {error["taskUUID"]: error["code"] for error in body["errors"]}
    assert codes == {bad["taskUUID"]: "invalidModel", missing: "taskFailedOrNotFound"}


# ------------------------------------------------------------------ validation


VALIDATION_CASES: list[tuple[str, dict[str, Any], str, Any]] = [
    ("task uuid", {"taskUUID": "not-a-uuid"}, "invalidTaskUUID", "taskUUID"),
    ("model", {"model": "openai:9@9"}, "invalidModel", "model"),
    ("missing model", {"model": None}, "missingParameter", "model"),
    ("empty prompt", {"positivePrompt": ""}, "invalidPositivePrompt", "positivePrompt"),
    ("long prompt", {"positivePrompt": "x" * 32_001}, "invalidPositivePrompt", "positivePrompt"),
    ("1.5 one char", {"model": "openai:4@1", "positivePrompt": "x"}, "invalidPositivePrompt", "positivePrompt"),
    ("prompt type", {"positivePrompt": 5}, "invalidPositivePrompt", "positivePrompt"),
    ("width", {"width": 512}, "invalidWidth", "width"),
    ("height", {"height": 700}, "invalidHeight", "height"),
    ("pair", {"width": 1536, "height": 1536}, "invalidDimensions", ["width", "height"]),
    ("width alone", {"height": None}, "missingParameter", "height"),
    ("height alone", {"width": None}, "missingParameter", "width"),
    ("zero results", {"numberResults": 0}, "invalidNumberResults", "numberResults"),
    ("21 results", {"numberResults": 21}, "invalidNumberResults", "numberResults"),
    ("string results", {"numberResults": "2"}, "invalidNumberResults", "numberResults"),
    ("output type", {"outputType": "url"}, "invalidOutputType", "outputType"),
    ("output format", {"outputFormat": "GIF"}, "invalidOutputFormat", "outputFormat"),
    ("quality low", {"outputQuality": 19}, "invalidOutputQuality", "outputQuality"),
    ("quality high", {"outputQuality": 100}, "invalidOutputQuality", "outputQuality"),
    ("include cost", {"includeCost": "yes"}, "invalidIncludeCost", "includeCost"),
    ("delivery", {"deliveryMethod": "later"}, "invalidDeliveryMethod", "deliveryMethod"),
    (
        "openai quality",
        {"providerSettings": {"openai": {"quality": "ultra"}}},
        "invalidQuality",
        "providerSettings.openai.quality",
    ),
    (
        "openai background",
        {"providerSettings": {"openai": {"background": "white"}}},
        "invalidBackground",
        "providerSettings.openai.background",
    ),
    (
        "provider",
        {"providerSettings": {"google": {}}},
        "unknownProviderSettingsProvider",
        "providerSettings.google",
    ),
    ("no references", {"inputs": {"referenceImages": []}}, "invalidReferenceImages", "inputs.referenceImages"),
    (
        "17 references",
        {"inputs": {"referenceImages": ["https://example.com/a.png"] * 17}},
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    (
        "unknown image uuid",
        {"inputs": {"referenceImages": [str(uuid.uuid4())]}},
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    (
        "not an image",
        {"inputs": {"referenceImages": [base64.b64encode(b"hello world").decode()]}},
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    ("inputs key", {"inputs": {"maskImage": "x"}}, "unknownParameter", "inputs.maskImage"),
    ("seed", {"seed": 42}, "unknownParameter", "seed"),
    ("negative prompt", {"negativePrompt": "blurry"}, "unknownParameter", "negativePrompt"),
    (
        "top-level references",
        {"referenceImages": ["https://example.com/a.png"]},
        "unknownParameter",
        "referenceImages",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "code", "parameter"),
    [case[1:] for case in VALIDATION_CASES],
    ids=[case[0] for case in VALIDATION_CASES],
)
async def test_validation_rules(
    fake_runware: FakeRunware,
    session: aiohttp.ClientSession,
    overrides: dict[str, Any],
    code: str,
    parameter: Any,
) -> None:
    """Each model rule gives HTTP 400 with a complete per-task error object and accepts nothing."""
    task = inference(**overrides)
    status, body = await call(session, fake_runware, [task])
    assert status == 400
    assert "data" not in body
    error = body["errors"][0]
    assert error["code"] == code
    assert error["parameter"] == parameter
    assert error["taskType"] == "imageInference"
    assert error["taskUUID"] == task["taskUUID"]
    assert error["message"]
    assert error["documentation"].startswith("https://")
    assert fake_runware.task(str(task["taskUUID"])) is None
    assert fake_runware.total_cost_micros == 0


async def test_boundaries_are_accepted(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Edge values inside the rules pass: 1-char prompt on 1@1, 2 chars on 1.5, quality 20/99, defaults."""
    tasks = [
        inference(model="openai:1@1", positivePrompt="x"),
        inference(model="openai:4@1", positivePrompt="xy", outputQuality=20),
        inference(outputQuality=99, outputFormat="WEBP"),
        inference(width=None, height=None, providerSettings=None, outputType=None, outputFormat=None),
    ]
    status, body = await call(session, fake_runware, tasks)
    assert status == 200, body
    assert "errors" not in body
    assert len(body["data"]) == 4
    assert body["data"][3]["imageURL"].endswith(".jpg")


# ------------------------------------------------------------------ sync results, outputs, costs


async def test_sync_gpt_image_1_high_landscape_costs_like_the_seed(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """openai:1@1 high 1536x1024 reports cost 0.25 and serves a real 1536x1024 JPEG at imageURL."""
    task = inference(
        model="openai:1@1",
        width=1536,
        height=1024,
        outputFormat=None,
        providerSettings={"openai": {"quality": "high", "background": "opaque"}},
    )
    status, body = await call(session, fake_runware, [task])
    assert status == 200
    (item,) = body["data"]
    assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL", "cost"}
    assert item["taskUUID"] == task["taskUUID"]
    assert item["cost"] == 0.25
    assert item["imageURL"] == f"{fake_runware.base_url}/image/{item['imageUUID']}.jpg"
    content_type, data = await fetch(session, item["imageURL"])
    assert content_type == "image/jpeg"
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size, image.mode) == ("JPEG", (1536, 1024), "RGB")
    assert fake_runware.downloads == [item["imageUUID"]]


async def test_mini_medium_square_costs_like_the_seed(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """openai:1@2 medium 1024x1024 reports 0.011, also with 8 reference images (no surcharge)."""
    refs = [f"https://assets.runware.ai/assets/inputs/{uuid.uuid4()}.jpg" for _ in range(8)]
    task = inference(inputs={"referenceImages": refs})
    _, body = await call(session, fake_runware, [task])
    assert body["data"][0]["cost"] == 0.011
    assert fake_runware.total_cost_micros == 11_000


async def test_cost_is_omitted_without_include_cost(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """includeCost defaults to false: no cost field, but the image is still billed."""
    task = inference(includeCost=None)
    _, body = await call(session, fake_runware, [task])
    assert "cost" not in body["data"][0]
    assert fake_runware.paid_tasks == [task["taskUUID"]]
    assert fake_runware.total_cost_micros == 11_000


async def test_auto_quality_is_priced_as_high(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """quality auto (the default) costs what high costs."""
    task = inference(model="openai:1@1", providerSettings=None, width=1024, height=1536)
    _, body = await call(session, fake_runware, [task])
    assert body["data"][0]["cost"] == 0.25


async def test_gpt_image_1_5_adds_input_surcharge(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """1.5 adds chars/4 tokens at $5/1M and $0.0027 per reference image, rounded to 5 decimals."""
    prompt = "p" * 917
    plain = inference(
        model="openai:4@1",
        positivePrompt=prompt,
        width=1536,
        height=1024,
        providerSettings={"openai": {"quality": "high"}},
    )
    with_ref = inference(
        model="openai:4@1",
        positivePrompt=prompt,
        width=1024,
        height=1536,
        providerSettings={"openai": {"quality": "high"}},
        inputs={"referenceImages": ["https://assets.runware.ai/assets/inputs/x.jpg"]},
    )
    _, body = await call(session, fake_runware, [plain, with_ref])
    costs = [item["cost"] for item in body["data"]]
    text = 917 / 4 * 5 / 1_000_000
    assert costs == [round(0.199 + text, 5), round(0.200 + text + 0.0027, 5)]
    assert costs == [0.20015, 0.20385]
    assert fake_runware.total_cost_micros == usd_to_micros(0.20015) + usd_to_micros(0.20385)


async def test_cost_override_changes_reported_and_billed_cost(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """cost_override makes Runware report a chosen amount per image, captured at submission."""
    fake_runware.cost_override = 0.5
    task = inference(numberResults=2)
    _, body = await call(session, fake_runware, [task])
    assert [item["cost"] for item in body["data"]] == [0.5, 0.5]
    assert fake_runware.total_cost_micros == 1_000_000
    state = fake_runware.task(task["taskUUID"])
    assert state is not None
    assert state.cost_micros == 1_000_000


OUTPUT_CASES = [
    ("URL", "PNG", "transparent", "PNG", "RGBA"),
    ("base64Data", "PNG", "opaque", "PNG", "RGB"),
    ("dataURI", "WEBP", "transparent", "WEBP", "RGBA"),
    ("base64Data", "WEBP", "auto", "WEBP", "RGB"),
    ("dataURI", "JPG", "transparent", "JPEG", "RGB"),
]


@pytest.mark.parametrize(("output_type", "output_format", "background", "pil_format", "mode"), OUTPUT_CASES)
async def test_outputs_are_real_images(
    fake_runware: FakeRunware,
    session: aiohttp.ClientSession,
    output_type: str,
    output_format: str,
    background: str,
    pil_format: str,
    mode: str,
) -> None:
    """Every outputType carries a decodable image of the requested size and format; transparency is real."""
    task = inference(
        width=1024,
        height=1536,
        outputType=output_type,
        outputFormat=output_format,
        providerSettings={"openai": {"quality": "low", "background": background}},
    )
    _, body = await call(session, fake_runware, [task])
    (item,) = body["data"]
    field = {"URL": "imageURL", "base64Data": "imageBase64Data", "dataURI": "imageDataURI"}[output_type]
    assert {"imageURL", "imageBase64Data", "imageDataURI"} & set(item) == {field}
    if output_type == "URL":
        _, data = await fetch(session, item["imageURL"])
    elif output_type == "base64Data":
        data = base64.b64decode(item["imageBase64Data"])
    else:
        header, _, payload = item["imageDataURI"].partition(",")
        assert header == f"data:image/{pil_format.lower()};base64"
        data = base64.b64decode(payload)
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size, image.mode) == (pil_format, (1024, 1536), mode)
    if mode == "RGBA":
        alpha = image.getchannel("A")
        assert alpha.getextrema() == (0, 255)
        assert alpha.getpixel((0, 0)) == 0


async def test_results_are_distinct_and_deterministic(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """numberResults gives separate items with distinct images; the same prompt and index give the same picture."""
    first = inference(numberResults=3, outputType="base64Data")
    second = inference(numberResults=3, outputType="base64Data")
    _, body = await call(session, fake_runware, [first, second])
    items = body["data"]
    assert len(items) == 6
    assert len({item["imageUUID"] for item in items}) == 6
    images = [item["imageBase64Data"] for item in items]
    assert len(set(images[:3])) == 3
    assert images[:3] == images[3:]


def test_render_is_fast() -> None:
    """An uncached 1536x1024 PNG renders quickly (about 20-30 ms on a laptop; the bound allows a slow CI)."""
    timings = []
    for variant in range(3):
        started = time.perf_counter()
        render_image.__wrapped__(1536, 1024, "PNG", False, variant)
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.15


# ------------------------------------------------------------------ async delivery and polling


async def test_async_ack_then_partial_then_complete(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Async returns an ACK at once; polls see images finish one by one; items are cumulative and stable."""
    fake_runware.latency = 1.2
    task = inference(numberResults=3, deliveryMethod="async")
    task_uuid = task["taskUUID"]
    started = time.monotonic()
    status, body = await call(session, fake_runware, [task])
    assert time.monotonic() - started < 0.5
    assert (status, body) == (200, {"data": [{"taskType": "imageInference", "taskUUID": task_uuid}]})

    _, body = await call(session, fake_runware, [poll(task_uuid)])
    assert body["data"] == [{"taskType": "imageInference", "taskUUID": task_uuid, "status": "processing"}]

    await asyncio.sleep(started + 0.6 - time.monotonic())
    _, body = await call(session, fake_runware, [poll(task_uuid)])
    statuses = [item["status"] for item in body["data"]]
    assert statuses == ["success", "processing"]
    first_uuid = body["data"][0]["imageUUID"]
    state = fake_runware.task(task_uuid)
    assert state is not None
    assert state.status == "processing"
    assert len(state.results) == 1

    await asyncio.sleep(started + 1.3 - time.monotonic())
    _, body = await call(session, fake_runware, [poll(task_uuid)])
    items = body["data"]
    assert [item["status"] for item in items] == ["success"] * 3
    assert items[0]["imageUUID"] == first_uuid
    assert all(item["cost"] == 0.011 and item["imageURL"] for item in items)
    _, again = await call(session, fake_runware, [poll(task_uuid)])
    assert again["data"] == items
    assert fake_runware.paid_tasks == [task_uuid]
    assert fake_runware.total_cost_micros == 33_000


async def test_sync_waits_for_latency_and_records_duration(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """A sync request answers after the latency with every image; the processing time is recorded."""
    fake_runware.latency = 0.3
    _, body = await call(session, fake_runware, [inference(numberResults=2)])
    assert len(body["data"]) == 2
    recorded = fake_runware.requests[-1]
    assert recorded.duration is not None
    assert recorded.duration >= 0.29
    assert recorded.status == 200


async def test_get_response_works_for_sync_tasks_too(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """A finished sync task can be polled; its items then carry status success."""
    task = inference()
    _, sync_body = await call(session, fake_runware, [task])
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"] == [{**sync_body["data"][0], "status": "success"}]


async def test_unknown_task_uuid_is_task_failed_or_not_found(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """getResponse for a task that was never accepted is HTTP 400 taskFailedOrNotFound."""
    missing = new_uuid()
    status, body = await call(session, fake_runware, [poll(missing)])
    assert status == 400
    error = body["errors"][0]
    assert (error["code"], error["taskUUID"], error["taskType"]) == ("taskFailedOrNotFound", missing, "getResponse")


async def test_duplicate_task_uuid_is_refused_and_counted(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """Re-submitting a taskUUID is 400 duplicateTaskUUID, counted as an attempt, and billed once."""
    task = inference(deliveryMethod="async")
    await call(session, fake_runware, [task])
    status, body = await call(session, fake_runware, [task])
    assert status == 400
    error = body["errors"][0]
    assert (error["code"], error["parameter"], error["taskUUID"]) == ("duplicateTaskUUID", "taskUUID", task["taskUUID"])
    assert fake_runware.submissions_of(task["taskUUID"]) == 2
    assert fake_runware.paid_tasks == [task["taskUUID"]]
    assert fake_runware.total_cost_micros == 11_000


async def test_a_repeated_task_uuid_runs_and_bills_again_when_duplicates_are_not_rejected(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """`reject_duplicate_uuids = False` (the worst case of reference §10.6): the repeat is a second paid run."""
    fake_runware.reject_duplicate_uuids = False
    task = inference(deliveryMethod="async")
    assert (await call(session, fake_runware, [task]))[0] == 200
    assert (await call(session, fake_runware, [task]))[0] == 200
    assert fake_runware.paid_tasks == [task["taskUUID"], task["taskUUID"]]
    assert fake_runware.total_cost_micros == 22_000
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert [item["status"] for item in body["data"]] == ["success"]


async def test_register_late_holds_the_request_then_runs_it_even_if_the_client_left(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """REGISTER_LATE: unknown to getResponse until the delay has passed, then registered and billed, although the
    client stopped waiting for the answer long before."""
    fake_runware.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=0.6)
    task = inference(deliveryMethod="async")
    with pytest.raises(asyncio.TimeoutError):
        await session.post(fake_runware.url, json=[task], headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.2))
    status, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert (status, body["errors"][0]["code"]) == (400, "taskFailedOrNotFound")
    assert fake_runware.pending_late_registrations == 1
    assert fake_runware.paid_tasks == []
    await fake_runware.drain()
    assert fake_runware.pending_late_registrations == 0
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"][0]["status"] == "success"
    assert fake_runware.submissions_of(task["taskUUID"]) == 1
    assert fake_runware.paid_tasks == [task["taskUUID"]]


async def test_recording_helpers(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Requests, task objects and headers are recorded as sent."""
    task = inference(deliveryMethod="async")
    await call(session, fake_runware, [task])
    await call(session, fake_runware, [poll(task["taskUUID"])])
    assert [recorded.path for recorded in fake_runware.requests] == ["/v1", "/v1"]
    first = fake_runware.requests[0]
    assert first.method == "POST"
    assert first.headers["Authorization"] == f"Bearer {DEFAULT_API_KEY}"
    assert first.json == [task]
    assert json.loads(first.text) == [task]
    assert fake_runware.tasks_submitted() == [task]
    assert fake_runware.tasks_submitted("getResponse") == [poll(task["taskUUID"])]
    assert len(fake_runware.tasks_submitted(None)) == 2
    assert fake_runware.submissions_of(task["taskUUID"]) == 1
    assert fake_runware.polls_of(task["taskUUID"]) == 1
    assert fake_runware.polls_of(str(uuid.uuid4())) == 0


# ------------------------------------------------------------------ faults


STATUS_FAULTS = [
    (Fault.UNAUTHORIZED, 401, "invalidApiKey"),
    (Fault.INSUFFICIENT_CREDITS, 402, "insufficientCredits"),
    (Fault.RATE_LIMITED, 429, "rateLimitExceeded"),
    (Fault.SERVER_ERROR, 500, "internalServerError"),
    (Fault.UNAVAILABLE, 503, "serviceUnavailable"),
]


@pytest.mark.parametrize(("fault", "status", "code"), STATUS_FAULTS)
async def test_status_faults_refuse_once(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, fault: Fault, status: int, code: str
) -> None:
    """Each HTTP-level fault answers with its status and code, processes nothing, and applies once."""
    fake_runware.fail_next(fault)
    task = inference()
    got_status, body = await call(session, fake_runware, [task])
    assert got_status == status
    assert body["errors"][0]["code"] == code
    assert fake_runware.task(task["taskUUID"]) is None
    assert fake_runware.requests[-1].fault == fault
    got_status, _ = await call(session, fake_runware, [task])
    assert got_status == 200
    assert fake_runware.submissions_of(task["taskUUID"]) == 2
    assert fake_runware.paid_tasks == [task["taskUUID"]]


@pytest.mark.parametrize(("status", "code"), [(429, "rateLimitExceeded"), (503, "serviceUnavailable")])
async def test_capacity_refuses_tasks_past_it_until_one_finishes(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, status: int, code: str
) -> None:
    """capacity 2: a third task while two run is refused (nothing accepted); once they finish it is accepted."""
    fake_runware.latency = 0.2
    fake_runware.capacity = 2
    fake_runware.capacity_status = status
    first, second, third = (inference(deliveryMethod="async") for _ in range(3))
    assert (await call(session, fake_runware, [first]))[0] == 200
    assert (await call(session, fake_runware, [second]))[0] == 200
    assert fake_runware.running_count() == 2
    got_status, body = await call(session, fake_runware, [third])
    assert (got_status, body["errors"][0]["code"]) == (status, code)
    assert fake_runware.task(third["taskUUID"]) is None
    assert fake_runware.capacity_refusals == 1
    polls = [poll(task["taskUUID"]) for task in (first, second)]
    assert (await call(session, fake_runware, polls))[0] == 200, "polls are not limited"
    await asyncio.sleep(0.25)
    assert fake_runware.running_count() == 0
    assert (await call(session, fake_runware, [third]))[0] == 200
    assert fake_runware.peak_running == 2


async def test_polls_of_several_tasks_in_one_request_are_answered_task_by_task(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """A batched getResponse: each task's items carry its taskUUID; an unknown one is an error naming it."""
    known = inference(deliveryMethod="async")
    assert (await call(session, fake_runware, [known]))[0] == 200
    unknown = new_uuid()
    got_status, body = await call(session, fake_runware, [poll(known["taskUUID"]), poll(unknown)])
    assert got_status == 200
    assert {item["taskUUID"] for item in body["data"]} == {known["taskUUID"]}
    assert [(error["code"], error["taskUUID"]) for error in body["errors"]] == [("taskFailedOrNotFound", unknown)]


async def test_fault_task_type_filter_and_times(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """A fault filtered to getResponse skips the submission and hits the next two polls only."""
    fake_runware.fail_next(Fault.RATE_LIMITED, times=2, task_type="getResponse")
    task = inference(deliveryMethod="async")
    status, _ = await call(session, fake_runware, [task])
    assert status == 200
    statuses = [(await call(session, fake_runware, [poll(task["taskUUID"])]))[0] for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert fake_runware.pending_faults == []


async def test_fault_overrides_status_and_code(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """status and code can be overridden (e.g. a 504 queue timeout) and a Retry-After header added."""
    fake_runware.fail_next(Fault.SERVER_ERROR, status=504, code="timeoutQueue")
    status, body = await call(session, fake_runware, [inference()])
    assert (status, body["errors"][0]["code"]) == (504, "timeoutQueue")
    fake_runware.fail_next(Fault.RATE_LIMITED, retry_after=0.5)
    async with session.post(fake_runware.url, json=[inference()], headers=AUTH) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "0.5"


async def test_content_policy_sync(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Sync: the task fails with 400 contentPolicyViolation on positivePrompt and costs nothing."""
    fake_runware.fail_next(Fault.CONTENT_POLICY)
    task = inference()
    status, body = await call(session, fake_runware, [task])
    assert status == 400
    error = body["errors"][0]
    assert (error["code"], error["parameter"], error["taskUUID"]) == (
        "contentPolicyViolation",
        "positivePrompt",
        task["taskUUID"],
    )
    state = fake_runware.task(task["taskUUID"])
    assert state is not None
    assert state.status == "error"
    assert fake_runware.total_cost_micros == 0


@pytest.mark.parametrize(
    ("fault", "code"), [(Fault.CONTENT_POLICY, "contentPolicyViolation"), (Fault.TASK_TIMEOUT, "timeoutProvider")]
)
async def test_task_failures_async(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, fault: Fault, code: str
) -> None:
    """Async: the ACK succeeds; getResponse reports a status error item (or an errors envelope when configured)."""
    fake_runware.latency = 0.2
    fake_runware.fail_next(fault)
    task = inference(deliveryMethod="async", numberResults=2)
    status, _ = await call(session, fake_runware, [task])
    assert status == 200
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"][0]["status"] == "processing"
    await asyncio.sleep(0.25)
    status, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert status == 200
    (item,) = body["data"]
    assert (item["status"], item["taskUUID"], item["error"]["code"]) == ("error", task["taskUUID"], code)
    fake_runware.task_errors_as_envelope = True
    status, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert status == 400
    assert body["errors"][0]["code"] == code
    assert fake_runware.paid_tasks == []


async def test_malformed_json_still_processes(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """MALFORMED_JSON: HTTP 200 with a body that is not JSON; the task did run."""
    fake_runware.fail_next(Fault.MALFORMED_JSON)
    task = inference(deliveryMethod="async")
    async with session.post(fake_runware.url, json=[task], headers=AUTH) as response:
        assert response.status == 200
        text = await response.text()
    with pytest.raises(ValueError):
        json.loads(text)
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"][0]["status"] == "success"


async def test_hang_until_client_gives_up(session: aiohttp.ClientSession) -> None:
    """HANG never answers; nothing is processed; the fake still closes promptly with a request pending."""
    fake = FakeRunware()
    await fake.start()
    fake.fail_next(Fault.HANG, times=2)
    task = inference()
    with pytest.raises(asyncio.TimeoutError):
        await session.post(fake.url, json=[task], headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.3))
    assert fake.task(task["taskUUID"]) is None

    pending = asyncio.ensure_future(session.post(fake.url, json=[inference()], headers=AUTH))
    await asyncio.sleep(0.2)
    assert len(fake.requests) == 2
    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 2.0
    with pytest.raises(aiohttp.ClientConnectionError):
        await pending


async def test_accept_then_drop_runs_the_task(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """ACCEPT_THEN_DROP: the connection closes without an answer, but the task runs and can be polled."""
    fake_runware.latency = 0.2
    fake_runware.fail_next(Fault.ACCEPT_THEN_DROP)
    task = inference()
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, fake_runware, [task])
    assert time.monotonic() - started < 0.2
    assert fake_runware.requests[-1].status is None
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"][-1]["status"] == "processing"
    await asyncio.sleep(0.25)
    _, body = await call(session, fake_runware, [poll(task["taskUUID"])])
    assert body["data"][0]["status"] == "success"
    assert fake_runware.submissions_of(task["taskUUID"]) == 1
    assert fake_runware.paid_tasks == [task["taskUUID"]]


async def test_accept_then_502(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """ACCEPT_THEN_502: a proxy-style 502 HTML page, yet the task was accepted."""
    fake_runware.fail_next(Fault.ACCEPT_THEN_502)
    task = inference(deliveryMethod="async")
    async with session.post(fake_runware.url, json=[task], headers=AUTH) as response:
        assert response.status == 502
        assert response.content_type == "text/html"
    state = fake_runware.task(task["taskUUID"])
    assert state is not None
    assert state.status == "success"


async def test_error_envelope_variants(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """The singular `error` object and the bare list shapes are produced on demand."""
    task = inference()
    fake_runware.fail_next(Fault.ERROR_ENVELOPE_SINGULAR)
    status, body = await call(session, fake_runware, [task])
    assert status == 400
    assert set(body) == {"error"}
    assert body["error"]["code"] == "invalidParameter"
    assert body["error"]["taskUUID"] == task["taskUUID"]
    fake_runware.fail_next(Fault.ERROR_ENVELOPE_BARE_LIST, code="providerError", status=500)
    status, body = await call(session, fake_runware, [task])
    assert status == 500
    assert isinstance(body, list)
    assert body[0]["code"] == "providerError"
    assert fake_runware.task(task["taskUUID"]) is None


def test_fail_next_rejects_impossible_combinations() -> None:
    """Task faults only apply to imageInference; times must be positive."""
    fake = FakeRunware(prices={})
    with pytest.raises(ValueError):
        fake.fail_next(Fault.CONTENT_POLICY, task_type="getResponse")
    with pytest.raises(ValueError):
        fake.fail_next(Fault.RATE_LIMITED, times=0)
    with pytest.raises(ValueError):
        fake.fail_next("no-such-fault")


# ------------------------------------------------------------------ imageUpload


async def test_image_upload_and_reuse_as_reference(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """imageUpload stores a data URI, serves it as PNG, and its imageUUID is a valid reference."""
    upload = {"taskType": "imageUpload", "taskUUID": new_uuid(), "image": png_data_uri()}
    status, body = await call(session, fake_runware, [upload])
    assert status == 200
    (item,) = body["data"]
    assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL"}
    assert item["taskUUID"] == upload["taskUUID"]
    assert item["imageURL"] == f"{fake_runware.base_url}/image/{item['imageUUID']}.png"
    content_type, data = await fetch(session, item["imageURL"])
    assert content_type == "image/png"
    assert Image.open(io.BytesIO(data)).size == (32, 24)

    task = inference(inputs={"referenceImages": [item["imageUUID"], png_data_uri(), "https://example.com/x.png"]})
    status, body = await call(session, fake_runware, [task])
    assert status == 200, body


async def test_image_upload_accepts_bare_base64_jpeg_and_urls(
    fake_runware: FakeRunware, session: aiohttp.ClientSession
) -> None:
    """Raw base64 (re-encoded to PNG) and URLs are accepted."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "blue").save(buffer, "JPEG")
    raw = base64.b64encode(buffer.getvalue()).decode()
    tasks = [
        {"taskType": "imageUpload", "taskUUID": new_uuid(), "image": raw},
        {"taskType": "imageUpload", "taskUUID": new_uuid(), "image": "https://cdn.discordapp.com/a.png"},
    ]
    status, body = await call(session, fake_runware, tasks)
    assert status == 200
    _, data = await fetch(session, body["data"][0]["imageURL"])
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.size) == ("PNG", (40, 30))


@pytest.mark.parametrize("image", ["data:image/png;base64,aGVsbG8=", "bm90IGFuIGltYWdl", "%%%", 5])
async def test_image_upload_rejects_non_images(
    fake_runware: FakeRunware, session: aiohttp.ClientSession, image: Any
) -> None:
    """Anything that does not decode as an image is 400 invalidImage on `image`."""
    upload = {"taskType": "imageUpload", "taskUUID": new_uuid(), "image": image}
    status, body = await call(session, fake_runware, [upload])
    assert status == 400
    error = body["errors"][0]
    assert (error["code"], error["parameter"], error["taskType"]) == ("invalidImage", "image", "imageUpload")


async def test_unknown_image_is_404(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """Image URLs that were never produced are 404."""
    async with session.get(f"{fake_runware.base_url}/image/{uuid.uuid4()}.png") as response:
        assert response.status == 404


# ------------------------------------------------------------------ admin surface and standalone process


async def test_admin_surface(fake_runware: FakeRunware, session: aiohttp.ClientSession) -> None:
    """/_fake/fail, /_fake/config, /_fake/stats, /_fake/requests and /_fake/reset work over HTTP."""
    admin = f"{fake_runware.base_url}/_fake"
    async with session.post(f"{admin}/fail", json={"fault": "RATE_LIMITED", "times": 1}) as response:
        assert response.status == 200
    async with session.post(f"{admin}/fail", json={"fault": "bogus"}) as response:
        assert response.status == 400
    async with session.post(f"{admin}/config", json={"latency": 0.0, "cost_override": 0.1}) as response:
        assert (await response.json())["cost_override"] == 0.1
    async with session.post(f"{admin}/config", json={"reject_duplicate_uuids": False}) as response:
        assert (await response.json())["reject_duplicate_uuids"] is False
    async with session.post(f"{admin}/config", json={"reject_duplicate_uuids": True}) as response:
        assert (await response.json())["reject_duplicate_uuids"] is True
    async with session.post(f"{admin}/fail", json={"fault": "register_late", "delay": "soon"}) as response:
        assert response.status == 400
    task = inference()
    assert (await call(session, fake_runware, [task]))[0] == 429
    assert (await call(session, fake_runware, [task]))[0] == 200
    async with session.get(f"{admin}/stats") as response:
        stats = await response.json()
    assert stats["submissions"] == {task["taskUUID"]: 2}
    assert stats["paid_tasks"] == [task["taskUUID"]]
    assert stats["total_cost_micros"] == 100_000
    async with session.get(f"{admin}/requests") as response:
        assert await response.json() == [task, task]
    async with session.post(f"{admin}/reset") as response:
        assert response.status == 200
    assert fake_runware.requests == []
    assert fake_runware.total_cost_micros == 0


@pytest.mark.slow
async def test_standalone_process(session: aiohttp.ClientSession) -> None:
    """`python -m fakes.runware` prints the URL line, serves, and exits cleanly on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.runware",
        "--port",
        "0",
        "--latency",
        "0.1",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        assert line.startswith("RUNWARE_API_URL=http://127.0.0.1:")
        url = line.strip().partition("=")[2]
        assert url.endswith("/v1")
        async with session.post(url, json=[inference()], headers=AUTH) as response:
            assert response.status == 200
            assert (await response.json())["data"][0]["cost"] == 0.011
        async with session.get(url.removesuffix("/v1") + "/_fake/stats") as response:
            assert (await response.json())["total_cost_micros"] == 11_000
    finally:
        if process.returncode is None:
            process.terminate()
        rest, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    assert process.returncode == 0, stderr.decode()
    assert rest == b"", "only one line on stdout"


async def test_fixtures(fake_runware: FakeRunware, runware_key: str) -> None:
    """The plugin's fixtures give a started fake with the default key."""
    assert runware_key == DEFAULT_API_KEY == fake_runware.api_key
    assert fake_runware.url == f"http://127.0.0.1:{fake_runware.port}/v1"
    assert fake_runware.latency == 0.0
    assert fake_runware.cost_override is None
