"""Request validation and serialisation, result parsing, and the real examples in the seed pages."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.runware.models import (
    ImageInferenceRequest,
    ImageRequestError,
    ImageResult,
    WireItem,
    cost_to_micros,
    image_results,
    parse_items,
    total_cost_micros,
)

SEEDS = Path(__file__).parent / "seeds"
"""Copies of shared/seeds 000, 001, 003 and 004 (002 is another vendor): model pages with real examples."""

SEED_REQUEST_COUNTS = {
    "000_3861fc6873e15ec5.txt": 4,
    "001_c52c1c8b6f76509c.txt": 4,  # the same four GPT Image 1 examples as 000, from another copy of the page
    "003_9846399317d26ee3.txt": 4,
    "004_c0aaf04073cb2fb9.txt": 4,
}
"""Request examples per seed file; a change in the files must show up here rather than shrink the test silently."""

SUPPORTED_SEED_FIELDS = {
    "taskType",
    "taskUUID",
    "model",
    "positivePrompt",
    "width",
    "height",
    "numberResults",
    "outputType",
    "outputFormat",
    "outputQuality",
    "providerSettings",
    "inputs",
}
"""Request fields `ImageInferenceRequest` can express."""

FIELDS_WE_ADD = {"numberResults", "outputType", "outputFormat", "outputQuality", "includeCost", "deliveryMethod"}


def extract_json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object embedded in free text (the seed pages mix prose and JSON)."""
    decoder = json.JSONDecoder()
    objects: list[dict[str, Any]] = []
    position = 0
    while (start := text.find("{", position)) != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(value, dict):
            objects.append(value)
        position = end
    return objects


def seed_objects() -> dict[str, list[dict[str, Any]]]:
    return {name: extract_json_objects((SEEDS / name).read_text(encoding="utf-8")) for name in SEED_REQUEST_COUNTS}


def seed_requests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, obj)
        for name, objects in seed_objects().items()
        for obj in objects
        if obj.get("taskType") == "imageInference" and "positivePrompt" in obj
    ]


def seed_responses() -> list[tuple[str, dict[str, Any]]]:
    return [(name, obj) for name, objects in seed_objects().items() for obj in objects if "imageUUID" in obj]


def seed_param(name: str, seed: dict[str, Any]) -> Any:
    return pytest.param(name, seed, id=f"seed{name[:3]}-{seed['taskUUID'][:8]}")


def request_from_seed(seed: dict[str, Any]) -> ImageInferenceRequest:
    """Express a seed request with our model; Runware's defaults fill what the seed leaves out."""
    unsupported = set(seed) - SUPPORTED_SEED_FIELDS
    if unsupported:
        pytest.fail(
            f"seed {seed['taskUUID']} uses fields ImageInferenceRequest does not support: {sorted(unsupported)}"
        )
    openai = seed.get("providerSettings", {}).get("openai", {})
    unsupported_openai = set(openai) - {"quality", "background"}
    if unsupported_openai:
        pytest.fail(
            f"seed {seed['taskUUID']} uses providerSettings.openai fields we lack: {sorted(unsupported_openai)}"
        )
    unsupported_inputs = set(seed.get("inputs", {})) - {"referenceImages"}
    if unsupported_inputs:
        pytest.fail(f"seed {seed['taskUUID']} uses inputs we lack: {sorted(unsupported_inputs)}")
    return ImageInferenceRequest(
        model=seed["model"],
        prompt=seed["positivePrompt"],
        size=Size.from_dimensions(seed["width"], seed["height"]),
        quality=openai.get("quality", "auto"),
        background=openai.get("background", "auto"),
        count=seed.get("numberResults", 1),
        format=seed.get("outputFormat", "JPG"),  # Runware's default output format
        reference_images=seed.get("inputs", {}).get("referenceImages", []),
        output_quality=seed.get("outputQuality", 95),
        output_type=seed.get("outputType", "URL"),
    )


# ------------------------------------------------------------------------------------------------ the seeds


def test_seed_files_hold_the_expected_number_of_request_examples() -> None:
    """Every seed file yields its request examples and one response per request (16 in all, 12 distinct)."""
    requests = seed_requests()
    responses = seed_responses()
    for name, expected in SEED_REQUEST_COUNTS.items():
        assert sum(1 for seed_name, _ in requests if seed_name == name) == expected, name
        assert sum(1 for seed_name, _ in responses if seed_name == name) == expected, name
    assert len({seed["taskUUID"] for _, seed in requests}) == 12


