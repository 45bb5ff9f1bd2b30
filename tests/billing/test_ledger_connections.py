"""Two connections on one file: reservations from two `Database` objects (say the bot and `atelier check`, or two
bot processes by mistake) are serialised by SQLite itself (`BEGIN IMMEDIATE` + the busy timeout), never overspent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.settings import load_app_config
from bot.storage.database import Database
from tests.billing.conftest import CONFIG_PATH, GUILD, MEMBER, OTHER, Clock
from tests.billing.invariants import check_end_within_limits, check_ledger_consistent, sums_by_member

ALLOWANCE = 1_000_000
CAP = 1_500_000
ESTIMATE = 10_000
ROUNDS = 30
"""Rounds of 16 attempts: 480 in all, 240 per member, far more than fits (150 holds in all, 100 per member)."""


async def test_two_connections_reserving_at_once_never_pass_a_member_budget_or_the_cap(tmp_path: Path) -> None:
    """Two Database objects on one file reserve for two members at once: no member holds more than the 100 holds of
    $0.01 that its $1.00 allows, and together they hold exactly the 150 that the $1.50 cap allows."""
    path = tmp_path / "shared.sqlite3"
    clock = Clock(datetime(2025, 1, 15, 12, 0, tzinfo=UTC))
    config = load_app_config(CONFIG_PATH)
    async with await Database.open(path) as first, await Database.open(path) as second:
        pairs = [(db, Budgets(db, config, clock=clock)) for db in (first, second)]
        ledgers = [Ledger(db, budgets, clock=clock) for db, budgets in pairs]
        await pairs[0][1].set_default(GUILD, ALLOWANCE)
        await pairs[1][1].set_cap(GUILD, CAP)

        async def attempt(ledger: Ledger, job_id: str, member: int) -> bool:
            try:
                await ledger.reserve(job_id, GUILD, member, [], ESTIMATE)
            except BudgetExceededError:
                return False
            return True

        # Rounds of 16 concurrent attempts (2 connections x 2 members x 4): the first rounds fit whole, so both
        # connections hold something whatever order SQLite grants the lock in; later rounds press on the limits.
        outcomes: list[tuple[int, bool]] = []
        for n in range(ROUNDS):
            calls = [
                (index, attempt(ledger, f"c{index}-{member}-{n}-{k}", member))
                for k in range(4)
                for member in (MEMBER, OTHER)
                for index, ledger in enumerate(ledgers)
            ]
            results = await asyncio.gather(*(call for _, call in calls))
            outcomes += [(index, ok) for (index, _), ok in zip(calls, results, strict=True)]

        assert sum(ok for _, ok in outcomes) == CAP // ESTIMATE == 150
        sums = await first.run(sums_by_member)
        for member in (MEMBER, OTHER):
            held = sums[(GUILD, member)].reserved
            assert held <= ALLOWANCE // ESTIMATE * ESTIMATE
        assert sum(entry.reserved for entry in sums.values()) == 150 * ESTIMATE <= CAP
        for connection in (first, second):
            await connection.run(check_ledger_consistent)
            rules = await pairs[0][1].rules(GUILD)
            await connection.run(lambda conn, rules=rules: check_end_within_limits(conn, rules, {}))
        statuses = [await ledger.status(GUILD, MEMBER, []) for ledger in ledgers]
        assert statuses[0] == statuses[1]
        assert statuses[0].server_reserved == 150 * ESTIMATE
        assert {index for index, ok in outcomes if ok} == {0, 1}, "both connections hold reservations"
