"""Ledger: reservations checked against member and server budgets, idempotent settle/release, grants, reconcile."""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.billing.budgets import Budgets, MemberOverride
from bot.billing.errors import BudgetExceededError, BudgetInputError, LedgerError
from bot.billing.ledger import Ledger
from bot.catalog import Background, ModelName, OutputFormat, Period, Quality, Size
from bot.clock import utc_now
from bot.errors import AtelierError, InvalidRequestError
from bot.storage.database import Database
from bot.storage.jobs import JobQueries, JobRepository
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import JobState, NewJob
from tests.billing.conftest import ADMIN, GUILD, MEMBER, OTHER, ROLE, Clock
from tests.job_writes import JobWrites

FEB_1 = datetime(2025, 2, 1, tzinfo=UTC)


async def ledger_rows(db: Database) -> list[tuple[object, ...]]:
    return await db.run(lambda conn: [tuple(row) for row in conn.execute("SELECT * FROM ledger ORDER BY id")])


def new_job(job_id: str, estimate: int = 11_000, member: int = MEMBER) -> NewJob:
    return NewJob(
        member_id=member,
        guild_id=GUILD,
        channel_id=77,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt="a red fox in snow",
        estimate=estimate,
        id=job_id,
    )


async def test_reservation_within_the_allowance_is_held(ledger: Ledger) -> None:
    """A request that fits is held: reserved goes up, remaining goes down, the reset instant is the period end."""
    reservation = await ledger.reserve("job1", GUILD, MEMBER, [], 400_000)
    assert reservation.created and reservation.estimate == 400_000 and reservation.resets_at == FEB_1
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.allowance, status.spent, status.reserved, status.remaining) == (1_000_000, 0, 400_000, 600_000)
    assert (status.period, status.period_start, status.resets_at) == (
        Period.MONTH,
        datetime(2025, 1, 1, tzinfo=UTC),
        FEB_1,
    )


async def test_reservation_that_exactly_uses_the_allowance_is_allowed(ledger: Ledger) -> None:
    """spent + reserved + estimate == allowance fits; one micro-dollar more does not."""
    await ledger.reserve("a", GUILD, MEMBER, [], 600_000)
    await ledger.settle("a", 600_000)
    await ledger.reserve("b", GUILD, MEMBER, [], 400_000)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("c", GUILD, MEMBER, [], 1)


async def test_reservation_over_the_member_budget_is_refused_with_the_numbers(ledger: Ledger, db: Database) -> None:
    """A refusal names what was needed, what is left and when the budget resets, and records nothing."""
    await ledger.reserve("first", GUILD, MEMBER, [], 970_000)
    before = await ledger_rows(db)
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("second", GUILD, MEMBER, [], 50_000)
    error = raised.value
    assert (error.scope, error.needed, error.remaining, error.resets_at) == ("member", 50_000, 30_000, FEB_1)
    # The member's sentence (with Discord's timestamp markup) is written by the Discord wing: tests/discord/test_errors.
    assert str(error) == "member budget: needs about $0.05 but you have $0.03 left until 2025-02-01T00:00:00+00:00"
    assert isinstance(error, AtelierError)
    assert await ledger_rows(db) == before


async def test_server_cap_limits_all_members_together(ledger: Ledger, budgets: Budgets) -> None:
    """Two members each within their own allowance cannot together pass the server cap."""
    await budgets.set_cap(GUILD, 1_500_000)
    await ledger.reserve("m1", GUILD, MEMBER, [], 900_000)
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("m2", GUILD, OTHER, [], 700_000)
    assert (raised.value.scope, raised.value.remaining) == ("server", 600_000)
    assert "the server has only $0.60 left" in raised.value.user_message
    await ledger.reserve("m2", GUILD, OTHER, [], 600_000)


async def test_blocked_member_is_refused_everything(ledger: Ledger, budgets: Budgets) -> None:
    """A blocked member cannot reserve even a zero estimate, whatever their roles."""
    await budgets.set_role(GUILD, ROLE, 50_000_000)
    await budgets.set_member(GUILD, MEMBER, MemberOverride.blocked())
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("j", GUILD, MEMBER, [ROLE], 0)
    assert raised.value.scope == "blocked" and "blocked" in raised.value.user_message
    status = await ledger.status(GUILD, MEMBER, [ROLE])
    assert status.blocked and status.remaining == 0 and status.available == 0