@pytest.mark.parametrize(("name", "seed"), [seed_param(name, seed) for name, seed in seed_requests()])
def test_seed_request_is_expressible_and_serialises_to_the_same_fields(name: str, seed: dict[str, Any]) -> None:
    """Each seed request can be built with our model and serialises to the seed's fields plus only our additions."""
    if seed.get("providerSettings", {}).get("openai", {}).get("background") == "transparent" and (
        seed.get("outputFormat", "JPG") == "JPG"
    ):
        # Seed 004 "sticker sheet": transparent with Runware's default JPG came back as .jpg (alpha lost). Our model
        # refuses that combination on purpose, so the example is expressed with PNG, which is what it wanted.
        with pytest.raises(ImageRequestError, match="transparent background needs png or webp"):
            request_from_seed(seed)
        seed_as_sent = {**seed, "outputFormat": "PNG"}
    else:
        seed_as_sent = seed
    request = request_from_seed(seed_as_sent)
    payload = request.to_payload(seed["taskUUID"])

    assert set(seed) <= set(payload)
    for key, value in seed_as_sent.items():
        assert payload[key] == value, f"{name} {key}"
    assert set(payload) - set(seed) <= FIELDS_WE_ADD
    assert payload["includeCost"] is True
    assert payload["deliveryMethod"] == "async"
    assert payload["outputFormat"] in ("JPG", "PNG", "WEBP")


@pytest.mark.parametrize(("name", "seed"), [seed_param(name, seed) for name, seed in seed_responses()])
def test_seed_response_parses_with_cost_in_micro_dollars(name: str, seed: dict[str, Any]) -> None:
    """Each seed response parses into an ImageResult whose cost is exact integer micro-dollars."""
    [result] = image_results(parse_items([seed]))
    assert result.task_uuid == seed["taskUUID"]
    assert result.image_uuid == seed["imageUUID"]
    assert result.url == seed["imageURL"]
    assert result.cost_micros == int(Decimal(str(seed["cost"])) * 1_000_000)


def test_seed_costs_convert_exactly() -> None:
    """The seeds' float costs become the exact micro-dollar amounts (0.25 -> 250000, 0.19961 -> 199610)."""
    costs = {seed["cost"]: image_results(parse_items([seed]))[0].cost_micros for _, seed in seed_responses()}
    assert costs == {
        0.25: 250_000,
        0.015: 15_000,
        0.011: 11_000,
        0.19961: 199_610,
        0.20312: 203_120,
        0.13392: 133_920,
        0.19984: 199_840,
    }


def test_every_seed_response_answers_a_seed_request() -> None:
    """Responses and requests pair up by taskUUID."""
    assert {seed["taskUUID"] for _, seed in seed_responses()} == {seed["taskUUID"] for _, seed in seed_requests()}


# ------------------------------------------------------------------------------------------------ requests


def test_payload_has_every_wire_field_in_camel_case() -> None:
    """A full request serialises to Runware's camelCase task with cost and async delivery always on."""
    request = ImageInferenceRequest(
        model=ModelName.GPT_IMAGE_1_5,
        prompt="a glass lighthouse",
        size=Size.PORTRAIT,
        quality=Quality.MEDIUM,
        background=Background.TRANSPARENT,
        count=2,
        format=OutputFormat.WEBP,
        reference_images=("2c91d5eb-995a-4a87-a20b-1270e1b1891e",),
    )
    assert request.to_payload("3d582d50-3e2b-47b2-bd02-839f962a7b38") == {
        "taskType": "imageInference",
        "taskUUID": "3d582d50-3e2b-47b2-bd02-839f962a7b38",
        "model": "openai:4@1",
        "positivePrompt": "a glass lighthouse",
        "width": 1024,
        "height": 1536,
        "numberResults": 2,
        "outputType": "URL",
        "outputFormat": "WEBP",
        "outputQuality": 95,
        "includeCost": True,
        "deliveryMethod": "async",
        "providerSettings": {"openai": {"quality": "medium", "background": "transparent"}},
        "inputs": {"referenceImages": ["2c91d5eb-995a-4a87-a20b-1270e1b1891e"]},
    }


