"""Property tests: random interleavings of reserve, refit (a failover's re-reservation at a new estimate), settle,
release, grant and rule changes, sequential and concurrent on one database file, never overspend a budget and always
add up.

Limits are judged at reservation time (see tests/billing/invariants.py): every run checks that each hold fitted the
rules in force when it was made, and runs without rule changes or deductions also check the totals at the end.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bot.billing.budgets import BudgetRules, Budgets, MemberOverride, period_bounds
from bot.billing.errors import BudgetExceededError, LedgerError
from bot.billing.ledger import Ledger
from bot.catalog import Background, ModelName, OutputFormat, Period, Quality, Size
from bot.settings import load_app_config
from bot.storage.database import Database
from bot.storage.rows import NewJob
from tests.billing.conftest import CONFIG_PATH, Clock
from tests.billing.invariants import (
    check_end_within_limits,
    check_every_hold_fit,
    check_ledger_consistent,
    open_hold_ids,
    sums_by_member,
)

T = TypeVar("T")
CONFIG = load_app_config(CONFIG_PATH)
GUILD = 7
MEMBERS = (11, 12, 13)
ROLES = (21, 22)
START = datetime(2025, 1, 30, 20, 0, tzinfo=UTC)

members = st.sampled_from(MEMBERS)
role_sets = st.lists(st.sampled_from(ROLES), max_size=2, unique=True)
# Multiples of $0.01 make exact fits (spent + reserved + estimate == limit) common, so boundaries get exercised.
estimates = st.integers(0, 40).map(lambda cents: cents * 10_000)
actuals = st.integers(0, 60).map(lambda cents: cents * 10_000)
amounts = st.integers(0, 200).map(lambda cents: cents * 10_000)
caps = st.integers(0, 150).map(lambda cents: cents * 10_000)
overrides = st.one_of(
    st.none(),
    st.builds(MemberOverride.of_amount, amounts),
    st.just(MemberOverride.unlimited()),
    st.just(MemberOverride.blocked()),
)


def job_row(job_id: str, member: int, estimate: int) -> NewJob:
    """The job row a refittable reservation creates (`refit` moves a stored, queued job)."""
    return NewJob(
        member_id=member,
        guild_id=GUILD,
        channel_id=None,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt="property test",
        estimate=estimate,
        id=job_id,
    )


def other_provider(provider: str) -> str:
    return "runbase" if provider == "runware" else "runware"


# --- a model of the budget rules and the ledger, for the sequential machine --------------------------------------


@dataclass
class ModelJob:
    member: int
    estimate: int
    at: datetime
    held: bool = True
    released: bool = False
    charged: int | None = None
    provider: str | None = None
    """The provider of the job's row (None: reserved without a row, so it cannot move)."""


@dataclass
class ModelTotals:
    spent: int = 0
    reserved: int = 0
    granted: int = 0


@dataclass
class Model:
    rules: BudgetRules
    jobs: dict[str, ModelJob] = field(default_factory=dict)
    grants: list[tuple[int, int, datetime]] = field(default_factory=list)

    def totals(self, member: int | None, now: datetime) -> ModelTotals:
        """Totals for the period containing `now` (member None: the whole server)."""
        start, end = period_bounds(self.rules.period, now)
        totals = ModelTotals()
        for job in self.jobs.values():
            if (member is None or job.member == member) and start <= job.at < end:
                totals.reserved += job.estimate if job.held else 0
                totals.spent += job.charged or 0
        for who, amount, at in self.grants:
            if (member is None or who == member) and start <= at < end:
                totals.granted += amount
        return totals

    def refusal(self, member: int, roles: Sequence[int], estimate: int, now: datetime) -> tuple[str, int] | None:
        """None if the reservation fits, else (scope, remaining) as the ledger must report them."""
        limit = self.rules.limit_for(member, roles)
        if limit.blocked:
            return ("blocked", 0)
        mine, server = self.totals(member, now), self.totals(None, now)
        if limit.allowance is not None:
            left = limit.allowance + mine.granted - mine.spent - mine.reserved
            if estimate > left:
                return ("member", max(0, left))
        if limit.server_cap is not None:
            left = limit.server_cap - server.spent - server.reserved
            if estimate > left:
                return ("server", max(0, left))
        return None


