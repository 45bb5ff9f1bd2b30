"""The command line: `python -m bot` and the `atelier` console script (contract §5.2).

Subcommands are looked up in `SUBCOMMANDS`; each one builds what it needs (settings, one aiohttp session) and
returns an exit status. A settings problem is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from bot import __version__
from bot.app import RUN
from bot.cli import CHECK, EXIT_OK, EXIT_USAGE, GENERATE, CliParser, Subcommand
from bot.discord.client import application_id_from_token, invite_url
from bot.settings import SettingsError, load_settings


def _configure_invite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--client-id",
        type=int,
        help="the application id (default: read from DISCORD_TOKEN)",
    )


def _run_invite(args: argparse.Namespace) -> int:
    """Print the invite URL; the application id comes from --client-id or from the bot token."""
    application_id = args.client_id
    if application_id is None:
        token = load_settings().require_discord_token()
        application_id = application_id_from_token(token)
        if application_id is None:
            raise SettingsError("DISCORD_TOKEN", "is not a bot token (cannot read the application id); use --client-id")
    print(invite_url(application_id))
    return EXIT_OK


INVITE = Subcommand(
    help="print the OAuth2 URL that invites the bot with the scopes and permissions it needs",
    configure=_configure_invite,
    run=_run_invite,
)

SUBCOMMANDS: dict[str, Subcommand] = {
    "run": RUN,
    "generate": GENERATE,
    "check": CHECK,
    "invite": INVITE,
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


if __name__ == "__main__":
    raise SystemExit(main())
