"""Spend reports for a server: per member, per model and per UTC day over a date range, and CSV export.

`Reports.period_report` is what `/budget report` and `atelier report` show: every charge of the current or the
previous budget period, with totals by member, model, channel and day (all derived from the same settle rows, so
they equal the ledger's to the micro-dollar), the CSV of every charge (`charges_csv`) and the chart of daily spend
(`bot.billing.chart.daily_chart`).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from bot.billing.budgets import Budgets, parse_period, period_bounds
from bot.billing.errors import BudgetInputError
from bot.billing.inputs import check_id
from bot.catalog import Period
from bot.clock import utc_now
from bot.storage.database import Database
from bot.storage.ledger import ReportQueries
from bot.storage.rows import ChargeRow, SpendRow

__all__ = [
    "OPERATOR_GUILD_ID",
    "OPERATOR_LABEL",
    "OPERATOR_MEMBER_ID",
    "DaySpend",
    "MemberSpend",
    "ModelSpend",
    "PeriodReport",
    "ReportPeriod",
    "Reports",
    "Share",
    "SpendReport",
    "charges_csv",
    "to_csv",
]

ReportPeriod = Literal["current", "previous"]
REPORT_PERIODS: tuple[ReportPeriod, ...] = ("current", "previous")

UNKNOWN = "unknown"
"""What a charge's model or channel reads as when its job row is gone."""

OPERATOR_GUILD_ID = 0
"""The reserved server id under which the operator's own spending (`atelier generate`) is recorded in the ledger.

No Discord server has id 0, so this spending never counts in a real server's cap or a member's balance; it is
reported like a server's: `Reports.spend(OPERATOR_GUILD_ID, ...)`, and `Ledger.status` shows its period totals."""
OPERATOR_MEMBER_ID = 0
"""The member id of the operator's own spending, under `OPERATOR_GUILD_ID` (no Discord user has id 0)."""
OPERATOR_LABEL = "operator (terminal)"
"""How a report names the operator's spending (`OPERATOR_MEMBER_ID` under `OPERATOR_GUILD_ID`) instead of an id."""

_EPOCH_DAY = date(1970, 1, 1)

CsvView = Literal["detail", "member", "model", "day"]


@dataclass(frozen=True, slots=True)
class MemberSpend:
    """One member's charges in the report's range."""

    member_id: int
    jobs: int
    spent: int
    overrun: int


@dataclass(frozen=True, slots=True)
class ModelSpend:
    """Charges for one model in the report's range (`unknown` when the job rows were deleted)."""

    model: str
    jobs: int
    spent: int


@dataclass(frozen=True, slots=True)
class DaySpend:
    """Charges counted on one UTC day."""

    day: date
    jobs: int
    spent: int


@dataclass(frozen=True, slots=True)
class SpendReport:
    """A server's charges over [start, end), at the finest grain (day x member x model), with the usual views."""

    guild_id: int
    start: datetime
    end: datetime
    rows: tuple[SpendRow, ...]

    @property
    def total_spent(self) -> int:
        """Sum all charges in the range."""
        return sum(row.spent for row in self.rows)

    @property
    def total_jobs(self) -> int:
        """Count the charged jobs in the range."""
        return sum(row.jobs for row in self.rows)

    @property
    def by_member(self) -> list[MemberSpend]:
        """Group spend per member, largest spender first."""
        totals: dict[int, list[int]] = {}
        for row in self.rows:
            entry = totals.setdefault(row.member_id, [0, 0, 0])
            entry[0] += row.jobs
            entry[1] += row.spent
            entry[2] += row.overrun
        spends = [MemberSpend(member, jobs, spent, overrun) for member, (jobs, spent, overrun) in totals.items()]
        return sorted(spends, key=lambda item: (-item.spent, item.member_id))

    @property
    def by_model(self) -> list[ModelSpend]:
        """Group spend per model, largest first."""
        totals: dict[str, list[int]] = {}
        for row in self.rows:
            entry = totals.setdefault(row.model, [0, 0])
            entry[0] += row.jobs
            entry[1] += row.spent
        return sorted(
            (ModelSpend(model, jobs, spent) for model, (jobs, spent) in totals.items()),
            key=lambda item: (-item.spent, item.model),
        )

    @property
    def by_day(self) -> list[DaySpend]:
        """Group spend per UTC day, in date order (days without charges are left out)."""
        totals: dict[int, list[int]] = {}
        for row in self.rows:
            entry = totals.setdefault(row.day, [0, 0])
            entry[0] += row.jobs
            entry[1] += row.spent
        return [DaySpend(_day(day), jobs, spent) for day, (jobs, spent) in sorted(totals.items())]