async def test_unlimited_member_skips_the_member_check_but_not_the_cap(ledger: Ledger, budgets: Budgets) -> None:
    """Unlimited means no personal limit; the server cap still applies."""
    await budgets.set_member(GUILD, MEMBER, MemberOverride.unlimited())
    await budgets.set_cap(GUILD, 5_000_000)
    await ledger.reserve("big", GUILD, MEMBER, [], 4_000_000)
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("bigger", GUILD, MEMBER, [], 2_000_000)
    assert raised.value.scope == "server"
    status = await ledger.status(GUILD, MEMBER, [])
    assert status.allowance is None and status.remaining is None
    assert status.server_remaining == 1_000_000 and status.available == 1_000_000


async def test_role_allowance_raises_the_member_limit(ledger: Ledger, budgets: Budgets) -> None:
    """With a $3 role the member may reserve more than the $1 default."""
    await budgets.set_role(GUILD, ROLE, 3_000_000)
    await ledger.reserve("j", GUILD, MEMBER, [ROLE], 2_500_000)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("k", GUILD, OTHER, [], 2_500_000)


async def test_override_amount_beats_a_larger_role(ledger: Ledger, budgets: Budgets) -> None:
    """A member override of $0.10 applies even though a role gives $3."""
    await budgets.set_role(GUILD, ROLE, 3_000_000)
    await budgets.set_member(GUILD, MEMBER, MemberOverride.of_amount(100_000))
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("j", GUILD, MEMBER, [ROLE], 150_000)
    assert raised.value.remaining == 100_000


async def test_grants_add_and_deductions_remove_budget_for_the_current_period(ledger: Ledger, clock: Clock) -> None:
    """A grant raises this period's limit; a deduction lowers it; neither carries into the next period."""
    entry = await ledger.grant(GUILD, MEMBER, 500_000, "helped with the event", actor_id=ADMIN)
    assert (entry.amount, entry.reason, entry.actor_id) == (500_000, "helped with the event", ADMIN)
    await ledger.reserve("j", GUILD, MEMBER, [], 1_400_000)
    await ledger.grant(GUILD, MEMBER, -200_000, "correction")
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.granted, status.reserved, status.remaining) == (300_000, 1_400_000, 0)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("k", GUILD, MEMBER, [], 1)
    clock.now = FEB_1 + timedelta(hours=1)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.granted, status.reserved, status.spent, status.remaining) == (0, 0, 0, 1_000_000)


async def test_settle_charges_the_actual_cost_and_frees_the_rest(ledger: Ledger) -> None:
    """Settling below the estimate charges the actual cost; the hold is gone."""
    await ledger.reserve("j", GUILD, MEMBER, [], 220_165)
    result = await ledger.settle("j", 199_610)
    assert (result.estimate, result.actual, result.overrun, result.repeated) == (220_165, 199_610, 0, False)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved, status.remaining) == (199_610, 0, 800_390)


async def test_settle_twice_changes_nothing(ledger: Ledger, db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """A repeated settlement (even with another amount) reports the first charge and writes nothing."""
    await ledger.reserve("j", GUILD, MEMBER, [], 50_000)
    await ledger.settle("j", 40_000)
    before = await ledger_rows(db)
    with caplog.at_level(logging.WARNING, logger="bot.billing.ledger"):
        again = await ledger.settle("j", 45_000)
    assert again.repeated and again.actual == 40_000
    assert await ledger_rows(db) == before
    assert "already settled" in caplog.text


async def test_overrun_is_recorded_logged_and_blocks_the_next_request(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    """When Runware bills more than was held, the real cost is charged, the overrun kept, and logged."""
    await ledger.reserve("j", GUILD, MEMBER, [], 900_000)
    with caplog.at_level(logging.WARNING, logger="bot.billing.ledger"):
        result = await ledger.settle("j", 1_100_000)
    assert (result.actual, result.overrun) == (1_100_000, 200_000)
    assert "overrun on job j" in caplog.text and "$0.20 not covered" in caplog.text
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.remaining) == (1_100_000, 0)
    with pytest.raises(BudgetExceededError) as raised:
        await ledger.reserve("next", GUILD, MEMBER, [], 1)
    assert raised.value.remaining == 0


async def test_release_ends_the_hold_once(ledger: Ledger, db: Database) -> None:
    """Releasing frees the hold and returns True; a second release returns False and writes nothing."""
    await ledger.reserve("j", GUILD, MEMBER, [], 300_000)
    assert await ledger.release("j")
    before = await ledger_rows(db)
    assert not await ledger.release("j")
    assert await ledger_rows(db) == before
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved) == (0, 0)