class LedgerStateMachine(RuleBasedStateMachine):
    """Drives the real ledger on a real file and a model side by side; they must agree after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory(prefix="atelier-props-")
        self.clock = Clock(START)
        self.db = self.run(Database.open(Path(self.folder.name) / "ledger.sqlite3"))
        self.budgets = Budgets(self.db, CONFIG, clock=self.clock)
        self.ledger = Ledger(self.db, self.budgets, clock=self.clock)
        self.model = Model(self.run(self.budgets.rules(GUILD)))
        self.counter = 0

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def next_job(self) -> str:
        self.counter += 1
        return f"job{self.counter}"

    def pick(self, index: int) -> str:
        ids = [*self.model.jobs, "never-reserved"]
        return ids[index % len(ids)]

    def teardown(self) -> None:
        try:
            for job_id, job in self.model.jobs.items():
                if job.held:
                    assert self.run(self.ledger.release(job_id))
            assert self.run(self.db.run(open_hold_ids)) == set()
            for sums in self.run(self.db.run(sums_by_member)).values():
                assert sums.reserved == 0
            self.run(self.db.run(check_ledger_consistent))
        finally:
            self.run(self.db.close())
            self.loop.close()
            self.folder.cleanup()

    def expect_reserve(self, job_id: str, member: int, roles: list[int], estimate: int, *, row: bool = False) -> bool:
        expected = self.model.refusal(member, roles, estimate, self.clock.now)
        checked: BudgetExceededError | None = None
        try:
            self.run(self.ledger.check(GUILD, member, roles, estimate))
        except BudgetExceededError as error:
            checked = error
        try:
            job = job_row(job_id, member, estimate) if row else None
            self.run(self.ledger.reserve(job_id, GUILD, member, roles, estimate, job=job))
        except BudgetExceededError as error:
            assert expected == (error.scope, error.remaining), (expected, error)
            assert error.resets_at == period_bounds(self.model.rules.period, self.clock.now)[1]
            assert checked is not None, f"check passed {estimate}, which reserve refuses: {error}"
            assert (checked.scope, checked.needed, checked.remaining, checked.resets_at) == (
                error.scope,
                error.needed,
                error.remaining,
                error.resets_at,
            )
            return False
        assert expected is None, f"reserved {estimate} although the model refuses it: {expected}"
        assert checked is None, f"check refused {estimate}, which reserve holds: {checked}"
        self.model.jobs[job_id] = ModelJob(member, estimate, self.clock.now, provider="runware" if row else None)
        return True

    @rule(member=members, roles=role_sets, estimate=estimates, row=st.booleans())
    def reserve(self, member: int, roles: list[int], estimate: int, row: bool) -> None:
        self.expect_reserve(self.next_job(), member, roles, estimate, row=row)

    @rule(index=st.integers(0, 10**6), roles=role_sets, estimate=estimates)
    def refit(self, index: int, roles: list[int], estimate: int) -> None:
        """Move a job to the other provider at a new estimate: the difference is held (if it fits, in the hold's
        period) or freed; a repeat changes nothing; an ended hold or an unknown job cannot move."""
        job_id = self.pick(index)
        job = self.model.jobs.get(job_id)
        if job is not None and job.provider is None:
            return  # reserved without a job row: nothing to move
        provider = "runbase" if job is None or job.provider is None else other_provider(job.provider)
        if job is None or not job.held:
            with pytest.raises(LedgerError):
                self.run(self.ledger.refit(job_id, roles, (), estimate, provider))
            return
        extra = estimate - job.estimate
        expected = self.model.refusal(job.member, roles, extra, job.at) if extra > 0 else None
        try:
            moved = self.run(self.ledger.refit(job_id, roles, (), estimate, provider))
        except BudgetExceededError as error:
            assert expected == (error.scope, error.remaining), (expected, error)
            return
        assert expected is None, f"moved {job_id} at {estimate} although the model refuses {extra}: {expected}"
        assert moved == extra
        job.estimate, job.provider = estimate, provider
        assert self.run(self.ledger.refit(job_id, roles, (), estimate, provider)) == 0

    @rule(member=members, roles=role_sets, delta=st.sampled_from([-10_000, -1, 0, 1, 10_000]))
    def reserve_at_the_limit(self, member: int, roles: list[int], delta: int) -> None:
        limit = self.model.rules.limit_for(member, roles)
        mine, server = self.model.totals(member, self.clock.now), self.model.totals(None, self.clock.now)
        room = []
        if limit.allowance is not None:
            room.append(limit.allowance + mine.granted - mine.spent - mine.reserved)
        if limit.server_cap is not None:
            room.append(limit.server_cap - server.spent - server.reserved)
        if room and min(room) + delta >= 0:
            self.expect_reserve(self.next_job(), member, roles, min(room) + delta)

    @rule(
        member=members,
        roles=role_sets,
        estimate=st.integers(1, 30).map(lambda cents: cents * 10_000),
        n=st.integers(2, 12),
    )
    def reserve_burst(self, member: int, roles: list[int], estimate: int, n: int) -> None:
        ids = [self.next_job() for _ in range(n)]

        async def burst() -> list[object]:
            calls = (self.ledger.reserve(job_id, GUILD, member, roles, estimate) for job_id in ids)
            return await asyncio.gather(*calls, return_exceptions=True)

        outcomes = self.run(burst())
        accepted = [job_id for job_id, outcome in zip(ids, outcomes, strict=True) if not isinstance(outcome, Exception)]
        assert all(isinstance(o, BudgetExceededError) for o in outcomes if isinstance(o, Exception)), outcomes
        expected = 0
        while expected < n and self.model.refusal(member, roles, estimate, self.clock.now) is None:
            self.model.jobs[f"probe{expected}"] = ModelJob(member, estimate, self.clock.now)
            expected += 1
        for probe in range(expected):
            del self.model.jobs[f"probe{probe}"]
        assert len(accepted) == expected, (len(accepted), expected)
        for job_id in accepted:
            self.model.jobs[job_id] = ModelJob(member, estimate, self.clock.now)

    @rule(index=st.integers(0, 10**6), actual=actuals)
    def settle(self, index: int, actual: int) -> None:
        job_id = self.pick(index)
        job = self.model.jobs.get(job_id)
        if job is None:
            try:
                self.run(self.ledger.settle(job_id, actual))
            except LedgerError:
                return
            raise AssertionError("settling an unknown job must fail")
        result = self.run(self.ledger.settle(job_id, actual))
        if job.charged is not None:
            assert result.repeated and result.actual == job.charged
            return
        covered = job.estimate if job.held else 0
        assert (result.repeated, result.actual, result.overrun) == (False, actual, max(0, actual - covered))
        job.held, job.charged = False, actual

    @rule(index=st.integers(0, 10**6))
    def release(self, index: int) -> None:
        job_id = self.pick(index)
        job = self.model.jobs.get(job_id)
        if job is None:
            try:
                self.run(self.ledger.release(job_id))
            except LedgerError:
                return
            raise AssertionError("releasing an unknown job must fail")
        assert self.run(self.ledger.release(job_id)) == job.held
        job.held = False

    @rule(picks=st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), actuals), min_size=2, max_size=10))
    def finish_burst(self, picks: list[tuple[int, bool, int]]) -> None:
        chosen: dict[str, tuple[bool, int]] = {}
        for index, settle, actual in picks:
            job_id = self.pick(index)
            if job_id in self.model.jobs:
                chosen.setdefault(job_id, (settle, actual))

        async def burst() -> list[object]:
            calls = [
                self.ledger.settle(job_id, actual) if settle else self.ledger.release(job_id)
                for job_id, (settle, actual) in chosen.items()
            ]
            return await asyncio.gather(*calls)

        self.run(burst())
        for job_id, (settle, actual) in chosen.items():
            job = self.model.jobs[job_id]
            if settle and job.charged is None:
                job.charged = actual
            job.held = False

    @rule(member=members, amount=st.integers(-30, 60).filter(bool).map(lambda cents: cents * 10_000))
    def grant(self, member: int, amount: int) -> None:
        self.run(self.ledger.grant(GUILD, member, amount, "property test"))
        self.model.grants.append((member, amount, self.clock.now))

    @rule(amount=amounts)
    def set_default(self, amount: int) -> None:
        self.run(self.budgets.set_default(GUILD, amount))
        self.model.rules = BudgetRules(**{**_fields(self.model.rules), "default_allowance": amount})

    @rule(role=st.sampled_from(ROLES), amount=st.none() | amounts)
    def set_role(self, role: int, amount: int | None) -> None:
        self.run(self.budgets.set_role(GUILD, role, amount))
        roles = {key: value for key, value in self.model.rules.role_allowances.items() if key != role}
        if amount is not None:
            roles[role] = amount
        self.model.rules = BudgetRules(**{**_fields(self.model.rules), "role_allowances": roles})

    @rule(member=members, override=overrides)
    def set_member(self, member: int, override: MemberOverride | None) -> None:
        self.run(self.budgets.set_member(GUILD, member, override))
        rules = {key: value for key, value in self.model.rules.member_overrides.items() if key != member}
        if override is not None:
            rules[member] = override
        self.model.rules = BudgetRules(**{**_fields(self.model.rules), "member_overrides": rules})

    @rule(amount=st.none() | caps)
    def set_cap(self, amount: int | None) -> None:
        self.run(self.budgets.set_cap(GUILD, amount))
        self.model.rules = BudgetRules(**{**_fields(self.model.rules), "server_cap": amount})

    @rule(period=st.sampled_from(Period))
    def set_period(self, period: Period) -> None:
        self.run(self.budgets.set_period(GUILD, period))
        self.model.rules = BudgetRules(**{**_fields(self.model.rules), "period": period})

    @rule(hours=st.integers(1, 24 * 12))
    def advance_clock(self, hours: int) -> None:
        self.clock.advance(hours=hours)

    @precondition(lambda self: bool(self.model.jobs))
    @invariant()
    def ledger_adds_up_to_the_reported_totals(self) -> None:
        assert self.run(self.budgets.rules(GUILD)) == self.model.rules
        for member in MEMBERS:
            status = self.run(self.ledger.status(GUILD, member, list(ROLES)))
            expected = self.model.totals(member, self.clock.now)
            assert (status.spent, status.reserved, status.granted) == (
                expected.spent,
                expected.reserved,
                expected.granted,
            )
            limit = self.model.rules.limit_for(member, ROLES)
            assert (status.allowance, status.blocked, status.server_cap) == (
                limit.allowance,
                limit.blocked,
                limit.server_cap,
            )
            if status.remaining is not None and not status.blocked:
                assert limit.allowance is not None
                assert status.remaining == max(
                    0, limit.allowance + expected.granted - expected.spent - expected.reserved
                )
        server = self.model.totals(None, self.clock.now)
        assert (status.server_spent, status.server_reserved) == (server.spent, server.reserved)
        all_time = self.run(self.db.run(sums_by_member))
        for member in MEMBERS:
            sums = all_time.get((GUILD, member))
            jobs = [job for job in self.model.jobs.values() if job.member == member]
            reserved = sum(job.estimate for job in jobs if job.held)
            spent = sum(job.charged or 0 for job in jobs)
            granted = sum(amount for who, amount, _ in self.model.grants if who == member)
            actual = (sums.spent, sums.reserved, sums.granted) if sums else (0, 0, 0)
            assert actual == (spent, reserved, granted)
        self.run(self.db.run(check_ledger_consistent))


def _fields(rules: BudgetRules) -> dict[str, object]:
    return {
        "period": rules.period,
        "default_allowance": rules.default_allowance,
        "role_allowances": rules.role_allowances,
        "member_overrides": rules.member_overrides,
        "server_cap": rules.server_cap,
    }


TestLedgerStateMachine = LedgerStateMachine.TestCase
TestLedgerStateMachine.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- many concurrent tasks on one file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobOp:
    estimate: int
    finish: Literal["settle", "release", "open"]
    actual: int
    pauses: int
    refit: int | None = None
    """A failover's new estimate, tried after the pauses (None: the job stays where it is)."""