@dataclass(frozen=True, slots=True)
class Share:
    """The charges of one member, model or channel (`key`; None: unknown, the job row is gone) in a report."""

    key: int | str | None
    jobs: int
    spent: int


@dataclass(frozen=True, slots=True)
class PeriodReport:
    """Every charge of one budget period of a server (`which`: the current or the previous one), oldest first."""

    guild_id: int
    period: Period
    which: ReportPeriod
    start: datetime
    end: datetime
    charges: tuple[ChargeRow, ...]
    made_at: datetime
    """When the report was read (the current period's chart ends that day)."""

    @property
    def total(self) -> int:
        """Sum every charge of the period (micro-dollars)."""
        return sum(charge.amount for charge in self.charges)

    @property
    def by_member(self) -> list[Share]:
        """Spend per member, largest first."""
        return _shares(self.charges, lambda charge: charge.member_id)

    @property
    def by_model(self) -> list[Share]:
        """Spend per model, largest first."""
        return _shares(self.charges, lambda charge: charge.model)

    @property
    def by_channel(self) -> list[Share]:
        """Spend per channel, largest first."""
        return _shares(self.charges, lambda charge: charge.channel_id)

    @property
    def days(self) -> list[tuple[date, int]]:
        """Spend on each UTC day of the period up to its last charge or today (days without charges count 0)."""
        totals: dict[date, int] = {}
        for charge in self.charges:
            day = charge.effective_at.astimezone(UTC).date()
            totals[day] = totals.get(day, 0) + charge.amount
        first = self.start.date()
        last = max([*totals, min(self.end - timedelta(microseconds=1), self.made_at).date(), first])
        days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
        return [(day, totals.get(day, 0)) for day in days]


def _shares(charges: tuple[ChargeRow, ...], key: Callable[[ChargeRow], int | str | None]) -> list[Share]:
    totals: dict[int | str | None, list[int]] = {}
    for charge in charges:
        entry = totals.setdefault(key(charge), [0, 0])
        entry[0] += 1
        entry[1] += charge.amount
    shares = [Share(name, jobs, spent) for name, (jobs, spent) in totals.items()]
    return sorted(shares, key=lambda share: (-share.spent, str(share.key)))


def chart_title(report: PeriodReport) -> str:
    """Title the chart of a period's daily spend (the operator's terminal spending says so)."""
    whose = f"{OPERATOR_LABEL}, " if report.guild_id == OPERATOR_GUILD_ID else ""
    return f"Daily spend (UTC), {whose}{report.which} {report.period.value} from {report.start:%Y-%m-%d}"


def _label(report: PeriodReport, title: str, key: int | str | None) -> str:
    """Name a share's key on the terminal: the operator's spending is no member and has no channel."""
    if report.guild_id == OPERATOR_GUILD_ID and title in ("member", "channel"):
        if title == "member" and key == OPERATOR_MEMBER_ID:
            return OPERATOR_LABEL
        if title == "channel" and key is None:
            return "terminal (no channel)"
    return UNKNOWN if key is None else str(key)


def summary_lines(report: PeriodReport) -> list[str]:
    """Describe the report as plain lines (for a terminal): the period, the total, then every member, model, channel."""
    last = report.end - timedelta(days=1)
    whose = OPERATOR_LABEL if report.guild_id == OPERATOR_GUILD_ID else f"server {report.guild_id}"
    lines = [
        f"{whose}, {report.which} {report.period.value}: {report.start:%Y-%m-%d} to {last:%Y-%m-%d} (UTC)",
        f"total: {_usd(report.total)} USD in {len(report.charges)} charge(s)",
    ]
    for title, shares in (("member", report.by_member), ("model", report.by_model), ("channel", report.by_channel)):
        lines.append(f"by {title}:")
        lines.extend(f"  {_label(report, title, s.key)}: {_usd(s.spent)} USD ({s.jobs} job(s))" for s in shares)
    return lines