async def test_release_after_settle_changes_nothing(ledger: Ledger, db: Database) -> None:
    """Once settled, a job's charge stands; a late release is a no-op."""
    await ledger.reserve("j", GUILD, MEMBER, [], 300_000)
    await ledger.settle("j", 250_000)
    before = await ledger_rows(db)
    assert not await ledger.release("j")
    assert await ledger_rows(db) == before


async def test_settle_after_release_records_the_whole_cost_as_overrun(ledger: Ledger) -> None:
    """If a released job turns out to have been billed, the money was spent: it is charged, all of it overrun."""
    await ledger.reserve("j", GUILD, MEMBER, [], 300_000)
    await ledger.release("j")
    result = await ledger.settle("j", 280_000)
    assert (result.actual, result.overrun) == (280_000, 280_000)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved) == (280_000, 0)


@pytest.mark.parametrize("operation", ["settle", "release"])
async def test_unknown_job_is_a_clear_error_and_changes_nothing(ledger: Ledger, db: Database, operation: str) -> None:
    """Settling or releasing a job that never reserved raises LedgerError naming the job."""
    await ledger.reserve("known", GUILD, MEMBER, [], 10_000)
    before = await ledger_rows(db)
    call = ledger.settle("ghost", 10_000) if operation == "settle" else ledger.release("ghost")
    with pytest.raises(LedgerError, match="No reservation was found for job ghost"):
        await call
    assert await ledger_rows(db) == before


async def test_repeated_reserve_returns_the_existing_hold(ledger: Ledger, db: Database) -> None:
    """Reserving the same job again with the same figures holds nothing more, even with the budget now full."""
    await ledger.reserve("j", GUILD, MEMBER, [], 1_000_000)
    before = await ledger_rows(db)
    again = await ledger.reserve("j", GUILD, MEMBER, [], 1_000_000)
    assert not again.created and again.estimate == 1_000_000
    assert await ledger_rows(db) == before


async def test_conflicting_or_late_reserve_of_a_job_is_refused(ledger: Ledger) -> None:
    """A job cannot be reserved with other figures, nor again after it was settled or released."""
    await ledger.reserve("j", GUILD, MEMBER, [], 10_000)
    with pytest.raises(LedgerError, match="different reservation"):
        await ledger.reserve("j", GUILD, MEMBER, [], 20_000)
    await ledger.settle("j", 10_000)
    with pytest.raises(LedgerError, match="already settled or released"):
        await ledger.reserve("j", GUILD, MEMBER, [], 10_000)


async def test_reserve_can_create_the_job_row_in_the_same_transaction(ledger: Ledger, db: Database) -> None:
    """With `job=`, the hold and the job row appear together (the row is returned); a refused reservation creates
    neither."""
    reservation = await ledger.reserve("with-row", GUILD, MEMBER, [], 11_000, job=new_job("with-row"))
    jobs = JobRepository(db)
    stored = await jobs.get("with-row")
    assert stored is not None and stored.state is JobState.QUEUED and stored.estimate == 11_000
    assert reservation.created and reservation.job == stored
    repeated = await ledger.reserve("with-row", GUILD, MEMBER, [], 11_000, job=new_job("with-row"))
    assert not repeated.created and repeated.job == stored
    assert (await ledger.reserve("no-row", GUILD, MEMBER, [], 11_000)).job is None
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("too-big", GUILD, MEMBER, [], 5_000_000, job=new_job("too-big", 5_000_000))
    assert await jobs.get("too-big") is None
    assert await db.run(lambda conn: LedgerQueries(conn).entries_for_job("too-big")) == []
    with pytest.raises(BudgetInputError, match="does not match"):
        await ledger.reserve("x", GUILD, MEMBER, [], 11_000, job=new_job("y"))