@dataclass(frozen=True)
class GrantOp:
    amount: int


@dataclass(frozen=True)
class RuleOp:
    kind: Literal["default", "role", "member", "cap"]
    target: int
    amount: int | None
    override: MemberOverride | None = None


@dataclass(frozen=True)
class Scenario:
    workers: list[list[JobOp | GrantOp]]
    admin: list[RuleOp]
    roles_of: dict[int, list[int]]
    initial_cap: int | None
    initial_default: int | None = None
    """The default allowance to start from (None: the config's $1.00)."""


job_ops = st.builds(
    JobOp, estimates, st.sampled_from(["settle", "release", "open"]), actuals, st.integers(0, 3), st.none() | estimates
)
grant_ops = st.builds(GrantOp, st.integers(-30, 50).filter(bool).map(lambda cents: cents * 10_000))
rule_ops = st.one_of(
    st.builds(RuleOp, st.just("default"), st.just(0), amounts),
    st.builds(RuleOp, st.just("role"), st.sampled_from(ROLES), st.none() | amounts),
    st.builds(RuleOp, st.just("member"), members, st.none(), overrides),
    st.builds(RuleOp, st.just("cap"), st.just(0), st.none() | st.integers(0, 400).map(lambda cents: cents * 10_000)),
)
scenarios = st.builds(
    Scenario,
    workers=st.lists(st.lists(st.one_of(job_ops, job_ops, grant_ops), min_size=1, max_size=8), min_size=2, max_size=24),
    admin=st.lists(rule_ops, max_size=6),
    roles_of=st.fixed_dictionaries({member: role_sets for member in MEMBERS}),
    initial_cap=st.none() | st.integers(50, 400).map(lambda cents: cents * 10_000),
)


