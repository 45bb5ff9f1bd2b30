"""The fake Runbase's checks of a create body (reference §2-4): model, input keys and values, reference URLs.

Unknown input keys are refused with 400 `invalid_input` (the reference assumes so: "send only the listed keys").
References are fetched by the fake itself, as Runbase does; one that cannot be fetched, is not an image, or is over
4 MB, or more of them than the model takes, is `invalid_input` before any money moves.
"""

from __future__ import annotations

import io
from typing import Any

import aiohttp
from PIL import Image, UnidentifiedImageError

from fakes.runbase.catalog import MAX_PROMPT_CHARS, MAX_REFERENCE_BYTES, MODELS, ModelSpec
from fakes.runbase.faults import RefusalError

__all__ = ["fetch_references", "validate_create"]


def validate_create(body: Any) -> tuple[ModelSpec, dict[str, Any]]:
    """The model and the inputs (defaults filled in) of a parsed create body, or `RefusalError`."""
    if not isinstance(body, dict):
        raise RefusalError("invalid_json", "The request body must be a JSON object.")
    model_id = body.get("model")
    if model_id is None or model_id == "":
        raise RefusalError("missing_model")
    if not isinstance(model_id, str) or model_id not in MODELS:
        raise RefusalError("model_not_found", f"Model not found: {model_id!r}.")
    spec = MODELS[model_id]
    inputs = body.get("input")
    if inputs is None:
        raise RefusalError("missing_input")
    if not isinstance(inputs, dict):
        raise RefusalError("invalid_input", "'input' must be an object.")
    unknown = sorted(set(inputs) - spec.input_keys)
    if unknown:
        raise RefusalError("invalid_input", f"Unknown input field(s) for {model_id}: {', '.join(unknown)}.")
    prompt = inputs.get("prompt")
    if not isinstance(prompt, str) or not 1 <= len(prompt) <= MAX_PROMPT_CHARS:
        raise RefusalError("invalid_input", f"'prompt' must be a string of 1 to {MAX_PROMPT_CHARS} characters.")
    checked: dict[str, Any] = {"prompt": prompt, "aspect_ratio": "1:1", **(spec.defaults or {})}
    choices = {"aspect_ratio": spec.aspect_ratios, **(spec.options or {})}
    for name, allowed in choices.items():
        if name in inputs:
            if inputs[name] not in allowed:
                raise RefusalError("invalid_input", f"'{name}' must be one of {', '.join(allowed)}.")
            checked[name] = inputs[name]
    if "image_urls" in inputs:
        urls = inputs["image_urls"]
        if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
            raise RefusalError("invalid_input", "'image_urls' must be a list of URLs.")
        if len(urls) > spec.max_references:
            raise RefusalError("invalid_input", f"At most {spec.max_references} images in 'image_urls' for {model_id}.")
        for url in urls:
            if not url.lower().startswith(("http://", "https://")):
                raise RefusalError("invalid_input", "Each of 'image_urls' must be an http(s) URL.")
        checked["image_urls"] = list(urls)
    return spec, checked


async def fetch_references(session: aiohttp.ClientSession, urls: list[str], fetched: list[str]) -> None:
    """Download each reference as Runbase would: `RefusalError` for one unreachable, too big or not an image."""
    for index, url in enumerate(urls):
        fetched.append(url)
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    raise RefusalError(
                        "invalid_input", f"image_urls[{index}] could not be fetched (HTTP {response.status})."
                    )
                data = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > MAX_REFERENCE_BYTES:
                        break
        except (aiohttp.ClientError, TimeoutError):
            raise RefusalError("invalid_input", f"image_urls[{index}] could not be fetched.") from None
        if len(data) > MAX_REFERENCE_BYTES:
            raise RefusalError("invalid_input", f"image_urls[{index}] is larger than 4 MB.")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise RefusalError("invalid_input", f"image_urls[{index}] is not an image.") from None