@pytest.mark.parametrize(
    ("change", "wrong"),
    [
        ({"guild_id": GUILD + 1}, "its server"),
        ({"guild_id": None}, "its server None"),
        ({"member_id": OTHER}, f"its member {OTHER}"),
        ({"estimate": 10_000}, "its estimate 10000 (the reservation's is 11000)"),
    ],
)
async def test_reserve_refuses_a_job_row_for_another_server_member_or_estimate(
    ledger: Ledger, db: Database, change: dict[str, object], wrong: str
) -> None:
    """reconcile settles a hold from its job row, so a row that describes another reservation is refused with a
    clear error, and neither the hold nor the row is written."""
    row = dataclasses.replace(new_job("mismatch"), **change)  # type: ignore[arg-type]
    with pytest.raises(BudgetInputError, match="The job row does not match the reservation") as caught:
        await ledger.reserve("mismatch", GUILD, MEMBER, [], 11_000, job=row)
    assert wrong in str(caught.value)
    assert await ledger_rows(db) == []
    assert await JobRepository(db).get("mismatch") is None


@pytest.mark.parametrize("refused_now", [False, True], ids=["fits-now", "refused-now"])
async def test_a_repeated_reserve_after_the_period_ended_reports_the_holds_own_reset(
    ledger: Ledger, budgets: Budgets, clock: Clock, refused_now: bool
) -> None:
    """A hold made on 31 January, reserved again on 1 February, still resets on 1 February (its own period), not on
    1 March; whether or not the new period would allow it."""
    clock.now = datetime(2025, 1, 31, 23, 0, tzinfo=UTC)
    first = await ledger.reserve("boundary", GUILD, MEMBER, [], 11_000)
    assert first.resets_at == FEB_1
    clock.now = datetime(2025, 2, 1, 0, 30, tzinfo=UTC)
    if refused_now:
        await budgets.set_member(GUILD, MEMBER, MemberOverride.blocked())
    again = await ledger.reserve("boundary", GUILD, MEMBER, [], 11_000)
    assert not again.created
    assert (again.reserved_at, again.resets_at) == (first.reserved_at, FEB_1)
    assert (await ledger.reserve("fresh", GUILD, OTHER, [], 11_000)).resets_at == datetime(2025, 3, 1, tzinfo=UTC)


async def database_dump(db: Database) -> list[str]:
    return await db.run(lambda conn: list(conn.iterdump()), write=False)


async def fresh(ledger: Ledger, budgets: Budgets) -> list[int]:
    return []


async def mostly_held(ledger: Ledger, budgets: Budgets) -> list[int]:
    await ledger.reserve("held", GUILD, MEMBER, [], 970_000)
    return []


async def overrun(ledger: Ledger, budgets: Budgets) -> list[int]:
    """Spent past the allowance: what is left is negative, so even a zero estimate does not fit."""
    await ledger.reserve("over", GUILD, MEMBER, [], 900_000)
    await ledger.settle("over", 1_100_000)
    return []


async def blocked(ledger: Ledger, budgets: Budgets) -> list[int]:
    await budgets.set_role(GUILD, ROLE, 50_000_000)
    await budgets.set_member(GUILD, MEMBER, MemberOverride.blocked())
    return [ROLE]


async def unlimited_under_a_cap(ledger: Ledger, budgets: Budgets) -> list[int]:
    await budgets.set_member(GUILD, MEMBER, MemberOverride.unlimited())
    await budgets.set_cap(GUILD, 5_000_000)
    await ledger.reserve("big", GUILD, MEMBER, [], 4_000_000)
    return []


async def override_below_a_role(ledger: Ledger, budgets: Budgets) -> list[int]:
    await budgets.set_role(GUILD, ROLE, 3_000_000)
    await budgets.set_member(GUILD, MEMBER, MemberOverride.of_amount(100_000))
    return [ROLE]


async def cap_used_by_another_member(ledger: Ledger, budgets: Budgets) -> list[int]:
    await budgets.set_role(GUILD, ROLE, 3_000_000)
    await budgets.set_cap(GUILD, 1_500_000)
    await ledger.reserve("theirs", GUILD, OTHER, [], 900_000)
    return [ROLE]