def charges_csv(report: PeriodReport) -> bytes:
    """Render every charge as CSV (UTF-8 bytes), one row per charge, oldest first.

    Columns: time (UTC, when it was reserved, which decides its period), member, channel, model, size, quality,
    images, cost in exact decimal dollars, job id. Ids are plain digits (see `to_csv` about spreadsheets).
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", "member_id", "channel_id", "model", "size", "quality", "images", "cost_usd", "job_id"])
    for charge in report.charges:
        writer.writerow(
            [
                charge.effective_at.astimezone(UTC).isoformat(timespec="seconds"),
                charge.member_id,
                "" if charge.channel_id is None else charge.channel_id,
                charge.model or UNKNOWN,
                charge.size or "",
                charge.quality or "",
                "" if charge.images is None else charge.images,
                _usd(charge.amount),
                charge.job_id,
            ]
        )
    return out.getvalue().encode()


class Reports:
    """Builds spend reports from the ledger."""

    def __init__(self, db: Database, budgets: Budgets, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._budgets = budgets
        self._clock = clock

    async def spend(self, guild_id: int, start: date | datetime, end: date | datetime) -> SpendReport:
        """Report charges counted in [start, end); dates mean 00:00 UTC, datetimes must be timezone-aware."""
        guild = check_id(guild_id, "server id")
        since, until = _instant(start, "start"), _instant(end, "end")
        if since >= until:
            raise BudgetInputError("A report's start must be before its end.")

        def read(conn: sqlite3.Connection) -> list[SpendRow]:
            return ReportQueries(conn).spend_rows(guild, since, until)

        rows = await self._db.run(read, write=False)
        return SpendReport(guild, since, until, tuple(rows))

    async def period_report(self, guild_id: int, which: ReportPeriod = "current") -> PeriodReport:
        """Every charge of the server's current or previous budget period (the server's own period)."""
        guild = check_id(guild_id, "server id")
        if which not in REPORT_PERIODS:
            raise BudgetInputError(f"Unknown report period {which!r}; choose current or previous.")
        now = self._clock()

        def read(conn: sqlite3.Connection) -> PeriodReport:
            period = self._budgets.period_in(conn, guild)
            start, end = period_bounds(period, now)
            if which == "previous":
                start, end = period_bounds(period, start - timedelta(microseconds=1))
            charges = ReportQueries(conn).charges(guild, start, end)
            return PeriodReport(guild, period, which, start, end, tuple(charges), now)

        return await self._db.run(read, write=False)

    async def spend_for_period(self, guild_id: int, period: Period | str | None = None) -> SpendReport:
        """Report the current period (the server's own period unless `period` is given)."""
        guild = check_id(guild_id, "server id")
        kind = (await self._budgets.rules(guild)).period if period is None else parse_period(period)
        start, end = period_bounds(kind, self._clock())
        return await self.spend(guild, start, end)


def to_csv(report: SpendReport, view: CsvView = "detail") -> str:
    """Render the report as CSV: `detail` (day, member, model), or totals per `member`, `model` or `day`.

    Amounts are exact decimal dollars (`0.011000`). Member ids are plain digits, exact for any program that reads
    CSV; a spreadsheet that guesses column types turns an 18-digit id into a rounded number, so import the
    `member_id` column as text there. (No CSV spelling is both read as text by spreadsheets and as the plain id by
    everything else: `="…"` is a formula, a prefix changes the value.)
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if view == "detail":
        writer.writerow(["date", "member_id", "model", "jobs", "spent_usd", "overrun_usd"])
        for row in report.rows:
            writer.writerow(
                [_day(row.day).isoformat(), row.member_id, row.model, row.jobs, _usd(row.spent), _usd(row.overrun)]
            )
    elif view == "member":
        writer.writerow(["member_id", "jobs", "spent_usd", "overrun_usd"])
        for member in report.by_member:
            writer.writerow([member.member_id, member.jobs, _usd(member.spent), _usd(member.overrun)])
    elif view == "model":
        writer.writerow(["model", "jobs", "spent_usd"])
        for model in report.by_model:
            writer.writerow([model.model, model.jobs, _usd(model.spent)])
    elif view == "day":
        writer.writerow(["date", "jobs", "spent_usd"])
        for day in report.by_day:
            writer.writerow([day.day.isoformat(), day.jobs, _usd(day.spent)])
    else:
        raise BudgetInputError(f"Unknown report view {view!r}; choose detail, member, model or day.")
    return out.getvalue()


def _usd(micros: int) -> str:
    return f"{Decimal(micros).scaleb(-6):.6f}"


def _day(day_number: int) -> date:
    return _EPOCH_DAY + timedelta(days=day_number)


def _instant(value: date | datetime, what: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BudgetInputError(f"The report's {what} must include a time zone.")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise BudgetInputError(f"The report's {what} must be a date, not {value!r}.")
