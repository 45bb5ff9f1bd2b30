"""Budgets: UTC periods and reset instants, rule precedence, config fallback, validated changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.billing.budgets import (
    BudgetInputError,
    BudgetRules,
    Budgets,
    MemberOverride,
    OverrideKind,
    parse_period,
    period_bounds,
)
from bot.catalog import Period
from bot.errors import InvalidRequestError
from bot.money import MAX_AMOUNT_MICROS
from bot.storage.database import Database
from bot.storage.servers import BudgetRuleQueries, GuildSettingsQueries
from tests.billing.conftest import ADMIN, GUILD, MEMBER, ROLE, ROLE_2

UTC_DT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        (
            "day",
            datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
            datetime(2025, 1, 15, tzinfo=UTC),
            datetime(2025, 1, 16, tzinfo=UTC),
        ),
        (
            "day",
            datetime(2025, 1, 15, 0, 0, tzinfo=UTC),
            datetime(2025, 1, 15, tzinfo=UTC),
            datetime(2025, 1, 16, tzinfo=UTC),
        ),
        (
            "day",
            datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
            datetime(2024, 12, 31, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
        ),
        (
            "week",
            datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
            datetime(2025, 1, 13, tzinfo=UTC),
            datetime(2025, 1, 20, tzinfo=UTC),
        ),
        (
            "week",
            datetime(2025, 1, 13, 0, 0, tzinfo=UTC),
            datetime(2025, 1, 13, tzinfo=UTC),
            datetime(2025, 1, 20, tzinfo=UTC),
        ),
        (
            "week",
            datetime(2025, 1, 19, 23, 59, tzinfo=UTC),
            datetime(2025, 1, 13, tzinfo=UTC),
            datetime(2025, 1, 20, tzinfo=UTC),
        ),
        (
            "week",
            datetime(2025, 1, 1, 8, 0, tzinfo=UTC),
            datetime(2024, 12, 30, tzinfo=UTC),
            datetime(2025, 1, 6, tzinfo=UTC),
        ),
        (
            "month",
            datetime(2025, 1, 15, 12, 0, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
            datetime(2025, 2, 1, tzinfo=UTC),
        ),
        (
            "month",
            datetime(2024, 2, 29, 23, 0, tzinfo=UTC),
            datetime(2024, 2, 1, tzinfo=UTC),
            datetime(2024, 3, 1, tzinfo=UTC),
        ),
        (
            "month",
            datetime(2024, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2024, 12, 1, tzinfo=UTC),
            datetime(2025, 1, 1, tzinfo=UTC),
        ),
        (
            "month",
            datetime(2025, 3, 1, 0, 0, tzinfo=UTC),
            datetime(2025, 3, 1, tzinfo=UTC),
            datetime(2025, 4, 1, tzinfo=UTC),
        ),
    ],
)
def test_periods_start_and_reset_at_utc_midnight(period: str, now: datetime, start: datetime, end: datetime) -> None:
    """Days reset at 00:00 UTC, weeks on Monday 00:00 UTC, months on the 1st 00:00 UTC."""
    assert period_bounds(period, now) == (start, end)


def test_periods_are_computed_in_utc_whatever_the_clock_zone() -> None:
    """23:30 on Sunday in UTC-5 is already Monday in UTC, so the new week has begun."""
    local = datetime(2025, 1, 19, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    start, end = period_bounds(Period.WEEK, local)
    assert start == datetime(2025, 1, 20, tzinfo=UTC) and end == datetime(2025, 1, 27, tzinfo=UTC)


@pytest.mark.parametrize("text", ["fortnight", "", "daily", "year"])
def test_unknown_period_names_are_refused_clearly(text: str) -> None:
    """Only day, week and month exist; anything else says so."""
    with pytest.raises(BudgetInputError, match="choose day, week or month"):
        parse_period(text)
    with pytest.raises(BudgetInputError):
        period_bounds(text, UTC_DT)


def test_period_names_are_case_and_space_tolerant() -> None:
    """`Week ` is the week period."""
    assert parse_period(" Week ") is Period.WEEK


def test_member_gets_the_largest_of_default_and_role_allowances() -> None:
    """Roles only ever raise a member above the default; the largest role wins."""
    rules = BudgetRules(Period.MONTH, 1_000_000, {ROLE: 3_000_000, ROLE_2: 5_000_000, 9: 500_000})
    assert rules.limit_for(MEMBER, [ROLE, ROLE_2]).allowance == 5_000_000
    assert rules.limit_for(MEMBER, [ROLE]).source == "role"
    assert rules.limit_for(MEMBER, [9]).allowance == 1_000_000
    assert rules.limit_for(MEMBER, [9]).source == "default"
    assert rules.limit_for(MEMBER, []).allowance == 1_000_000


def test_member_override_beats_roles_and_default() -> None:
    """An override decides alone: a smaller amount, unlimited, or blocked."""
    overrides = {1: MemberOverride.of_amount(10), 2: MemberOverride.unlimited(), 3: MemberOverride.blocked()}
    rules = BudgetRules(Period.DAY, 1_000_000, {ROLE: 9_000_000}, overrides, server_cap=50_000_000)
    assert rules.limit_for(1, [ROLE]).allowance == 10
    unlimited = rules.limit_for(2, [ROLE])
    assert unlimited.allowance is None and not unlimited.blocked and unlimited.server_cap == 50_000_000
    assert rules.limit_for(3, [ROLE]).blocked


@pytest.mark.parametrize(
    "build",
    [
        lambda: MemberOverride(OverrideKind.AMOUNT),
        lambda: MemberOverride(OverrideKind.AMOUNT, -5),
        lambda: MemberOverride(OverrideKind.UNLIMITED, 5),
        lambda: MemberOverride.of_amount(MAX_AMOUNT_MICROS + 1),
        lambda: MemberOverride("forever"),  # type: ignore[arg-type]
    ],
)
def test_malformed_overrides_are_refused(build: Callable[[], object]) -> None:
    """An amount override needs a sane amount; unlimited and blocked take none; unknown kinds fail."""
    with pytest.raises(BudgetInputError):
        build()


async def test_server_without_settings_uses_the_config_budget(budgets: Budgets) -> None:
    """Before any admin change the rules are the config file's [budget]: $1.00 a month, no cap."""
    rules = await budgets.rules(GUILD)
    assert rules == BudgetRules(Period.MONTH, 1_000_000, {}, {}, None)


