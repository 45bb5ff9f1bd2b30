"""The command line: `python -m bot` and the `atelier` console script (contract §5.2).

Every subcommand (`run`, `generate`, `check`, `invite`, `backup`, `report`) is a `Subcommand` (how to configure its
argument parser, and the handler that runs it) registered by name in `SUBCOMMANDS`; `main()` parses the arguments
and runs one. Each builds what it needs (settings, one aiohttp session) and returns the process exit status
(`bot.exit_codes`): 0 success, 1 a service failure, 2 bad input or configuration (refused locally, before any
request is sent). A settings problem is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import aiohttp

from bot import __version__
from bot.app import run
from bot.billing.budgets import Budgets
from bot.billing.chart import daily_chart
from bot.billing.reports import REPORT_PERIODS, PeriodReport, Reports, charges_csv, chart_title, summary_lines
from bot.catalog import MAX_COUNT, Background, ModelName, OutputFormat, Quality, Size
from bot.discord.client import application_id_from_token, invite_url
from bot.discord.intents import check_reply_editing
from bot.errors import InvalidRequestError
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.images import InvalidImageError, NormalisedImage, decode_image, normalise
from bot.log import setup_logging
from bot.money import format_usd
from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareError
from bot.runware.models import GenerationResult, ImageInferenceRequest, ImageRequestError, ImageResult
from bot.settings import Settings, SettingsError, load_settings, parse_snowflake
from bot.storage.backup import BackupError, BackupRefusedError, backup_database
from bot.storage.database import Database, DatabaseError

log = logging.getLogger(__name__)


class CliParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (and exit status 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        """Print `prog: error: message` and exit with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


@dataclass(frozen=True, slots=True)
class Subcommand:
    """One CLI subcommand: its help line, how to add its arguments, and the handler returning an exit status."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class _InputError(Exception):
    """Bad command-line input, refused before any request; `str()` is the one line printed."""


def _choices(values: Any) -> str:
    return ", ".join(str(value) for value in values)


def configure_generate(parser: argparse.ArgumentParser) -> None:
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


def run_generate(args: argparse.Namespace) -> int:
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


GENERATE = Subcommand(
    help="generate images from the terminal (no Discord) and save them",
    configure=configure_generate,
    run=run_generate,
)


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


def configure_check(parser: argparse.ArgumentParser) -> None:
    """`check` takes no arguments."""


def run_check(args: argparse.Namespace) -> int:
    """Validate the settings, the database, the Runware key (without spending) and reply editing; a line each.

    Reply editing is read from the application's flags when DISCORD_TOKEN is set.
    """
    settings = load_settings()
    secrets = [secret.get_secret_value() for secret in (settings.discord_token, settings.runware_api_key) if secret]
    setup_logging("ERROR", secrets=secrets)
    print(f"config: ok ({settings.config_path})")
    results = asyncio.run(_check_services(settings))
    for line in results.lines:
        print(line)
    return EXIT_OK if results.ok else EXIT_FAILED


@dataclass(slots=True)
class _CheckResults:
    ok: bool
    lines: list[str]


async def _check_services(settings: Settings) -> _CheckResults:
    """Read reply editing from Discord, check the database, and ask Runware whether the key is valid (one session).

    The database is opened (and migrated) and gets SQLite's integrity check; nothing is spent anywhere.
    """
    results = _CheckResults(ok=True, lines=[])
    async with aiohttp.ClientSession() as session:
        await _check_discord(settings, session, results)
        database_ok, database_line = await _check_database(settings)
        results.ok &= database_ok
        results.lines.append(database_line)
        await _check_runware(settings, session, results)
    return results


async def _check_discord(settings: Settings, session: aiohttp.ClientSession, results: _CheckResults) -> None:
    """Say whether reply editing is on (from the application's flags) when DISCORD_TOKEN is set."""
    if settings.discord_token is None:
        state = "is empty" if "DISCORD_TOKEN" in settings.empty_variables else "is not set"
        results.lines.append(f"discord: DISCORD_TOKEN {state} (needed to run the bot)")
        return
    token = settings.discord_token.get_secret_value()
    ok, line = await check_reply_editing(session, settings.discord_api_base, token, settings.app.discord.reply_editing)
    results.ok &= ok
    results.lines.append(line)


async def _check_database(settings: Settings) -> tuple[bool, str]:
    """Open (and migrate) the database and run SQLite's integrity check."""
    try:
        async with await Database.open(settings.database) as database:
            problems = await database.integrity_problems()
            if problems:
                return False, f"database: {settings.database} is damaged: {'; '.join(problems[:3])}"
            return True, f"database: ok ({settings.database}, schema version {database.version})"
    except (DatabaseError, OSError) as exc:
        return False, f"database: {exc}"


async def _check_runware(settings: Settings, session: aiohttp.ClientSession, results: _CheckResults) -> None:
    """Ask Runware whether the key is valid, without spending."""
    if settings.runware_api_key is None:
        results.ok = False
        state = "is empty" if "RUNWARE_API_KEY" in settings.empty_variables else "is not set"
        results.lines.append(f"runware: RUNWARE_API_KEY {state}")
        return
    client = RunwareClient(
        session,
        api_key=settings.runware_api_key.get_secret_value(),
        api_url=settings.runware_api_url,
        config=settings.app.runware,
    )
    try:
        await client.verify_key()
    except RunwareError as exc:
        results.ok = False
        results.lines.append(f"runware: {exc.user_message}")
    else:
        results.lines.append(f"runware: key ok ({settings.runware_api_url})")


CHECK = Subcommand(
    help="validate the configuration and the database, and verify the Runware key without spending",
    configure=configure_check,
    run=run_check,
)


def _configure_run(parser: argparse.ArgumentParser) -> None:
    """`run` takes no arguments: everything comes from the environment and the config file."""


def _run_subcommand(args: argparse.Namespace) -> int:
    return run(load_settings())


RUN = Subcommand(help="run the Discord bot (the default)", configure=_configure_run, run=_run_subcommand)
"""The `run` subcommand; `SettingsError` propagates to `main()`'s one-line handler."""


def _application_id(text: str) -> int:
    """Parse `--client-id`: a Discord application id (a positive whole number), else argparse's one-line error."""
    application_id = parse_snowflake(text)
    if application_id is None:
        raise argparse.ArgumentTypeError(
            f"must be the bot's application id (a positive whole number, from the developer portal), not {text!r}"
        )
    return application_id


def _configure_invite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client-id",
        type=_application_id,
        metavar="APPLICATION_ID",
        help="the application id (default: read from DISCORD_TOKEN)",
    )