async def grants_and_deductions(ledger: Ledger, budgets: Budgets) -> list[int]:
    await ledger.grant(GUILD, MEMBER, 500_000, "event")
    await ledger.reserve("spent", GUILD, MEMBER, [], 1_000_000)
    await ledger.settle("spent", 950_000)
    await ledger.grant(GUILD, MEMBER, -200_000, "correction")
    return []


async def daily_period(ledger: Ledger, budgets: Budgets) -> list[int]:
    await budgets.set_period(GUILD, "day")
    await ledger.reserve("today", GUILD, MEMBER, [], 600_000)
    return []


Setup = Callable[[Ledger, Budgets], Awaitable[list[int]]]
CHECKED_AMOUNTS = (0, 1, 10_000, 30_000, 100_000, 350_000, 600_000, 1_000_000, 1_000_001, 5_000_000)


def refusal_of(error: BudgetExceededError) -> tuple[object, ...]:
    return (type(error), error.scope, error.needed, error.remaining, error.resets_at, error.user_message)


@pytest.mark.parametrize(
    "setup",
    [
        fresh,
        mostly_held,
        overrun,
        blocked,
        unlimited_under_a_cap,
        override_below_a_role,
        cap_used_by_another_member,
        grants_and_deductions,
        daily_period,
    ],
)
async def test_check_refuses_exactly_what_reserve_refuses_and_writes_nothing(
    ledger: Ledger, budgets: Budgets, db: Database, setup: Setup
) -> None:
    """For every amount, `check` raises the same refusal (scope, numbers, reset, message) that `reserve` then raises,
    or passes when `reserve` then holds; the database is byte-for-byte the same after a `check`."""
    roles = await setup(ledger, budgets)
    outcomes: set[object] = set()
    for amount in CHECKED_AMOUNTS:
        before = await database_dump(db)
        checked: tuple[object, ...] | None = None
        try:
            await ledger.check(GUILD, MEMBER, roles, amount)
        except BudgetExceededError as error:
            checked = refusal_of(error)
        assert await database_dump(db) == before, f"check({amount}) wrote to the database"
        job_id = f"probe-{amount}"
        try:
            await ledger.reserve(job_id, GUILD, MEMBER, roles, amount)
        except BudgetExceededError as error:
            assert checked == refusal_of(error), amount
        else:
            assert checked is None, f"check refused {amount}, which reserve then held"
            await ledger.release(job_id)
        outcomes.add(None if checked is None else checked[1])
    assert len(outcomes) > 1 or setup in (blocked, overrun), f"{setup.__name__} only ever saw {outcomes}"


async def test_job_is_charged_to_the_period_its_reservation_was_made_in(ledger: Ledger, clock: Clock) -> None:
    """A hold from 31 January settled on 1 February counts in January; February starts clean."""
    clock.now = datetime(2025, 1, 31, 23, 59, tzinfo=UTC)
    await ledger.reserve("late", GUILD, MEMBER, [], 900_000)
    clock.now = datetime(2025, 2, 1, 0, 1, tzinfo=UTC)
    feb = await ledger.status(GUILD, MEMBER, [])
    assert (feb.spent, feb.reserved, feb.remaining) == (0, 0, 1_000_000)
    await ledger.settle("late", 880_000)
    feb = await ledger.status(GUILD, MEMBER, [])
    assert (feb.spent, feb.reserved) == (0, 0)
    clock.now = datetime(2025, 1, 31, 23, 59, 30, tzinfo=UTC)
    jan = await ledger.status(GUILD, MEMBER, [])
    assert (jan.spent, jan.reserved) == (880_000, 0)


async def test_changing_the_period_recounts_spend_over_the_new_period(
    ledger: Ledger, budgets: Budgets, clock: Clock
) -> None:
    """Switching a month budget to daily counts only today's spend, and resets at the next midnight."""
    clock.now = datetime(2025, 1, 14, 10, 0, tzinfo=UTC)
    await ledger.reserve("yesterday", GUILD, MEMBER, [], 600_000)
    await ledger.settle("yesterday", 600_000)
    clock.now = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("today", GUILD, MEMBER, [], 600_000)
    await budgets.set_period(GUILD, "day")
    reservation = await ledger.reserve("today", GUILD, MEMBER, [], 600_000)
    assert reservation.resets_at == datetime(2025, 1, 16, tzinfo=UTC)


