"""`atelier generate PROMPT`: one generation from the terminal, no Discord; prints the saved paths and the cost."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import aiohttp

from bot.catalog import MAX_COUNT, Background, ModelName, OutputFormat, ProviderName, Quality, Resolution, Size
from bot.cli import generate_runbase
from bot.cli.operator import OperatorAccount, operator_message, refused_for_certain, unknown_outcome_message
from bot.cli.output import Claim, OutputError, claim_files, save_elsewhere
from bot.errors import InvalidRequestError
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.images import InvalidImageError, NormalisedImage, decode_image, normalise
from bot.log import setup_logging
from bot.money import format_usd
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.runware.models import (
    GenerationResult,
    ImageInferenceRequest,
    ImageRequestError,
    ImageResult,
    total_cost_micros,
)
from bot.settings import Settings, load_settings
from bot.storage.database import Database, DatabaseError

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
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a reference image (PNG, JPEG, WEBP or GIF); repeat the option for more: --reference a.png --reference "
        "b.png (up to 16)",
    )
    parser.add_argument(
        "--resolution",
        choices=[resolution.value for resolution in Resolution],
        help="GPT Image 2 on Runbase only (default: 1K)",
    )
    parser.add_argument(
        "--provider",
        choices=[provider.value for provider in ProviderName],
        help="the provider to generate on (default: the model's first configured route: Runware when its key is set)",
    )
    parser.add_argument("--out", type=Path, help="folder for the images (default: [paths] output in the config, `out`)")


def run(args: argparse.Namespace) -> int:
    """Run one generation from the terminal: print each saved path, then what was paid. `SettingsError` propagates.

    Everything that can be checked locally is checked before anything is sent: the options, the references, and that
    every output file can be written (its name is claimed). Then the estimate is held in the operator's ledger
    account, the images are generated and downloaded, saved, and the hold is settled to the cost. A failure releases
    the hold only when Runware certainly did not run the task (`refused_for_certain`); an unknown outcome is settled
    at the estimate and said so.
    """
    settings = load_settings()
    # The terminal shows the result lines; INFO logs (opening and migrating the database) would bury them.
    setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, secrets=settings.secret_values())
    out: Path = args.out if args.out is not None else settings.app.paths.output
    if _provider(args, settings) is ProviderName.RUNBASE:
        return generate_runbase.run(args, settings, out)
    if args.resolution is not None:
        print(
            "atelier: --resolution is for GPT Image 2, which only Runbase serves: add --provider runbase",
            file=sys.stderr,
        )
        return EXIT_USAGE
    api_key = settings.require_runware_key()
    try:
        request = _build_request(args, settings, [str(path) for path in args.reference])
        references = [_load_reference(path, settings) for path in args.reference]
        task_uuid = RunwareClient.new_task_uuid()
        claim = claim_files(out, task_uuid[:8], request.format.extension, request.count)
    except (_InputError, InvalidRequestError, OutputError) as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_generate_and_save(request, references, settings, api_key, task_uuid, claim))
    finally:
        claim.discard()


def _provider(args: argparse.Namespace, settings: Settings) -> ProviderName:
    """Return the provider asked for, else the model's first configured route (`[providers]` order).

    Runware when no configured provider serves the model (or it is not a model): its checks then say what is wrong.
    """
    if args.provider is not None:
        return ProviderName(args.provider)
    try:
        model = ModelName(args.model or settings.app.defaults.model)
    except ValueError:
        return ProviderName.RUNWARE
    routes = settings.routing().routes(model)
    return routes[0].provider if routes else ProviderName.RUNWARE


async def _generate_and_save(
    request: ImageInferenceRequest,
    references: list[NormalisedImage],
    settings: Settings,
    api_key: str,
    task_uuid: str,
    claim: Claim,
) -> int:
    """Hold, generate, settle (release only a certain refusal), download and save over one session; the exit status."""
    try:
        database = await Database.open(settings.database_target)
    except DatabaseError as exc:
        print(f"atelier: {exc}; nothing was sent", file=sys.stderr)
        return EXIT_FAILED
    async with database, aiohttp.ClientSession() as session:
        client = RunwareClient(session, api_key=api_key, api_url=settings.runware_api_url, config=settings.app.runware)
        account = OperatorAccount(database, settings.app)
        hold = await account.reserve(request, len(references))
        try:
            request = await _upload_references(client, request, references)
        except BaseException as exc:
            await account.release(hold)  # no generation was sent (an upload costs nothing)
            if not isinstance(exc, RunwareError):
                raise
            log.debug("upload failed: %s", exc)
            print(f"atelier: {operator_message(exc)} Nothing was spent (the hold was released).", file=sys.stderr)
            return EXIT_FAILED
        accepted = False
        try:
            early = await client.submit(request, task_uuid)
            accepted = True
            images = await client.wait(task_uuid, request.count, known=early)
        except BaseException as exc:
            log.debug("generation failed: %s", exc)
            if isinstance(exc, RunwareError) and refused_for_certain(exc, accepted=accepted):
                await account.release(hold)
                print(f"atelier: {operator_message(exc)} Nothing was spent (the hold was released).", file=sys.stderr)
                return EXIT_FAILED
            # The outcome is unknown: Runware may have run the task and charged for it, so the estimate is recorded.
            unknown = await account.settle_unknown(hold, request, exc)
            print(f"atelier: {unknown_outcome_message(exc, unknown.actual)}", file=sys.stderr)
            if not isinstance(exc, RunwareError):
                raise  # an interruption or a bug: recorded as spend above, then as it is
            return EXIT_FAILED
        result = GenerationResult(task_uuid=task_uuid, images=tuple(images), cost_micros=total_cost_micros(images))
        settled = await account.settle(hold, request, result.cost_micros)
        paid = _paid_line(result.cost_micros, settled.actual)
        try:
            files = [(image, await client.download(image)) for image in result.images]
        except RunwareError as exc:
            log.debug("download failed: %s", exc)
            addresses = " ".join(image.url or image.image_uuid for image in result.images)
            print(
                f"atelier: the images were generated and paid for ({paid}) but could not be downloaded: "
                f"{operator_message(exc)} The images (URL or Runware image id): {addresses}",
                file=sys.stderr,
            )
            return EXIT_FAILED
    return _save(files, request, claim, paid)


def _save(files: list[tuple[ImageResult, bytes]], request: ImageInferenceRequest, claim: Claim, paid: str) -> int:
    """Write the images into the claimed files (or a temporary folder if that fails); print the paths and `paid`."""
    pairs = zip(claim.paths, files, strict=False)  # Runware may return fewer images than were claimed
    named = [(_final_name(claimed, image, data, request), data) for claimed, (image, data) in pairs]
    try:
        for (path, data), claimed in zip(named, claim.paths, strict=False):
            if path != claimed:
                claimed.rename(path)  # the bytes are another format than asked: same name, the right suffix
            path.write_bytes(data)
    except OSError as exc:
        folder = save_elsewhere([(path.name, data) for path, data in named])
        print(
            f"atelier: cannot save the images in {claim.paths[0].parent}: {exc.strerror or exc}; they were paid for, "
            f"so they are saved in {folder} instead ({paid})",
            file=sys.stderr,
        )
        for path, _ in named:
            print(folder / path.name, flush=True)
        return EXIT_FAILED
    for path, _ in named:
        print(path, flush=True)
    print(paid)
    return EXIT_OK


def _final_name(claimed: Path, image: ImageResult, data: bytes, request: ImageInferenceRequest) -> Path:
    """Give the claimed name the suffix of what the bytes are, unless a file already has that name."""
    named = claimed.with_suffix(f".{_extension(data, image, request)}")
    return named if named == claimed or not named.exists() else claimed


def _paid_line(reported: int | None, charged: int) -> str:
    """Say what was paid, as recorded in the operator's ledger account."""
    if reported is None:
        return (
            f"cost: unknown (Runware did not report it for every image); {format_usd(charged)}, the estimate, "
            "recorded in the ledger as the operator's spending"
        )
    return f"cost: {format_usd(reported)}"


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


async def _upload_references(
    client: RunwareClient, request: ImageInferenceRequest, references: list[NormalisedImage]
) -> ImageInferenceRequest:
    """Upload the references; the request with their Runware image UUIDs in place of the local paths."""
    if not references:
        return request
    uploaded = [await client.upload_image(image.data, image.mime) for image in references]
    # Validated again: only the reference strings change (local paths become Runware image UUIDs).
    return ImageInferenceRequest(
        **{**request.model_dump(), "reference_images": tuple(item.image_uuid for item in uploaded)}
    )


def _extension(data: bytes, image: ImageResult, request: ImageInferenceRequest) -> str:
    """Name the file after what the bytes are, falling back to the requested format."""
    try:
        return decode_image(data).extension
    except InvalidImageError:
        log.warning("image %s of task %s does not decode as an image", image.image_uuid, image.task_uuid)
        return request.format.extension
