"""`atelier init [DIR]`: write an annotated `atelier.toml` and a `.env` template (names, no secrets) to start from.

It ends by printing the next steps, with the paths: edit the `.env`, then `atelier check`, then `atelier run`.

Both come from inside the package (the built-in defaults and `bot/defaults/env.template`); an existing file is never
overwritten: the command refuses before writing anything.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from importlib import resources
from pathlib import Path

from bot.exit_codes import EXIT_OK, EXIT_USAGE
from bot.settings import builtin_config_text

NAME = "init"
HELP = "write an annotated atelier.toml and a .env template into a folder (default: the current one)"

ENV_TEMPLATE = "defaults/env.template"
"""The `.env` template inside the package: every variable's name, the secrets left empty."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the optional target folder."""
    parser.add_argument(
        "folder", nargs="?", type=Path, default=Path(), metavar="DIR", help="where to write (default: this folder)"
    )


def run(args: argparse.Namespace) -> int:
    """Write both files, or refuse with one line (exit 2) if either exists or the folder is not usable."""
    folder: Path = args.folder
    files = {
        folder / "atelier.toml": builtin_config_text(),
        folder / ".env": resources.files("bot").joinpath(ENV_TEMPLATE).read_text(encoding="utf-8"),
    }
    if folder.exists() and not folder.is_dir():
        print(f"atelier: {folder} is a file, not a folder; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    existing = [str(path) for path in files if path.exists() or path.is_symlink()]
    if existing:
        verb = "exists" if len(existing) == 1 else "exist"
        print(f"atelier: {' and '.join(existing)} already {verb}; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            # O_EXCL: never overwrite, even a file made meanwhile; 0600: the .env will hold secrets.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if path.name == ".env" else 0o644)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        print(f"atelier: cannot write in {folder}: {exc.strerror or exc}; nothing was written", file=sys.stderr)
        return EXIT_USAGE
    home = folder.resolve()
    print(f"wrote {home / 'atelier.toml'} (every setting, with its default and what it does)")
    print(f"wrote {home / '.env'} (every environment variable, with what it does; keep it private)")
    print("next:")
    print(f"  1. edit {home / '.env'}: fill in DISCORD_TOKEN and RUNWARE_API_KEY (or RUNBASE_API_KEY)")
    print(f"  2. cd {shlex.quote(str(home))} && atelier check")
    print(f"  3. atelier run   (from {home}: it reads .env and atelier.toml there)")
    return EXIT_OK