ReserveCall = Callable[[Ledger], Awaitable[object]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda ledger: ledger.reserve("j", GUILD, MEMBER, [], -1), "estimate must be between"),
        (lambda ledger: ledger.reserve("j", GUILD, MEMBER, [], 10**13), "estimate must be between"),
        (lambda ledger: ledger.reserve("j", GUILD, MEMBER, [], 0.5), "whole number"),
        (lambda ledger: ledger.reserve("j", GUILD, MEMBER, [], True), "whole number"),
        (lambda ledger: ledger.reserve("", GUILD, MEMBER, [], 10), "job id"),
        (lambda ledger: ledger.reserve("x" * 65, GUILD, MEMBER, [], 10), "job id"),
        (lambda ledger: ledger.reserve("j", -1, MEMBER, [], 10), "server id"),
        (lambda ledger: ledger.reserve("j", GUILD, MEMBER, ["role"], 10), "role id"),
        (lambda ledger: ledger.check(GUILD, MEMBER, [], -1), "estimate must be between"),
        (lambda ledger: ledger.check(GUILD, -1, [], 10), "member id"),
        (lambda ledger: ledger.check(GUILD, MEMBER, ["role"], 10), "role id"),
        (lambda ledger: ledger.settle("held", -5), "actual cost"),
        (lambda ledger: ledger.settle("held", 10**13), "actual cost"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, 0, "nothing"), "must not be zero"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, 10**13, "absurd"), "grant must be between"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, -(10**13), "absurd"), "grant must be between"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, 1000, "   "), "needs a reason"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, 1000, "x" * 501), "at most 500"),
        (lambda ledger: ledger.grant(GUILD, MEMBER, 1000, "ok", actor_id=-2), "admin id"),
    ],
)
async def test_bad_ledger_input_is_refused_and_changes_nothing(
    ledger: Ledger, db: Database, call: ReserveCall, message: str
) -> None:
    """Negative, absurd or mistyped amounts and ids raise a clear InvalidRequestError; the ledger is untouched."""
    await ledger.reserve("held", GUILD, MEMBER, [], 10_000)
    before = await ledger_rows(db)
    with pytest.raises(BudgetInputError, match=message) as raised:
        await call(ledger)
    assert isinstance(raised.value, InvalidRequestError)
    assert await ledger_rows(db) == before


async def create_job_in_state(db: Database, job_id: str, state: JobState, cost: int | None) -> None:
    await db.run(lambda conn: JobQueries(conn).insert(new_job(job_id, 100_000), utc_now()))
    await db.run(lambda conn: JobQueries(conn).update_state(job_id, state, utc_now()))
    if cost is not None:
        await db.run(lambda conn: JobWrites(conn).set_cost(job_id, cost, utc_now()))


async def test_reconcile_resolves_holds_of_finished_and_missing_jobs(ledger: Ledger, db: Database) -> None:
    """At start-up: delivered jobs settle (to their cost), every other finished job and orphan releases (a failed job
    is never charged, even with a cost on record), and active jobs keep their hold."""
    cases = {
        "ok-cost": (JobState.SUCCEEDED, 90_000),
        "ok-nocost": (JobState.SUCCEEDED, None),
        "failed": (JobState.FAILED, None),
        "failed-billed": (JobState.FAILED, 30_000),
        "cancelled": (JobState.CANCELLED, None),
        "rejected": (JobState.REJECTED, None),
        "queued": (JobState.QUEUED, None),
        "submitted": (JobState.SUBMITTED, None),
        "approval": (JobState.AWAITING_APPROVAL, None),
    }
    for job_id, (state, cost) in cases.items():
        await ledger.reserve(job_id, GUILD, OTHER if job_id == "ok-nocost" else MEMBER, [], 100_000)
        await create_job_in_state(db, job_id, state, cost)
    await ledger.reserve("orphan", GUILD, OTHER, [], 100_000)
    await ledger.reserve("done-already", GUILD, OTHER, [], 100_000)
    await ledger.settle("done-already", 100_000)

    report = await ledger.reconcile()

    assert sorted(report.settled) == ["ok-cost", "ok-nocost"]
    assert sorted(report.released) == ["cancelled", "failed", "failed-billed", "orphan", "rejected"]
    assert sorted(report.kept) == ["approval", "queued", "submitted"]
    assert report.totals_repaired == 0
    member = await ledger.status(GUILD, MEMBER, [])
    assert (member.spent, member.reserved) == (90_000, 300_000)
    other = await ledger.status(GUILD, OTHER, [])
    assert (other.spent, other.reserved) == (100_000 + 100_000, 0)
    again = await ledger.reconcile()
    assert (again.settled, again.released, sorted(again.kept)) == ([], [], ["approval", "queued", "submitted"])