async def play(scenario: Scenario, folder: Path) -> None:
    """Run every worker and the admin at once on one file, then check the ledger against the rules."""
    clock = Clock(START)
    async with await Database.open(folder / "concurrent.sqlite3") as db:
        budgets = Budgets(db, CONFIG, clock=clock)
        ledger = Ledger(db, budgets, clock=clock)
        await budgets.set_cap(GUILD, scenario.initial_cap)
        if scenario.initial_default is not None:
            await budgets.set_default(GUILD, scenario.initial_default)
        rule_states = [await budgets.rules(GUILD)]
        counter = iter(range(10**9))
        left_open: list[str] = []

        async def worker(member: int, ops: list[JobOp | GrantOp]) -> None:
            roles = scenario.roles_of[member]
            for op in ops:
                if isinstance(op, GrantOp):
                    await ledger.grant(GUILD, member, op.amount, "concurrent test")
                    continue
                job_id = f"w{member}-{next(counter)}"
                row = None if op.refit is None else job_row(job_id, member, op.estimate)
                try:
                    await ledger.reserve(job_id, GUILD, member, roles, op.estimate, job=row)
                except BudgetExceededError:
                    continue
                for _ in range(op.pauses):
                    await asyncio.sleep(0)
                held = op.estimate
                if op.refit is not None:
                    try:
                        assert await ledger.refit(job_id, roles, (), op.refit, "runbase") == op.refit - op.estimate
                        held = op.refit
                    except BudgetExceededError:
                        pass
                    await asyncio.sleep(0)
                if op.finish == "settle":
                    # The settle ends exactly what is held: an overrun only beyond it.
                    assert (await ledger.settle(job_id, op.actual)).overrun == max(0, op.actual - held)
                elif op.finish == "release":
                    assert await ledger.release(job_id)
                else:
                    left_open.append(job_id)

        async def admin() -> None:
            for op in scenario.admin:
                await asyncio.sleep(0)
                if op.kind == "default":
                    await budgets.set_default(GUILD, op.amount or 0)
                elif op.kind == "role":
                    await budgets.set_role(GUILD, op.target, op.amount)
                elif op.kind == "member":
                    await budgets.set_member(GUILD, op.target, op.override)
                else:
                    await budgets.set_cap(GUILD, op.amount)
                rule_states.append(await budgets.rules(GUILD))

        await asyncio.gather(
            admin(), *(worker(MEMBERS[i % len(MEMBERS)], ops) for i, ops in enumerate(scenario.workers))
        )

        await db.run(lambda conn: check_every_hold_fit(conn, rule_states, scenario.roles_of))
        steady = not scenario.admin and all(
            op.amount > 0 for ops in scenario.workers for op in ops if isinstance(op, GrantOp)
        )
        if steady:
            await db.run(lambda conn: check_end_within_limits(conn, rule_states[0], scenario.roles_of))
        await db.run(check_ledger_consistent)
        all_time = await db.run(sums_by_member)
        for member in MEMBERS:
            status = await ledger.status(GUILD, member, scenario.roles_of[member])
            sums = all_time.get((GUILD, member))
            assert (status.spent, status.reserved, status.granted) == (
                (sums.spent, sums.reserved, sums.granted) if sums else (0, 0, 0)
            )
        assert await db.run(open_hold_ids) == set(left_open)
        await asyncio.gather(*(ledger.release(job_id) for job_id in left_open))
        assert await db.run(open_hold_ids) == set()
        for member in MEMBERS:
            assert (await ledger.status(GUILD, member, [])).reserved == 0


