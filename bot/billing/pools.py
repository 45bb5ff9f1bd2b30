"""Team pools (`/budget channel`): a budget per period shared by every generation in a channel or a category.

A pool is set on a channel or a category (`pool_id` is its id) and counts over the server's budget period. A request
must fit the pool of every one of its places (`GenerationRequest.places`: the channel, then a thread's parent channel,
then the category) that has one, in the ledger's reservation transaction, together with the member's allowance and
the server cap (`bot.billing.ledger.Ledger.reserve`): a category's pool is a ceiling for everything in it, and a
channel's own pool inside it is a tighter one, never a way around it. The hold is linked to every pool it was checked
against (`hold_pools`), and its settle or release rows count against the same pools.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.billing.budgets import Budgets, day_span, period_bounds
from bot.billing.errors import BudgetExceededError
from bot.billing.inputs import check_amount, check_id
from bot.clock import utc_now
from bot.money import format_usd
from bot.storage.audit import AuditQueries
from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from bot.storage.pools import PoolQueries
from bot.storage.rows import PoolRow

__all__ = ["PoolStatus", "Pools", "pool_refusal", "pool_status_in", "pools_refusal", "tightest_pool"]


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A team pool in the current period: its limit, what was spent and is held in it, and what is left."""

    pool_id: int
    limit: int
    spent: int
    reserved: int

    @property
    def remaining(self) -> int:
        """What the pool may still spend this period (at least zero)."""
        return max(0, self.limit - self.spent - self.reserved)


def pool_status_in(conn: sqlite3.Connection, pool: PoolRow, start: datetime, end: datetime) -> PoolStatus:
    """Read a pool's totals over [start, end) inside the caller's transaction."""
    first_day, end_day = day_span(start, end)
    totals = LedgerQueries(conn).pool_totals(pool.guild_id, pool.pool_id, first_day, end_day)
    return PoolStatus(pool.pool_id, pool.amount, totals.spent, totals.reserved)


def pool_refusal(
    conn: sqlite3.Connection, pool: PoolRow, amount: int, start: datetime, end: datetime
) -> BudgetExceededError | None:
    """Return why a hold of `amount` does not fit the pool this period (None if it fits)."""
    status = pool_status_in(conn, pool, start, end)
    left = status.limit - status.spent - status.reserved
    if amount > left:
        return BudgetExceededError("pool", amount, max(0, left), end, pool_id=pool.pool_id)
    return None


def pools_refusal(
    conn: sqlite3.Connection, pools: Sequence[PoolRow], amount: int, start: datetime, end: datetime
) -> BudgetExceededError | None:
    """Return why a hold of `amount` does not fit every one of `pools` (the innermost that refuses), or None."""
    for pool in pools:
        why = pool_refusal(conn, pool, amount, start, end)
        if why is not None:
            return why
    return None


def tightest_pool(
    conn: sqlite3.Connection, pools: Sequence[PoolRow], start: datetime, end: datetime
) -> PoolStatus | None:
    """Of `pools` (innermost first), the one with the least left this period (the innermost on a tie); None if none."""
    statuses = [pool_status_in(conn, pool, start, end) for pool in pools]
    return min(statuses, key=lambda status: status.remaining, default=None)


def pool_words(amount: int | None) -> str | None:
    """Word a pool's amount for the audit log (None: no pool)."""
    return None if amount is None else f"{format_usd(amount)} per period"


class Pools:
    """Sets, removes and reports the team pools of a server."""

    def __init__(self, db: Database, budgets: Budgets, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._budgets = budgets
        self._clock = clock

    async def set(self, guild_id: int, pool_id: int, amount: int | None, *, actor_id: int | None = None) -> None:
        """Give a channel or category a pool per period, or remove it with None; the change is audited with it."""
        guild, pool = check_id(guild_id, "server id"), check_id(pool_id, "channel id")
        value = None if amount is None else check_amount(amount, "team budget")
        actor = None if actor_id is None else check_id(actor_id, "admin id")
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            pools = PoolQueries(conn)
            before = pools.get(guild, pool)
            if value is None:
                pools.delete(guild, pool)
            else:
                pools.set(guild, pool, value, at, actor)
            old = None if before is None else before.amount
            if old != value:
                after = pool_words(value)
                AuditQueries(conn).record(guild, actor, "budget", f"pool <#{pool}>", pool_words(old), after, at)

        await self._db.run(write)

    async def statuses(self, guild_id: int) -> list[PoolStatus]:
        """Every pool of the server with its spend and holds this period, by channel id."""
        guild = check_id(guild_id, "server id")
        now = self._clock()

        def read(conn: sqlite3.Connection) -> list[PoolStatus]:
            start, end = period_bounds(self._budgets.period_in(conn, guild), now)
            return [pool_status_in(conn, pool, start, end) for pool in PoolQueries(conn).all(guild)]

        return await self._db.run(read, write=False)
