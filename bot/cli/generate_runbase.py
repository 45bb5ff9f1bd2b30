"""`atelier generate --provider runbase`: one generation on Runbase from the terminal, one run per image.

The options are checked against the catalog's Runbase route before anything is sent (a model Runbase does not serve,
an option it cannot honour, or a reference file are refused: Runbase fetches references itself, by URL). The estimate
(Runbase's fixed price per run, times the count) is held in the operator's ledger account; the runs are created at
once, each never sent twice; the charge is the sum of `costUsd` of the runs that delivered an image, plus the
estimate's share of any run whose create's answer was lost or that did not finish in time (the owner may have paid).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.billing.pricing import Pricing
from bot.catalog import (
    Background,
    ModelName,
    OutputFormat,
    ProviderName,
    Quality,
    Resolution,
    Route,
    RouteRequest,
    Size,
)
from bot.cli.operator import Hold, OperatorAccount, operator_message, unknown_outcome_message
from bot.cli.output import Claim, OutputError, claim_files, save_elsewhere
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.images import InvalidImageError, decode_image
from bot.money import format_usd
from bot.providers.runbase import runbase_route
from bot.runbase.client import RunbaseClient, RunbaseOptions
from bot.runbase.errors import RunbaseError, RunbaseOutcomeUnknownError, RunbaseTimeoutError
from bot.runbase.models import CreateRun, Run, RunInput
from bot.settings import Settings
from bot.storage.database import Database, DatabaseError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunbaseRequest:
    """The terminal's request, checked against the Runbase route."""

    route: Route
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int
    prompt: str
    resolution: Resolution | None

    def create(self) -> CreateRun:
        """Return the body of one run."""
        quality = None
        if self.route.sends_quality:
            quality = (Quality.HIGH if self.quality is Quality.AUTO else self.quality).value
        resolution = (self.resolution or self.route.default_resolution) if self.route.resolutions else None
        return CreateRun(
            model=self.route.provider_model,
            input=RunInput(
                prompt=self.prompt,
                aspect_ratio=self.size.aspect_ratio,
                quality=quality,
                resolution=None if resolution is None else resolution.value,
            ),
        )


class RequestRefusedError(Exception):
    """The options cannot run on Runbase; `str()` is the one line printed."""


def build_request(args: argparse.Namespace, settings: Settings) -> RunbaseRequest:
    """Check the options against the Runbase route (nothing is sent); `RequestRefusedError` says what is wrong."""
    defaults = settings.app.defaults
    try:
        model = ModelName(args.model or defaults.model)
        size = Size(args.size or defaults.size)
        quality = Quality(args.quality or defaults.quality)
        background = Background(args.background or defaults.background)
        fmt = OutputFormat(args.format or OutputFormat.PNG)
        resolution = Resolution(args.resolution) if args.resolution else None
    except ValueError as exc:
        raise RequestRefusedError(str(exc)) from exc
    route = runbase_route(model)
    if route is None:
        raise RequestRefusedError(f"{model.label} is not served by Runbase; use --provider runware")
    if args.reference:
        raise RequestRefusedError("Runbase fetches reference images by URL, so --reference needs --provider runware")
    count = defaults.count if args.count is None else args.count
    if not 1 <= count <= settings.app.limits.max_count:
        raise RequestRefusedError(f"count must be between 1 and {settings.app.limits.max_count} (got {count})")
    asked = RouteRequest(size, quality, background, fmt, resolution, prompt_chars=len(args.prompt))
    refusals = route.refusals(asked)
    if refusals:
        what = "; ".join(f"{r.option} {r.asked}: Runbase offers {' or '.join(r.possible)}" for r in refusals)
        raise RequestRefusedError(f"{route.label} cannot do this: {what}")
    return RunbaseRequest(route, model, size, quality, background, fmt, count, args.prompt, resolution)


def run(args: argparse.Namespace, settings: Settings, out: Path) -> int:
    """Generate on Runbase: check, claim the files, hold, run, settle, save; the exit status."""
    api_key = settings.require_runbase_key()
    try:
        request = build_request(args, settings)
        claim = claim_files(out, secrets.token_hex(4), "png", request.count)
    except (RequestRefusedError, OutputError) as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(_generate(request, settings, api_key, claim))
    finally:
        claim.discard()


