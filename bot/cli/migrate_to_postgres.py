"""`atelier migrate-to-postgres SQLITE URL`: move an SQLite database into an empty PostgreSQL database, verified.

Copies every table in one PostgreSQL transaction (`bot.storage.transfer`), then prints the figures it checked on both
sides: rows per table, the ledger per kind, and the daily totals. Stop the bot first (the SQLite file is read as it
is); then set `ATELIER_DATABASE` to the URL. Exit 0 when every figure matched; 2 when refused before anything was
written (a bad URL, another schema version, a target that is not empty); 1 when the server could not be reached or a
figure differed (nothing kept).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import psycopg

from bot.errors import first_line
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.money import format_usd
from bot.storage.migrate import MigrationError
from bot.storage.postgres import PgConnection, PostgresUrlError, check_url, is_postgres_url, redact
from bot.storage.transfer import Figures, TransferMismatchError, TransferRefusedError, transfer

NAME = "migrate-to-postgres"
HELP = "copy an SQLite database into an empty PostgreSQL database in one transaction and verify the totals"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the SQLite file and the PostgreSQL URL."""
    parser.add_argument("sqlite", type=Path, metavar="SQLITE", help="the SQLite database file (the bot stopped)")
    parser.add_argument("url", metavar="URL", help="postgresql://USER:PASSWORD@HOST:PORT/DATABASE (empty)")


def summary(figures: Figures) -> list[str]:
    """Return the lines printed after a copy: rows per table, the ledger per kind, the daily totals."""
    lines = ["rows per table (equal on both sides):"]
    lines += [f"  {table}: {count:,} rows" for table, count in sorted(figures.rows.items())]
    lines.append("ledger (equal on both sides):")
    for kind, count, amount, released, overrun in figures.sums["ledger by kind"]:
        extra = f", released {format_usd(released)}" if released else ""
        extra += f", overrun {format_usd(overrun)}" if overrun else ""
        lines.append(f"  {kind}: {count:,} rows, {format_usd(amount)}{extra}")
    days = figures.sums["member day totals"]
    spent = sum(row[2] for row in days)
    reserved = sum(row[3] for row in days)
    lines.append(
        f"daily totals (equal on both sides): {len(days)} days, spent {format_usd(spent)},"
        f" reserved {format_usd(reserved)}, {len(figures.sums['pool day totals'])} days of team pools"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    """Copy, verify, print the figures; one line and a non-zero status when refused or failed."""
    url: str = args.url
    try:
        if not is_postgres_url(url):
            raise PostgresUrlError("is not a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)")
        check_url(url)
    except PostgresUrlError as exc:
        print(f"atelier: the target {redact(url)} {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        target = PgConnection.connect(url)
    except psycopg.Error as exc:
        reason = first_line(exc)
        print(f"atelier: cannot connect to the PostgreSQL database {redact(url)}: {reason}", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = transfer(args.sqlite, target, progress=print)
    except (TransferRefusedError, MigrationError) as exc:
        print(f"atelier: migrate-to-postgres refused: {exc}; nothing was copied", file=sys.stderr)
        return EXIT_USAGE
    except TransferMismatchError as exc:
        print(f"atelier: the copy did not match ({exc}); nothing was kept", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.Error, psycopg.Error) as exc:
        reason = first_line(exc)
        print(f"atelier: the copy failed ({reason}); nothing was kept", file=sys.stderr)
        return EXIT_FAILED
    finally:
        target.close()
    print(f"migrate-to-postgres: copied {args.sqlite} (schema version {report.version}) into {redact(url)}")
    print(*summary(report.figures), sep="\n")
    print("every figure matched; set ATELIER_DATABASE to the URL and start the bot")
    return EXIT_OK