@given(scenario=scenarios)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_concurrent_tasks_never_overspend_and_always_add_up(scenario: Scenario) -> None:
    """Up to 24 workers and an admin changing rules, interleaved at random on one file, keep every invariant."""
    with tempfile.TemporaryDirectory(prefix="atelier-props-") as folder:
        asyncio.run(play(scenario, Path(folder)))


# Settled mostly at or under the estimate (an over-run now and then): over-runs loosen the end-of-run bound, so
# they are kept rare here to keep the bound tight.
steady_job_ops = st.builds(
    lambda estimate, finish, percent, pauses, refit: JobOp(
        estimate, finish, (refit or estimate) * percent // 100, pauses, refit
    ),
    st.integers(1, 40).map(lambda cents: cents * 10_000),
    st.sampled_from(["settle", "release", "open", "open"]),
    st.integers(50, 110),
    st.integers(0, 3),
    st.none() | st.integers(1, 60).map(lambda cents: cents * 10_000),
)
steady_scenarios = st.builds(
    Scenario,
    workers=st.lists(
        st.lists(
            st.one_of(steady_job_ops, steady_job_ops, steady_job_ops, grant_ops.filter(lambda op: op.amount > 0)),
            min_size=2,
            max_size=8,
        ),
        min_size=6,
        max_size=24,
    ),
    admin=st.just([]),
    roles_of=st.fixed_dictionaries({member: role_sets for member in MEMBERS}),
    initial_cap=st.none() | st.integers(0, 150).map(lambda cents: cents * 10_000),
    # Small allowances, so that the workers' holds press against them.
    initial_default=st.integers(0, 60).map(lambda cents: cents * 10_000),
)


