"""`atelier report --guild ID [--period current|previous] [--out DIR]`: a server's spend report from the terminal.

Writes `spend-<ID>-<period start>.csv` (every charge) and `.png` (daily spend) into DIR and prints the totals; the
same report as `/budget report`, from the same query. Server id 0 is the operator's own spending (`generate`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bot.billing.budgets import Budgets
from bot.billing.chart import daily_chart
from bot.billing.reports import REPORT_PERIODS, PeriodReport, Reports, charges_csv, chart_title, summary_lines
from bot.errors import InvalidRequestError
from bot.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from bot.settings import load_settings
from bot.storage.database import Database, DatabaseError

NAME = "report"
HELP = "write a server's spend report (CSV of every charge, PNG chart of daily spend) and print its totals"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the server, the period and the output folder."""
    parser.add_argument("--guild", type=int, required=True, metavar="ID", help="the server's id (0: the operator's)")
    parser.add_argument("--period", choices=REPORT_PERIODS, default="current", help="which budget period")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the CSV and PNG (default: .)")


def run(args: argparse.Namespace) -> int:
    """Write a server's spend report and print its totals; one line and a non-zero status on failure."""
    settings = load_settings()
    if settings.database_url is None and not settings.database.is_file():
        print(
            f"atelier: there is no database at {settings.database} (ATELIER_DATABASE); nothing to report",
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def read() -> PeriodReport:
        async with await Database.open(settings.database_target) as database:
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