async def _generate(request: RunbaseRequest, settings: Settings, api_key: str, claim: Claim) -> int:
    try:
        database = await Database.open(settings.database_target)
    except DatabaseError as exc:
        print(f"atelier: {exc}; nothing was sent", file=sys.stderr)
        return EXIT_FAILED
    async with database, aiohttp.ClientSession() as session:
        options = RunbaseOptions.from_config(settings.app.runware)
        client = RunbaseClient(session, api_key=api_key, api_url=settings.runbase_api_url, options=options)
        account = OperatorAccount(database, settings.app)
        price = Pricing(settings.app).estimate(
            request.model,
            request.quality,
            request.size,
            request.count,
            len(request.prompt),
            0,
            provider=ProviderName.RUNBASE,
            resolution=request.resolution,
        )
        hold = await account.reserve_estimate(price)
        try:
            runs = (client.generate(request.create()) for _ in range(request.count))
            outcomes = await asyncio.gather(*runs, return_exceptions=True)
        except BaseException as exc:
            # Creates may already be out (an interrupt, a crash of the client): the outcome is unknown, so the
            # estimate is recorded as operator spend (the ledger never under-counts what Runbase may have taken).
            await account.settle_unknown(hold, request, exc, provider=ProviderName.RUNBASE.value)
            print(f"atelier: {unknown_outcome_message(exc, hold.estimate, 'Runbase')}", file=sys.stderr)
            raise
        return await _finish(request, client, account, hold, list(outcomes), claim)


async def _finish(
    request: RunbaseRequest,
    client: RunbaseClient,
    account: OperatorAccount,
    hold: Hold,
    outcomes: list[Run | BaseException],
    claim: Claim,
) -> int:
    """Charge what was (or may have been) paid, download and save what was made; the exit status."""
    runs = [outcome for outcome in outcomes if isinstance(outcome, Run)]
    errors = [outcome for outcome in outcomes if not isinstance(outcome, Run)]
    for error in errors:
        if not isinstance(error, RunbaseError):
            await account.settle_unknown(hold, request, error, provider=ProviderName.RUNBASE.value)
            print(
                f"atelier: {unknown_outcome_message(error, hold.estimate, 'Runbase')}",
                file=sys.stderr,
            )
            raise error
    unknown = sum(1 for error in errors if isinstance(error, RunbaseOutcomeUnknownError | RunbaseTimeoutError))
    share = -(-hold.estimate // request.count)
    cost = sum(run.charged_micros for run in runs) + unknown * share
    if not runs and not unknown:
        await account.release(hold)
        first = errors[0]
        assert isinstance(first, RunbaseError)
        print(f"atelier: {operator_message(first)} Nothing was spent (the hold was released).", file=sys.stderr)
        return EXIT_FAILED
    await account.settle_job(hold, request, cost, provider=ProviderName.RUNBASE.value)
    paid = f"cost: {format_usd(cost)}"
    for error in errors:
        assert isinstance(error, RunbaseError)
        print(f"atelier: one image was not made: {operator_message(error)}", file=sys.stderr)
    if unknown:
        paid += f" (including {format_usd(unknown * share)} for {unknown} run(s) whose outcome is unknown)"
    if not runs:
        print(f"atelier: no image was made; {paid}", file=sys.stderr)
        return EXIT_FAILED
    files = []
    for run in runs:
        files.append(await client.download(run.urls[0], run_id=run.id))
    return _save(files, claim, paid, failed=len(errors))


def _save(files: list[bytes], claim: Claim, paid: str, *, failed: int) -> int:
    """Write the images into the claimed files, named after what the bytes are; print the paths and `paid`."""
    named = []
    for path, data in zip(claim.paths, files, strict=False):
        try:
            extension = decode_image(data).extension
        except InvalidImageError:
            extension = "png"
        named.append((path, path.with_suffix(f".{extension}"), data))
    try:
        for claimed, path, data in named:
            if path != claimed:
                claimed.rename(path)
            path.write_bytes(data)
    except OSError as exc:
        folder = save_elsewhere([(path.name, data) for _, path, data in named])
        print(
            f"atelier: cannot save in {claim.paths[0].parent}: {exc.strerror or exc}; saved in {folder} ({paid})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    for _, path, _ in named:
        print(path, flush=True)
    print(paid)
    return EXIT_FAILED if failed else EXIT_OK