@given(scenario=steady_scenarios)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_concurrent_tasks_under_steady_rules_end_within_every_limit(scenario: Scenario) -> None:
    """Without rule changes or deductions, at the end of the run every member's spend and holds are within their
    allowance plus grants plus recorded over-runs, and the server's within its cap plus over-runs."""
    with tempfile.TemporaryDirectory(prefix="atelier-props-") as folder:
        asyncio.run(play(scenario, Path(folder)))


def random_scenario(rng: random.Random, workers: int, ops: int) -> Scenario:
    def job() -> JobOp:
        finish: Literal["settle", "release", "open"] = rng.choice(["settle", "settle", "release", "open"])
        refit = rng.randint(0, 160_000) if rng.random() < 0.25 else None
        return JobOp(rng.randint(0, 120_000), finish, rng.randint(0, 160_000), rng.randint(0, 3), refit)

    def op() -> JobOp | GrantOp:
        return GrantOp(rng.choice([-50_000, 100_000, 250_000])) if rng.random() < 0.1 else job()

    def rule_change(i: int) -> RuleOp:
        if i % 3 == 0:
            return RuleOp("default", 0, rng.randint(200_000, 2_000_000))
        if i % 3 == 1:
            return RuleOp("cap", 0, rng.choice([None, rng.randint(2_000_000, 6_000_000)]))
        override = rng.choice([None, MemberOverride.unlimited(), MemberOverride.of_amount(300_000)])
        return RuleOp("member", rng.choice(MEMBERS), None, override)

    admin = [rule_change(i) for i in range(12)]
    roles_of = {member: rng.sample(ROLES, rng.randint(0, 2)) for member in MEMBERS}
    return Scenario([[op() for _ in range(ops)] for _ in range(workers)], admin, roles_of, 3_000_000)


def test_sixty_four_concurrent_tasks_on_one_file_keep_every_invariant(tmp_path: Path) -> None:
    """64 tasks x 40 operations each, with rule changes, grants and over-runs, on one database file."""
    for seed in (1, 2):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        asyncio.run(play(random_scenario(random.Random(seed), workers=64, ops=40), folder))


def test_sqlite_version_supports_the_schema() -> None:
    """The schema uses UPSERT in triggers and partial indexes (SQLite 3.24+)."""
    assert sqlite3.sqlite_version_info >= (3, 24, 0)