def _run_invite(args: argparse.Namespace) -> int:
    """Print the invite URL; the application id comes from --client-id or from the bot token."""
    application_id = args.client_id
    if application_id is None:
        settings = load_settings()
        if settings.discord_token is None:
            problem = settings.missing("DISCORD_TOKEN", " to read the application id from it")
            raise SettingsError("DISCORD_TOKEN", f"{problem}, or pass --client-id APPLICATION_ID")
        application_id = application_id_from_token(settings.discord_token.get_secret_value())
        if application_id is None:
            raise SettingsError("DISCORD_TOKEN", "is not a bot token (cannot read the application id); use --client-id")
    print(invite_url(application_id))
    return EXIT_OK


INVITE = Subcommand(
    help="print the OAuth2 URL that invites the bot with the scopes and permissions it needs",
    configure=_configure_invite,
    run=_run_invite,
)


def _configure_backup(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="the new file to write (must not exist; its folder must)")


def _run_backup(args: argparse.Namespace) -> int:
    """Copy the live database (ATELIER_DATABASE) to PATH with SQLite's online backup; one line either way."""
    settings = load_settings()
    try:
        info = backup_database(settings.database, args.path)
    except BackupRefusedError as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BackupError as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"backup: wrote {info.path} ({info.size:,} bytes, schema version {info.version}) from {settings.database}")
    return EXIT_OK


BACKUP = Subcommand(
    help="copy the database (safe while the bot runs) to a new file",
    configure=_configure_backup,
    run=_run_backup,
)


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guild", type=int, required=True, metavar="ID", help="the server's id")
    parser.add_argument("--period", choices=REPORT_PERIODS, default="current", help="which budget period")
    parser.add_argument("--out", type=Path, default=Path("."), help="directory for the CSV and PNG (default: .)")


def _run_report(args: argparse.Namespace) -> int:
    """Write a server's spend report (CSV of every charge, PNG chart of daily spend) and print its totals."""
    settings = load_settings()

    async def read() -> PeriodReport:
        async with await Database.open(settings.database) as database:
            return await Reports(database, Budgets(database, settings.app)).period_report(args.guild, args.period)

    try:
        report = asyncio.run(read())
        stem = args.out / f"spend-{report.guild_id}-{report.start:%Y-%m-%d}"
        args.out.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".csv").write_bytes(charges_csv(report))
        stem.with_suffix(".png").write_bytes(daily_chart(report.days, chart_title(report)))
    except InvalidRequestError as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DatabaseError, OSError) as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(*summary_lines(report), stem.with_suffix(".csv"), stem.with_suffix(".png"), sep="\n")
    return EXIT_OK


REPORT = Subcommand(help="write a server's spend report (CSV, PNG chart)", configure=_configure_report, run=_run_report)


SUBCOMMANDS: dict[str, Subcommand] = {
    "run": RUN,
    "generate": GENERATE,
    "check": CHECK,
    "invite": INVITE,
    "backup": BACKUP,
    "report": REPORT,
}
"""Subcommand name -> handler (contract §5.2)."""

DEFAULT_SUBCOMMAND = "run"
"""What runs when no subcommand is given: the bot."""


def build_parser() -> CliParser:
    """Build the argument parser with one sub-parser per entry of `SUBCOMMANDS`."""
    parser = CliParser(prog="atelier", description="Atelier: GPT Image generations on Runware for Discord.")
    parser.add_argument("--version", action="version", version=f"atelier {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in SUBCOMMANDS.items():
        command.configure(subparsers.add_parser(name, help=command.help, description=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` (default: the process arguments), run the chosen subcommand and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    name = args.command or DEFAULT_SUBCOMMAND
    if args.command is None:
        # Parse again as `run ...` so the subcommand's own defaults are filled in.
        args = parser.parse_args([name, *(argv if argv is not None else sys.argv[1:])])
    try:
        return SUBCOMMANDS[name].run(args)
    except SettingsError as exc:
        print(f"atelier: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("atelier: interrupted", file=sys.stderr)
        return 130
