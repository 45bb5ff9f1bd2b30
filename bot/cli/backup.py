"""`atelier backup PATH`: copy the live database with SQLite's online backup (safe while the bot runs)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.settings import load_settings
from bot.storage.backup import BackupError, BackupRefusedError, backup_database

NAME = "backup"
HELP = "copy the database (safe while the bot runs) to a new file"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the target path."""
    parser.add_argument("path", type=Path, help="the new file to write (must not exist; its folder must)")


def run(args: argparse.Namespace) -> int:
    """Copy the live database (ATELIER_DATABASE) to PATH with SQLite's online backup; one line either way."""
    settings = load_settings()
    if settings.database_url is not None:
        print("atelier: backup copies an SQLite file; ATELIER_DATABASE is PostgreSQL: use pg_dump", file=sys.stderr)
        return EXIT_USAGE
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
