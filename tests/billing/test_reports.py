"""Reports: spend per member, per model and per day over a date range, and CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetInputError
from bot.billing.ledger import Ledger
from bot.billing.reports import DaySpend, MemberSpend, ModelSpend, Reports, to_csv
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.storage.database import Database
from bot.storage.rows import NewJob
from tests.billing.conftest import GUILD, MEMBER, OTHER, Clock
from tests.job_writes import JobWrites


async def charge(
    ledger: Ledger, db: Database, clock: Clock, day: int, job_id: str, member: int, model: ModelName, cost: int
) -> None:
    clock.now = datetime(2025, 1, day, 15, 0, tzinfo=UTC)
    job = NewJob(
        member_id=member,
        guild_id=GUILD,
        channel_id=1,
        model=model,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt="p",
        estimate=cost + 1000,
        id=job_id,
    )
    await ledger.reserve(job_id, GUILD, member, [], cost + 1000, job=job)
    await ledger.settle(job_id, cost)


@pytest.fixture
async def reports(ledger: Ledger, db: Database, budgets: Budgets, clock: Clock) -> Reports:
    await charge(ledger, db, clock, 10, "a", MEMBER, ModelName.GPT_IMAGE_1_MINI, 11_000)
    await charge(ledger, db, clock, 10, "b", MEMBER, ModelName.GPT_IMAGE_1_MINI, 11_000)
    await charge(ledger, db, clock, 11, "c", OTHER, ModelName.GPT_IMAGE_1_5, 199_610)
    await charge(ledger, db, clock, 12, "d", MEMBER, ModelName.GPT_IMAGE_1, 250_000)
    await ledger.reserve("open", GUILD, MEMBER, [], 5_000)
    await ledger.reserve("released", GUILD, MEMBER, [], 5_000)
    await ledger.release("released")
    await ledger.grant(GUILD, MEMBER, 100_000, "bonus")
    clock.now = datetime(2025, 1, 20, tzinfo=UTC)
    return Reports(db, budgets, clock=clock)


async def test_report_groups_spend_by_member_model_and_day(reports: Reports) -> None:
    """Only settlements count as spend; holds, releases and grants do not."""
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    assert report.total_spent == 471_610 and report.total_jobs == 4
    assert report.by_member == [MemberSpend(MEMBER, 3, 272_000, 0), MemberSpend(OTHER, 1, 199_610, 0)]
    assert report.by_model == [
        ModelSpend("gpt-image-1", 1, 250_000),
        ModelSpend("gpt-image-1.5", 1, 199_610),
        ModelSpend("gpt-image-1-mini", 2, 22_000),
    ]
    assert report.by_day == [
        DaySpend(date(2025, 1, 10), 2, 22_000),
        DaySpend(date(2025, 1, 11), 1, 199_610),
        DaySpend(date(2025, 1, 12), 1, 250_000),
    ]


async def test_report_range_is_start_inclusive_end_exclusive(reports: Reports) -> None:
    """[11 Jan, 12 Jan) holds exactly the 11th's charges."""
    report = await reports.spend(GUILD, date(2025, 1, 11), date(2025, 1, 12))
    assert report.by_day == [DaySpend(date(2025, 1, 11), 1, 199_610)]
    empty = await reports.spend(GUILD + 1, date(2025, 1, 1), date(2025, 2, 1))
    assert empty.rows == () and empty.total_spent == 0


async def test_report_for_the_current_period_uses_the_server_period(reports: Reports, budgets: Budgets) -> None:
    """Without a period the server's own (month) is used; `week` narrows to Monday 13 January onwards."""
    month = await reports.spend_for_period(GUILD)
    assert month.total_spent == 471_610 and month.start == datetime(2025, 1, 1, tzinfo=UTC)
    week = await reports.spend_for_period(GUILD, "week")
    assert week.total_spent == 0 and week.start == datetime(2025, 1, 20, tzinfo=UTC)


async def test_csv_export_has_exact_dollar_amounts_and_every_digit_of_the_ids(reports: Reports) -> None:
    """The detail CSV has one row per day, member and model, with exact decimal dollars and the full 18-digit ids
    as plain digits (no exponent, no rounding, no quoting), byte for byte."""
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    text = to_csv(report)
    lines = text.encode("utf-8").splitlines()
    assert lines[0] == b"date,member_id,model,jobs,spent_usd,overrun_usd"
    assert lines[1] == b"2025-01-10,222222222222222222,gpt-image-1-mini,2,0.022000,0.000000"
    assert lines[2] == b"2025-01-11,333333333333333333,gpt-image-1.5,1,0.199610,0.000000"
    assert len(lines) == 4 and text.endswith("\n")
    assert [int(row[1]) for row in list(csv.reader(io.StringIO(text)))[1:]] == [MEMBER, OTHER, MEMBER]


@pytest.mark.parametrize(
    ("view", "header", "first"),
    [
        ("member", ["member_id", "jobs", "spent_usd", "overrun_usd"], [str(MEMBER), "3", "0.272000", "0.000000"]),
        ("model", ["model", "jobs", "spent_usd"], ["gpt-image-1", "1", "0.250000"]),
        ("day", ["date", "jobs", "spent_usd"], ["2025-01-10", "2", "0.022000"]),
    ],
)
async def test_csv_export_of_each_summary_view(
    reports: Reports, view: str, header: list[str], first: list[str]
) -> None:
    """The member, model and day views export their totals."""
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    rows = list(csv.reader(io.StringIO(to_csv(report, view))))  # type: ignore[arg-type]
    assert rows[0] == header and rows[1] == first


async def test_deleted_jobs_still_count_under_an_unknown_model(reports: Reports, db: Database) -> None:
    """Spend never disappears from reports when a job row is removed."""
    assert await db.run(lambda conn: JobWrites(conn).delete("c"))
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    assert ModelSpend("unknown", 1, 199_610) in report.by_model
    assert report.total_spent == 471_610


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2025, 2, 1), date(2025, 1, 1), "before its end"),
        (datetime(2025, 1, 1), date(2025, 2, 1), "time zone"),  # noqa: DTZ001 (a naive start is what is refused)
        ("2025-01-01", date(2025, 2, 1), "must be a date"),
    ],
)
async def test_bad_report_ranges_are_refused(reports: Reports, start: object, end: object, message: str) -> None:
    """Backwards ranges, naive datetimes and non-dates raise a clear error."""
    with pytest.raises(BudgetInputError, match=message):
        await reports.spend(GUILD, start, end)  # type: ignore[arg-type]


async def test_unknown_csv_view_is_refused(reports: Reports) -> None:
    """Only the four views exist."""
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    with pytest.raises(BudgetInputError, match="Unknown report view"):
        to_csv(report, "pie")  # type: ignore[arg-type]


async def test_overruns_are_reported_per_member_and_in_the_csv(reports: Reports, ledger: Ledger) -> None:
    """A charge above its reservation shows its uncovered part as overrun, in the member view and the CSV."""
    await ledger.settle("open", 7_250)  # held 5,000: 2,250 was not covered
    report = await reports.spend(GUILD, date(2025, 1, 1), date(2025, 2, 1))
    assert report.by_member[0] == MemberSpend(MEMBER, 4, 279_250, 2_250)
    rows = list(csv.reader(io.StringIO(to_csv(report, "member"))))
    assert rows[1] == [str(MEMBER), "4", "0.279250", "0.002250"]