async def test_reconcile_grace_keeps_a_fresh_hold_whose_job_row_is_not_written_yet(
    ledger: Ledger, clock: Clock
) -> None:
    """Run while the bot is live, reconcile leaves holds younger than the grace period alone."""
    await ledger.reserve("in-flight", GUILD, MEMBER, [], 100_000)
    clock.advance(seconds=30)
    report = await ledger.reconcile(orphan_grace=timedelta(minutes=5))
    assert report.kept == ["in-flight"] and report.released == []
    clock.advance(minutes=10)
    assert (await ledger.reconcile(orphan_grace=timedelta(minutes=5))).released == ["in-flight"]


async def test_reconcile_rebuilds_daily_totals_that_disagree_with_the_ledger(ledger: Ledger, db: Database) -> None:
    """If the derived totals were ever damaged, reconcile recomputes them from the ledger, the source of truth."""
    await ledger.reserve("j", GUILD, MEMBER, [], 100_000)
    await ledger.settle("j", 80_000)

    def damage(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE member_day_totals SET spent = spent + 5")
        conn.execute("DELETE FROM guild_day_totals")

    await db.run(damage)
    report = await ledger.reconcile()
    assert report.totals_repaired == 2
    assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches()) == 0
    assert (await ledger.status(GUILD, MEMBER, [])).spent == 80_000


async def test_settle_delivered_marks_the_job_and_charges_it_in_one_unit(ledger: Ledger, db: Database) -> None:
    """A submitted job: succeeded with its cost and message, and settled; a job no longer submitted: nothing."""
    await ledger.reserve("sent", GUILD, MEMBER, [], 11_000, job=new_job("sent"))
    await db.run(lambda conn: JobQueries(conn).begin_submit("sent", "3b241101-e2bb-4255-8caf-4136c566a962", utc_now()))
    result = await ledger.settle_delivered("sent", 10_000, 42)
    assert result is not None and (result.actual, result.repeated) == (10_000, False)
    job = await JobRepository(db).get("sent")
    assert job is not None and job.state is JobState.SUCCEEDED
    assert (job.cost, job.result_message_id) == (10_000, 42)
    assert await ledger.settle_delivered("sent", 10_000, 42) is None, "delivered once, charged once"

    await ledger.reserve("gone", GUILD, MEMBER, [], 11_000, job=new_job("gone"))
    await db.run(lambda conn: JobQueries(conn).update_state("gone", JobState.CANCELLED, utc_now()))
    before = await ledger_rows(db)
    assert await ledger.settle_delivered("gone", 10_000, 43) is None
    assert await ledger_rows(db) == before, "a cancelled job is not charged"
    status = await ledger.status(GUILD, MEMBER, [])
    assert status.spent == 10_000


async def test_settle_delivered_without_a_reservation_writes_nothing(ledger: Ledger, db: Database) -> None:
    """No hold: `LedgerError`, and the job is not marked delivered either (the unit is rolled back whole)."""
    await db.run(lambda conn: JobQueries(conn).insert(new_job("orphan"), utc_now()))
    await db.run(
        lambda conn: JobQueries(conn).begin_submit("orphan", "0c9d5f1e-7b5a-4a8e-9e38-2f1d1a6b9c3d", utc_now())
    )
    with pytest.raises(LedgerError):
        await ledger.settle_delivered("orphan", 10_000, 44)
    job = await JobRepository(db).get("orphan")
    assert job is not None and job.state is JobState.SUBMITTED and job.delivered_at is None
