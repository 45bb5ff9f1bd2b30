"""The budget race across processes: many reservations at once for one budget with room for exactly `ROOM` of them.

Shared by `tests/billing/test_ledger_processes.py` (several `Database` handles in one test) and
`tests/billing/race_worker.py` (the same race from separate OS processes). Three scenarios, one per budget a
reservation checks: `member` (one member's allowance), `pool` (a team pool, many members), `cap` (the server cap,
many members).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.billing.pools import Pools
from bot.settings import AppConfig
from bot.storage.database import Database

GUILD = 777_000_000_000_000_001
MEMBER = 777_000_000_000_000_002
CHANNEL = 777_000_000_000_000_003
ESTIMATE = 250_000
ROOM = 4
"""Each budget has room for exactly this many reservations of `ESTIMATE`."""
SCENARIOS = ("member", "pool", "cap")


def _clock() -> datetime:
    return datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


async def prepare(db: Database, config: AppConfig, scenario: str) -> None:
    """Set the one budget of the scenario to room for `ROOM` reservations; the others are out of the way."""
    budgets = Budgets(db, config, clock=_clock)
    if scenario == "member":
        await budgets.set_default(GUILD, ROOM * ESTIMATE)
    elif scenario == "pool":
        await budgets.set_default(GUILD, 100 * ESTIMATE)
        await Pools(db, budgets, clock=_clock).set(GUILD, CHANNEL, ROOM * ESTIMATE)
    else:
        await budgets.set_default(GUILD, 100 * ESTIMATE)
        await budgets.set_cap(GUILD, ROOM * ESTIMATE)


async def reserve_many(db: Database, config: AppConfig, scenario: str, numbers: range) -> int:
    """Send one reservation per number, all at once; return how many were held."""
    ledger = Ledger(db, Budgets(db, config, clock=_clock), clock=_clock)

    async def one(number: int) -> bool:
        member = MEMBER if scenario == "member" else MEMBER + 1 + number
        places = [CHANNEL] if scenario == "pool" else []
        try:
            await ledger.reserve(f"{scenario}-{number}", GUILD, member, [], ESTIMATE, places=places)
        except BudgetExceededError as refused:
            expected = {"member": "member", "pool": "pool", "cap": "server"}[scenario]
            assert refused.scope == expected, refused
            return False
        return True

    return sum(await asyncio.gather(*(one(number) for number in numbers)))


async def held_in_ledger(db: Database) -> tuple[int, int]:
    """The number of holds in the ledger and their sum."""
    query = "SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'hold'"
    row = await db.run(lambda conn: conn.execute(query).fetchone(), write=False)
    return int(row[0]), int(row[1])
