"""Validation of imageInference tasks for the fake Runware, by GPT Image's rules (runware-api.md §3).

`validate_inference` refuses what Runware refuses, with the same error codes and `parameter` paths: unknown keys,
missing or bad model, prompt length per model, the three sizes, numberResults 1-20, output type/format/quality,
includeCost, delivery method, webhook/upload URLs, ttl, safety, `providerSettings.openai` (quality, background)
and `inputs.referenceImages` (1-16 images: an imageUUID the fake knows, an http(s) URL, a data URI or base64).
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Literal

from bot.catalog import AIR_TO_MODEL, MODEL_SPECS, Quality
from fakes.runware.faults import TaskError
from fakes.runware.images import FORMATS, decode_image

__all__ = ["OUTPUT_TYPES", "InferenceSpec", "is_uuid", "validate_inference"]

SIZES = frozenset({(1024, 1024), (1536, 1024), (1024, 1536)})
OUTPUT_TYPES = {"URL": "imageURL", "base64Data": "imageBase64Data", "dataURI": "imageDataURI"}
QUALITIES = frozenset(quality.value for quality in Quality)
BACKGROUNDS = frozenset({"auto", "opaque", "transparent"})
INFERENCE_KEYS = frozenset(
    {
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
        "includeCost",
        "deliveryMethod",
        "webhookURL",
        "uploadEndpoint",
        "ttl",
        "safety",
        "inputs",
        "providerSettings",
    }
)


@dataclass(frozen=True, slots=True)
class InferenceSpec:
    """A validated imageInference task."""

    model: str
    prompt: str
    width: int
    height: int
    number_results: int
    output_type: str
    output_format: str
    output_quality: int
    include_cost: bool
    delivery: Literal["sync", "async"]
    quality: str
    background: str
    references: tuple[str, ...]
    check_content: bool = False
    """`safety.checkContent`: each result then carries `NSFWContent`."""


def is_uuid(value: Any) -> bool:
    """True for a string that parses as a UUID."""
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def validate_inference(task: dict[str, Any], images: Container[str]) -> InferenceSpec:
    """Check an imageInference task as Runware does (GPT Image rules); `images` are the imageUUIDs known so far."""
    task_uuid = task.get("taskUUID")
    if task_uuid is None:
        raise TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
    if not is_uuid(task_uuid):
        raise TaskError("invalidTaskUUID", "taskUUID must be a UUID (v4 recommended).", "taskUUID")
    for key in task:
        if key not in INFERENCE_KEYS:
            raise TaskError("unknownParameter", f"Unknown parameter '{key}' for imageInference.", key)

    model = task.get("model")
    if model is None:
        raise TaskError("missingParameter", "Missing required parameter 'model'.", "model")
    if not isinstance(model, str) or model not in AIR_TO_MODEL:
        raise TaskError(
            "invalidModel", f"Invalid model {model!r}; supported: {', '.join(sorted(AIR_TO_MODEL))}.", "model"
        )
    model_spec = MODEL_SPECS[AIR_TO_MODEL[model]]

    prompt = task.get("positivePrompt")
    if prompt is None:
        raise TaskError("missingParameter", "Missing required parameter 'positivePrompt'.", "positivePrompt")
    if not isinstance(prompt, str) or not model_spec.min_prompt_chars <= len(prompt) <= model_spec.max_prompt_chars:
        raise TaskError(
            "invalidPositivePrompt",
            f"positivePrompt must be a string of {model_spec.min_prompt_chars} to "
            f"{model_spec.max_prompt_chars} characters for {model}.",
            "positivePrompt",
        )

    width, height = _validate_dimensions(task)

    number_results = task.get("numberResults", 1)
    if not is_int(number_results) or not 1 <= number_results <= 20:
        raise TaskError("invalidNumberResults", "numberResults must be an integer from 1 to 20.", "numberResults")
    output_type = task.get("outputType", "URL")
    if output_type not in OUTPUT_TYPES:
        raise TaskError("invalidOutputType", "outputType must be one of URL, base64Data, dataURI.", "outputType")
    output_format = task.get("outputFormat", "JPG")
    if output_format not in FORMATS:
        raise TaskError("invalidOutputFormat", "outputFormat must be one of JPG, PNG, WEBP.", "outputFormat")
    output_quality = task.get("outputQuality", 95)
    if not is_int(output_quality) or not 20 <= output_quality <= 99:
        raise TaskError("invalidOutputQuality", "outputQuality must be an integer from 20 to 99.", "outputQuality")
    include_cost = task.get("includeCost", False)
    if not isinstance(include_cost, bool):
        raise TaskError("invalidIncludeCost", "includeCost must be a boolean.", "includeCost")
    delivery = task.get("deliveryMethod", "sync")
    if delivery not in ("sync", "async"):
        raise TaskError("invalidDeliveryMethod", "deliveryMethod must be 'sync' or 'async'.", "deliveryMethod")
    for key in ("webhookURL", "uploadEndpoint"):
        value = task.get(key)
        if value is not None and not (isinstance(value, str) and value.startswith(("http://", "https://"))):
            raise TaskError(f"invalid{key[0].upper()}{key[1:]}", f"{key} must be an http(s) URL.", key)
    ttl = task.get("ttl")
    if ttl is not None and (not is_int(ttl) or ttl < 60):
        raise TaskError("invalidTtl", "ttl must be an integer of at least 60 seconds.", "ttl")
    check_content = _validate_safety(task.get("safety"))
    quality, background = _validate_provider_settings(task.get("providerSettings"))
    references = _validate_inputs(task.get("inputs"), images)
    return InferenceSpec(
        model=model,
        prompt=prompt,
        width=width,
        height=height,
        number_results=number_results,
        output_type=output_type,
        output_format=output_format,
        output_quality=output_quality,
        include_cost=include_cost,
        delivery=delivery,
        quality=quality,
        background=background,
        references=references,
        check_content=check_content,
    )


def _validate_dimensions(task: dict[str, Any]) -> tuple[int, int]:
    width, height = task.get("width"), task.get("height")
    if width is None and height is None:
        return 1024, 1024
    if width is None:
        raise TaskError("missingParameter", "width and height must be given together.", "width")
    if height is None:
        raise TaskError("missingParameter", "width and height must be given together.", "height")
    if not is_int(width) or width not in (1024, 1536):
        raise TaskError("invalidWidth", "width must be 1024 or 1536.", "width")
    if not is_int(height) or height not in (1024, 1536):
        raise TaskError("invalidHeight", "height must be 1024 or 1536.", "height")
    if (width, height) not in SIZES:
        raise TaskError(
            "invalidDimensions",
            f"{width}x{height} is not supported; use 1024x1024, 1536x1024 or 1024x1536.",
            ["width", "height"],
        )
    return width, height


def _validate_safety(safety: Any) -> bool:
    """Check the `safety` object as Runware does; return whether the output is to be checked (`checkContent`)."""
    if safety is None:
        return False
    if not isinstance(safety, dict):
        raise TaskError("invalidSafety", "safety must be an object.", "safety")
    for key, value in safety.items():
        if key == "checkContent" and not isinstance(value, bool):
            raise TaskError("invalidCheckContent", "safety.checkContent must be a boolean.", "safety.checkContent")
        if key == "mode" and not isinstance(value, str):
            raise TaskError("invalidMode", "safety.mode must be a string.", "safety.mode")
        if key not in ("checkContent", "mode"):
            raise TaskError("unknownParameter", f"Unknown parameter 'safety.{key}'.", f"safety.{key}")
    return safety.get("checkContent") is True


def _validate_provider_settings(settings: Any) -> tuple[str, str]:
    if settings is None:
        return "auto", "auto"
    if not isinstance(settings, dict):
        raise TaskError("invalidProviderSettings", "providerSettings must be an object.", "providerSettings")
    for provider in settings:
        if provider != "openai":
            raise TaskError(
                "unknownProviderSettingsProvider",
                f"Unknown provider '{provider}' in providerSettings; this model takes 'openai'.",
                f"providerSettings.{provider}",
            )
    openai = settings.get("openai", {})
    if not isinstance(openai, dict):
        raise TaskError(
            "invalidProviderSettings", "providerSettings.openai must be an object.", "providerSettings.openai"
        )
    for key in openai:
        if key not in ("quality", "background"):
            raise TaskError(
                "unknownParameter",
                f"Unknown parameter 'providerSettings.openai.{key}'.",
                f"providerSettings.openai.{key}",
            )
    quality = openai.get("quality", "auto")
    if quality not in QUALITIES:
        raise TaskError(
            "invalidQuality",
            "providerSettings.openai.quality must be one of auto, high, medium, low.",
            "providerSettings.openai.quality",
        )
    background = openai.get("background", "auto")
    if background not in BACKGROUNDS:
        raise TaskError(
            "invalidBackground",
            "providerSettings.openai.background must be one of auto, opaque, transparent.",
            "providerSettings.openai.background",
        )
    return quality, background


def _validate_inputs(inputs: Any, images: Container[str]) -> tuple[str, ...]:
    if inputs is None:
        return ()
    if not isinstance(inputs, dict):
        raise TaskError("invalidInputs", "inputs must be an object.", "inputs")
    for key in inputs:
        if key != "referenceImages":
            raise TaskError("unknownParameter", f"Unknown parameter 'inputs.{key}'.", f"inputs.{key}")
    references = inputs.get("referenceImages")
    parameter = "inputs.referenceImages"
    if not isinstance(references, list) or not 1 <= len(references) <= 16:
        raise TaskError("invalidReferenceImages", "inputs.referenceImages must hold 1 to 16 images.", parameter)
    for index, reference in enumerate(references):
        problem = _reference_problem(reference, images)
        if problem is not None:
            raise TaskError("invalidReferenceImages", f"inputs.referenceImages[{index}]: {problem}", parameter)
    return tuple(references)


def _reference_problem(reference: Any, images: Container[str]) -> str | None:
    if not isinstance(reference, str) or not reference:
        return "must be a non-empty string (imageUUID, URL, data URI or base64)."
    if reference.startswith(("http://", "https://")):
        return None
    if is_uuid(reference):
        return None if reference in images else f"unknown imageUUID {reference}."
    if decode_image(reference) is None:
        return "is not a decodable image (data URI or base64)."
    return None
