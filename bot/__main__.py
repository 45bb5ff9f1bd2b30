"""The command line: `python -m bot` and the `atelier` console script (contract §5.2).

Subcommands are looked up in `SUBCOMMANDS`; each one builds what it needs (settings, one aiohttp session) and
returns an exit status. A settings problem is printed as one line on stderr with exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

from bot import __version__
from bot.cli import EXIT_USAGE, GENERATE, CliParser, Subcommand
from bot.settings import SettingsError

SUBCOMMANDS: dict[str, Subcommand] = {
    "generate": GENERATE,
}
"""Subcommand name -> handler; `run`, `check` and `invite` are added here as they are built."""

DEFAULT_SUBCOMMAND: str | None = None
"""What runs when no subcommand is given (`run` once it exists); until then the help is printed (exit status 2)."""


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
    if name is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command is None:
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