def test_payload_omits_inputs_without_references() -> None:
    """`inputs` is only sent when there are reference images."""
    payload = ImageInferenceRequest(model="gpt-image-1", prompt="a fox").to_payload("t")
    assert "inputs" not in payload
    assert "referenceImages" not in payload


def test_plain_strings_and_air_ids_are_accepted() -> None:
    """Plain strings (any case) and AIR ids build the same request as the enums."""
    request = ImageInferenceRequest(
        model="openai:1@2", prompt="a fox", size="1536X1024", quality="HIGH", background="Opaque", format="jpeg"
    )
    assert request.model is ModelName.GPT_IMAGE_1_MINI
    assert request.size is Size.LANDSCAPE
    assert request.quality is Quality.HIGH
    assert request.background is Background.OPAQUE
    assert request.format is OutputFormat.JPG
    assert request.air == "openai:1@2"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"model": "dall-e-3"}, "model", "unknown model 'dall-e-3'"),
        ({"size": "512x512"}, "size", "size '512x512' is not offered; choose 1024x1024, 1536x1024 or 1024x1536"),
        ({"size": "1024x1024 "}, None, None),
        ({"prompt": ""}, "prompt", "the prompt is empty"),
        ({"prompt": "   "}, "prompt", "the prompt is empty"),
        ({"prompt": "x" * 32_000}, None, None),
        ({"prompt": "x" * 32_001}, "prompt", "32,001 characters; GPT Image 1 Mini accepts at most 32,000"),
        ({"model": "gpt-image-1", "prompt": "x"}, None, None),
        ({"model": "gpt-image-1.5", "prompt": "x"}, "prompt", "GPT Image 1.5 needs a prompt of at least 2 characters"),
        ({"model": "gpt-image-1.5", "prompt": "xy"}, None, None),
        ({"reference_images": ["ref"] * 16}, None, None),
        ({"reference_images": ["ref"] * 17}, "reference_images", "17 reference images given"),
        ({"reference_images": [""]}, "reference_images", "non-empty"),
        ({"count": 0}, "count", "count must be between 1 and 4"),
        ({"count": 5}, "count", "count must be between 1 and 4"),
        ({"count": "two"}, "count", "count: input should be a valid integer"),
        ({"quality": "ultra"}, "quality", "quality 'ultra' is not offered"),
        ({"background": "green"}, "background", "background 'green' is not offered"),
        ({"format": "gif"}, "format", "format 'gif' is not offered"),
        ({"background": "transparent", "format": "jpg"}, "format", "transparent background needs png or webp"),
        ({"background": "transparent", "format": "png"}, None, None),
        ({"background": "transparent", "format": "webp"}, None, None),
        ({"output_quality": 100}, "output_quality", "output quality: input should be less than or equal to 99"),
        ({"seed": 42}, "seed", "seed: extra inputs are not permitted"),
    ],
)
def test_model_rules_are_enforced_when_the_request_is_built(
    values: dict[str, Any], field: str | None, message: str | None
) -> None:
    """Every rule is checked at construction; a broken one raises ImageRequestError naming the field."""
    arguments: dict[str, Any] = {"model": "gpt-image-1-mini", "prompt": "a red fox", **values}
    if field is None:
        ImageInferenceRequest(**arguments)
        return
    with pytest.raises(ImageRequestError) as caught:
        ImageInferenceRequest(**arguments)
    assert isinstance(caught.value, InvalidRequestError)
    assert caught.value.field == field
    assert message is not None and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_requests_are_immutable() -> None:
    """A built request cannot be changed behind the validation."""
    request = ImageInferenceRequest(model="gpt-image-1", prompt="a fox")
    with pytest.raises(ValueError, match="frozen"):
        request.count = 9  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ results


def test_wire_items_keep_unknown_fields_and_free_form_codes() -> None:
    """Loose parsing: extra fields survive and any error code string is accepted."""
    [item] = parse_items(
        {
            "taskType": "imageInference",
            "taskUUID": "t",
            "status": "error",
            "brandNewField": [1, 2],
            "error": {"code": "someCodeNobodyHasSeen", "message": "m", "parameter": ["width", "height"], "min": 1},
        }
    )
    assert item.failed
    assert not item.is_image
    assert item.error is not None
    assert item.error.code == "someCodeNobodyHasSeen"
    assert item.error.parameter == ["width", "height"]
    assert item.model_extra == {"brandNewField": [1, 2]}


