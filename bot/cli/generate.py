"""`atelier generate PROMPT`: one generation from the terminal, no Discord; prints the saved paths and the cost."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.catalog import MAX_COUNT, Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.images import InvalidImageError, NormalisedImage, decode_image, normalise
from bot.log import setup_logging
from bot.money import format_usd
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.runware.models import GenerationResult, ImageInferenceRequest, ImageRequestError, ImageResult
from bot.settings import Settings, load_settings

log = logging.getLogger(__name__)

NAME = "generate"
HELP = "generate images from the terminal (no Discord) and save them"


class _InputError(Exception):
    """Bad command-line input, refused before any request; `str()` is the one line printed."""


def _choices(values: Any) -> str:
    return ", ".join(str(value) for value in values)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `generate`; option defaults come from the config file's [defaults] at run time."""
    parser.add_argument("prompt", help="what to draw (GPT Image 1.5 needs at least 2 characters; at most 32,000)")
    parser.add_argument("--model", help=f"{_choices(ModelName)} (default: [defaults] model in the config)")
    parser.add_argument("--size", help=f"{_choices(Size)} (default: [defaults] size)")
    parser.add_argument("--quality", help=f"{_choices(Quality)} (default: [defaults] quality)")
    parser.add_argument("--background", help=f"{_choices(Background)} (transparent needs png or webp)")
    parser.add_argument(
        "--count",
        type=int,
        help=f"number of images, 1-{MAX_COUNT} within [limits] max_count (default: [defaults] count)",
    )
    parser.add_argument("--format", help=f"{_choices(OutputFormat)} (default: [defaults] format)")
    parser.add_argument(
        "--reference",
        nargs="+",
        action="extend",
        type=Path,
        default=[],
        metavar="FILE",
        help="reference image files (PNG, JPEG, WEBP or GIF; up to 16)",
    )
    parser.add_argument("--out", type=Path, default=Path("out"), help="directory for the images (default: out/)")


def run(args: argparse.Namespace) -> int:
    """Run one generation from the terminal: print each saved path, then the cost. `SettingsError` propagates."""
    settings = load_settings()
    api_key = settings.require_runware_key()
    setup_logging(settings.log_level, secrets=[api_key])
    try:
        request = _build_request(args, settings, [str(path) for path in args.reference])
        references = [_load_reference(path, settings) for path in args.reference]
    except (_InputError, InvalidRequestError) as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        outcome = asyncio.run(_generate(request, references, settings, api_key))
    except RunwareError as exc:
        log.debug("generation failed: %s", exc)
        print(f"atelier: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILED
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for number, (image, data) in enumerate(outcome.files, start=1):
            path = args.out / f"{outcome.result.task_uuid[:8]}-{number}.{_extension(data, image, request)}"
            path.write_bytes(data)
            print(path, flush=True)
    except OSError as exc:
        print(f"atelier: cannot save the images in {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    cost = outcome.result.cost_micros
    print(f"cost: {'unknown (Runware did not report it for every image)' if cost is None else format_usd(cost)}")
    return EXIT_OK


def _build_request(args: argparse.Namespace, settings: Settings, references: list[str]) -> ImageInferenceRequest:
    defaults = settings.app.defaults
    limits = settings.app.limits
    # The config's [limits] may be stricter than the models' own rules, which ImageInferenceRequest checks.
    if len(args.prompt) > limits.max_prompt_chars:
        raise ImageRequestError(
            "prompt",
            f"the prompt has {len(args.prompt):,} characters; the limit is {limits.max_prompt_chars:,}",
        )
    count = defaults.count if args.count is None else args.count
    if count > limits.max_count:
        raise ImageRequestError("count", f"count must be between 1 and {limits.max_count} (got {count})")
    return ImageInferenceRequest(
        model=args.model or defaults.model,
        prompt=args.prompt,
        size=args.size or defaults.size,
        quality=args.quality or defaults.quality,
        background=args.background or defaults.background,
        count=count,
        format=args.format or defaults.format,
        reference_images=tuple(references),
        output_quality=settings.app.runware.output_quality,
    )


def _load_reference(path: Path, settings: Settings) -> NormalisedImage:
    limits = settings.app.limits
    try:
        size = path.stat().st_size
        if size > limits.max_reference_bytes:
            raise _InputError(
                f"reference {path}: {size:,} bytes is more than the {limits.max_reference_bytes:,} allowed"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _InputError(f"reference {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        return normalise(data, max_side=limits.max_reference_side)
    except InvalidImageError as exc:
        raise _InputError(f"reference {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Outcome:
    result: GenerationResult
    files: list[tuple[ImageResult, bytes]]


async def _generate(
    request: ImageInferenceRequest, references: list[NormalisedImage], settings: Settings, api_key: str
) -> _Outcome:
    """Upload the references, generate, and download every image, all over one session."""
    async with aiohttp.ClientSession() as session:
        client = RunwareClient(session, api_key=api_key, api_url=settings.runware_api_url, config=settings.app.runware)
        if references:
            uploaded = [await client.upload_image(image.data, image.mime) for image in references]
            # Validated again: only the reference strings change (local paths become Runware image UUIDs).
            request = ImageInferenceRequest(
                **{**request.model_dump(), "reference_images": tuple(item.image_uuid for item in uploaded)}
            )
        result = await client.generate(request)
        files = [(image, await client.download(image)) for image in result.images]
    return _Outcome(result=result, files=files)


def _extension(data: bytes, image: ImageResult, request: ImageInferenceRequest) -> str:
    """Name the file after what the bytes are, falling back to the requested format."""
    try:
        return decode_image(data).extension
    except InvalidImageError:
        log.warning("image %s of task %s does not decode as an image", image.image_uuid, image.task_uuid)
        return request.format.extension
