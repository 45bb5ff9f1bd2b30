"""What the ledger's operations return: reservations, allowance warnings, settlements, statuses, reconciliations."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.billing.pools import PoolStatus
from bot.catalog import Period
from bot.storage.rows import Job

__all__ = ["AllowanceWarning", "BudgetStatus", "ReconcileReport", "Reservation", "SettleResult"]

WARN_AT_PERCENT = 80
"""A member is warned once per period when their spend and holds reach this share of their allowance."""


@dataclass(frozen=True, slots=True)
class AllowanceWarning:
    """A member's spend and holds just reached `WARN_AT_PERCENT` of their allowance (plus grants) this period."""

    used: int
    """Spent plus reserved in the period, this request's hold included (micro-dollars)."""
    allowance: int
    """The allowance plus grants of the period."""
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on a member's budget for one job."""

    job_id: str
    guild_id: int
    member_id: int
    estimate: int
    reserved_at: datetime
    resets_at: datetime
    created: bool
    """False when `reserve` was repeated for a job that already held exactly this reservation."""
    job: Job | None = None
    """The stored job row when `reserve` was given `job=` (on a repeat, the row as it is now, if there is one)."""
    pool_id: int | None = None
    """The innermost team pool (channel or category id) the hold counts against; None outside a pool."""
    pool_ids: tuple[int, ...] = ()
    """Every team pool the hold counts against (its place's, the parent channel's, the category's), innermost first."""
    warning: AllowanceWarning | None = None
    """Set when this hold took the member past 80% of their allowance for the first time this period."""
    duplicate: bool = False
    """True when `reserve(duplicate_since=...)` found the member's same request already stored: `job` is that one,
    nothing was reserved or stored now."""


@dataclass(frozen=True, slots=True)
class SettleResult:
    """What settling a job charged."""

    job_id: str
    estimate: int
    actual: int
    overrun: int
    """How much of the charge no hold covered (actual above the estimate, or all of it after a release)."""
    repeated: bool
    """True when the job had already been settled: this call changed nothing and reports the earlier charge."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """A member's budget in the current period, and the server's."""

    period: Period
    period_start: datetime
    resets_at: datetime
    allowance: int | None
    """The member's allowance before grants; None means unlimited."""
    blocked: bool
    granted: int
    spent: int
    reserved: int
    remaining: int | None
    """allowance + granted - spent - reserved, at least zero; None means unlimited (the server cap may still bind)."""
    server_cap: int | None
    server_spent: int
    server_reserved: int
    pool: PoolStatus | None = None
    """The tightest team pool that applies where the status was asked for (`places`); None outside a pool."""

    @property
    def server_remaining(self) -> int | None:
        """What the server may still spend this period; None without a cap."""
        if self.server_cap is None:
            return None
        return max(0, self.server_cap - self.server_spent - self.server_reserved)

    @property
    def available(self) -> int | None:
        """The largest estimate a new request could have right now (every limit); None if none limits it."""
        if self.blocked:
            return 0
        pool = None if self.pool is None else self.pool.remaining
        limits = [value for value in (self.remaining, self.server_remaining, pool) if value is not None]
        return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What `reconcile` did with the holds it found open."""

    settled: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    totals_repaired: int = 0
    """Daily-total rows that disagreed with the ledger and were rebuilt (0 on a sound database)."""