async def test_changes_are_stored_and_read_back(budgets: Budgets) -> None:
    """Every setter's value shows up in rules(); removing a role or override with None works."""
    assert await budgets.set_period(GUILD, "week", actor_id=ADMIN) is Period.WEEK
    await budgets.set_default(GUILD, 2_500_000, actor_id=ADMIN)
    await budgets.set_cap(GUILD, 40_000_000)
    await budgets.set_role(GUILD, ROLE, 7_000_000)
    await budgets.set_role(GUILD, ROLE_2, 8_000_000)
    await budgets.set_role(GUILD, ROLE_2, None)
    await budgets.set_member(GUILD, MEMBER, MemberOverride.unlimited())
    await budgets.set_member(GUILD, 42, MemberOverride.of_amount(0))
    await budgets.set_member(GUILD, 43, MemberOverride.blocked())
    await budgets.set_member(GUILD, 43, None)
    rules = await budgets.rules(GUILD)
    assert rules == BudgetRules(
        Period.WEEK,
        2_500_000,
        {ROLE: 7_000_000},
        {MEMBER: MemberOverride.unlimited(), 42: MemberOverride.of_amount(0)},
        40_000_000,
    )
    await budgets.set_cap(GUILD, None)
    assert (await budgets.rules(GUILD)).server_cap is None


async def test_first_change_keeps_the_other_config_values(budgets: Budgets, db: Database) -> None:
    """Changing only the period of a new server keeps the config's default allowance, and records who changed it."""
    await budgets.set_period(GUILD, Period.DAY, actor_id=ADMIN)
    rules = await budgets.rules(GUILD)
    assert (rules.period, rules.default_allowance, rules.server_cap) == (Period.DAY, 1_000_000, None)
    stored = await db.run(lambda conn: GuildSettingsQueries(conn).get(GUILD))
    assert stored is not None and stored.updated_by == ADMIN


async def test_rules_of_other_servers_are_untouched(budgets: Budgets) -> None:
    """Budgets are per server."""
    await budgets.set_default(GUILD, 5_000_000)
    await budgets.set_role(GUILD, ROLE, 9_000_000)
    other = await budgets.rules(GUILD + 1)
    assert other.default_allowance == 1_000_000 and other.role_allowances == {}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b: b.set_default(GUILD, -1), "between"),
        (lambda b: b.set_default(GUILD, MAX_AMOUNT_MICROS + 1), "between"),
        (lambda b: b.set_default(GUILD, 1.5), "whole number"),
        (lambda b: b.set_default(GUILD, True), "whole number"),
        (lambda b: b.set_cap(GUILD, -100), "between"),
        (lambda b: b.set_role(GUILD, ROLE, 10**15), "between"),
        (lambda b: b.set_role(GUILD, -3, 10), "Discord id"),
        (lambda b: b.set_member(GUILD, MEMBER, 5), "override"),
        (lambda b: b.set_period(GUILD, "fortnight"), "choose day, week or month"),
        (lambda b: b.set_default("guild", 10), "Discord id"),
        (lambda b: b.set_default(GUILD, 10, actor_id=-1), "Discord id"),
    ],
)
async def test_bad_budget_input_is_refused_and_changes_nothing(
    budgets: Budgets, db: Database, call: Callable[[Budgets], Awaitable[object]], message: str
) -> None:
    """Negative, absurd or mistyped values raise a clear InvalidRequestError and leave the rules as they were."""
    await budgets.set_default(GUILD, 3_000_000)
    before = await budgets.rules(GUILD)
    with pytest.raises(BudgetInputError, match=message) as raised:
        await call(budgets)
    assert isinstance(raised.value, InvalidRequestError)
    assert await budgets.rules(GUILD) == before
    assert await db.run(lambda conn: BudgetRuleQueries(conn).role_allowances(GUILD)) == {}
