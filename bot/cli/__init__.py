"""The command line: `python -m bot` and the `atelier` console script (contract §5.2).

One module per subcommand, each registered once in `COMMANDS`:
- `run`: run the Discord bot (the default); `generate`: one generation from the terminal, no Discord;
- `check`: everything a first start needs, a line each; `invite`: the OAuth2 invite URL;
- `backup`: a consistent copy of the live database; `init`: an annotated `atelier.toml` and a `.env` template;
- `report`: a server's spend report (CSV of every charge, PNG chart) and its totals;
- `migrate-to-postgres`: copy an SQLite database into an empty PostgreSQL one, verified.

Helpers: `operator` (the operator's own ledger account, for `generate`), `output` (claiming `generate`'s output files
before anything is sent).

A subcommand module has `NAME`, `HELP`, `configure(parser)` (its arguments) and `run(args)` (returns the exit
status), so adding a subcommand is one new module and one entry in `COMMANDS`. Exit statuses (`bot.exit_codes`): 0
success, 1 a service failure, 2 bad input or configuration (refused locally, before any request is sent). A
settings problem is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Protocol

from bot import __version__
from bot.cli import backup, check, generate, init, invite, migrate_to_postgres, report, run
from bot.exit_codes import EXIT_USAGE
from bot.settings import SettingsError


class Subcommand(Protocol):
    """What a subcommand module provides (the module itself is the implementation)."""

    NAME: str
    HELP: str

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's arguments to its parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Run the subcommand and return the process exit status."""


COMMANDS: tuple[Subcommand, ...] = (run, generate, check, invite, backup, init, report, migrate_to_postgres)
"""Every subcommand, in the order `--help` lists them."""

SUBCOMMANDS: dict[str, Subcommand] = {command.NAME: command for command in COMMANDS}
"""Subcommand name -> its module (contract §5.2)."""

DEFAULT_SUBCOMMAND = run.NAME
"""What runs when no subcommand is given: the bot."""


class CliParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (and exit status 2), without the usage block."""

    def error(self, message: str) -> NoReturn:
        """Print `prog: error: message` and exit with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> CliParser:
    """Build the argument parser with one sub-parser per entry of `COMMANDS`."""
    parser = CliParser(prog="atelier", description="Atelier: GPT Image generations on Runware for Discord.")
    parser.add_argument("--version", action="version", version=f"atelier {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.configure(subparsers.add_parser(command.NAME, help=command.HELP, description=command.HELP))
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