def test_results_are_deduplicated_by_image_uuid_and_filtered_by_task() -> None:
    """Repeated items (cumulative polls) count once; other tasks' items and pending markers are ignored."""
    items = parse_items(
        [
            {"taskUUID": "t", "imageUUID": "a", "imageURL": "https://x/a.png", "cost": 0.011, "status": "success"},
            {"taskUUID": "t", "imageUUID": "a", "imageURL": "https://x/a.png", "cost": 0.011, "status": "success"},
            {"taskUUID": "t", "imageUUID": "b", "imageBase64Data": "iVBORw0KGgo=", "cost": 0.011},
            {"taskUUID": "other", "imageUUID": "c", "imageURL": "https://x/c.png"},
            {"taskUUID": "t", "status": "processing"},
        ]
    )
    results = image_results(items, task_uuid="t")
    assert [result.image_uuid for result in results] == ["a", "b"]
    assert total_cost_micros(results) == 22_000
    assert items[-1].pending


def test_inline_image_forms_decode_to_bytes() -> None:
    """Base64 and data-URI results decode to the same bytes; URL results have none inline."""
    raw = b"\x89PNG\r\n\x1a\n"
    as_base64 = ImageResult(task_uuid="t", image_uuid="a", base64_data="iVBORw0KGgo=")
    as_data_uri = ImageResult(task_uuid="t", image_uuid="b", data_uri="data:image/png;base64,iVBORw0KGgo=")
    as_url = ImageResult(task_uuid="t", image_uuid="c", url="https://im.runware.ai/c.png")
    assert as_base64.inline_bytes() == raw
    assert as_data_uri.inline_bytes() == raw
    assert as_url.inline_bytes() is None


@pytest.mark.parametrize(
    ("cost", "micros"),
    [(0.25, 250_000), (0.19961, 199_610), ("0.0027", 2_700), (0, 0), (None, None), (0.1 + 0.2, 300_000)],
)
def test_cost_is_converted_once_through_decimal_str(cost: Any, micros: int | None) -> None:
    """Float dollars become exact micro-dollars via Decimal(str(cost)); no cost stays None."""
    assert cost_to_micros(cost) == micros


@pytest.mark.parametrize("cost", ["free", "", "NaN", float("inf"), -0.011, "1e400", True])
def test_an_unusable_cost_counts_as_not_reported(cost: Any) -> None:
    """Garbage in `cost` never escapes as an exception: the paid image is kept, and its cost is unknown (None)."""
    assert cost_to_micros(cost) is None
    [result] = image_results(parse_items([{"taskUUID": "t", "imageUUID": "a", "imageURL": "u", "cost": cost}]))
    assert result.image_uuid == "a" and result.cost_micros is None


def test_result_without_reported_cost_has_no_total() -> None:
    """A task whose items carry no cost has total None, not zero."""
    results = image_results(parse_items([{"taskUUID": "t", "imageUUID": "a", "imageURL": "u"}]))
    assert results[0].cost_micros is None
    assert total_cost_micros(results) is None


def test_a_task_where_one_image_lacks_a_cost_has_no_total() -> None:
    """One image with a cost and one without: the total is None (a partial sum would under-charge), not $0.011."""
    results = image_results(
        parse_items(
            [
                {"taskUUID": "t", "imageUUID": "a", "imageURL": "u", "cost": 0.011},
                {"taskUUID": "t", "imageUUID": "b", "imageURL": "v"},
            ]
        )
    )
    assert [result.cost_micros for result in results] == [11_000, None]
    assert total_cost_micros(results) is None
    assert total_cost_micros(results[:1]) == 11_000
    assert total_cost_micros([]) is None


def test_wire_item_accepts_nsfw_and_seed() -> None:
    """Optional result fields are mapped to snake_case."""
    item = WireItem.model_validate(
        {"taskUUID": "t", "imageUUID": "a", "imageURL": "u", "seed": 7, "NSFWContent": False, "cost": 0.015}
    )
    result = ImageResult.from_wire(item)
    assert (result.seed, result.nsfw, result.cost_micros) == (7, False, 15_000)
