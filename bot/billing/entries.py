"""Adjust, settle and release rows inside a ledger unit of work, and the log and metric of a settlement.

`bot.billing.ledger` calls these within its own transactions; they write one row each (a unique index keeps one
settle and one release per job, another numbers a job's adjusts) and never commit. What a job holds is its hold plus
its adjusts (`Held.amount`); a settle or release ends exactly that.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.billing.errors import LedgerError
from bot.billing.outcomes import SettleResult
from bot.money import format_usd
from bot.observability import metrics
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import EntryKind, LedgerEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    """A job's reservation: its hold row, its other rows by kind (the last adjust), what it holds, its adjusts."""

    hold: LedgerEntry
    kinds: dict[EntryKind, LedgerEntry]
    amount: int
    """The hold plus every adjust: what the job holds until it is settled or released."""
    adjusts: int

    @property
    def ended(self) -> bool:
        """Whether the hold was already settled or released."""
        return EntryKind.SETTLE in self.kinds or EntryKind.RELEASE in self.kinds


def held(ledger: LedgerQueries, job_id: str, action: str) -> Held:
    """Return the job's reservation, or raise `LedgerError` if the job has no reservation."""
    entries = ledger.entries_for_job(job_id)
    kinds = {entry.kind: entry for entry in entries}
    hold = kinds.get(EntryKind.HOLD)
    if hold is None:
        raise LedgerError(f"No reservation was found for job {job_id}, so there is nothing to {action}.")
    adjusts = [entry.amount for entry in entries if entry.kind is EntryKind.ADJUST]
    return Held(hold, kinds, hold.amount + sum(adjusts), len(adjusts))


def adjust_in(conn: sqlite3.Connection, job: Held, estimate: int, now: datetime) -> int:
    """Make the job hold `estimate` (an adjust row of the difference, none if it holds that); return the difference.

    The row carries the hold's instant and pool, so it counts in the same period, day and pools (`hold_pools`).
    """
    difference = estimate - job.amount
    if difference:
        hold = job.hold
        LedgerQueries(conn).insert(
            guild_id=hold.guild_id,
            member_id=hold.member_id,
            job_id=hold.job_id,
            kind=EntryKind.ADJUST,
            amount=difference,
            effective_at=hold.effective_at,
            created_at=now,
            pool_id=hold.pool_id,
            adjust_seq=job.adjusts + 1,
        )
    return difference


def settle_in(conn: sqlite3.Connection, job_id: str, actual: int, now: datetime) -> SettleResult:
    """Write the job's settle row at `actual` (idempotent: a repeat returns the first settlement)."""
    ledger = LedgerQueries(conn)
    job = held(ledger, job_id, "settle")
    hold, kinds = job.hold, job.kinds
    settled = kinds.get(EntryKind.SETTLE)
    if settled is not None:
        return SettleResult(job_id, job.amount, settled.amount, settled.overrun, repeated=True)
    # After a release the hold no longer covers anything: the whole cost is then an overrun.
    released = 0 if EntryKind.RELEASE in kinds else job.amount
    overrun = max(0, actual - released)
    ledger.insert(
        guild_id=hold.guild_id,
        member_id=hold.member_id,
        job_id=job_id,
        kind=EntryKind.SETTLE,
        amount=actual,
        released=released,
        overrun=overrun,
        effective_at=hold.effective_at,
        created_at=now,
        pool_id=hold.pool_id,
    )
    return SettleResult(job_id, job.amount, actual, overrun, repeated=False)


def release_in(conn: sqlite3.Connection, job_id: str, now: datetime) -> bool:
    """Write the job's release row; False when it was already settled or released."""
    ledger = LedgerQueries(conn)
    job = held(ledger, job_id, "release")
    hold = job.hold
    if job.ended:
        return False
    ledger.insert(
        guild_id=hold.guild_id,
        member_id=hold.member_id,
        job_id=job_id,
        kind=EntryKind.RELEASE,
        amount=job.amount,
        released=job.amount,
        effective_at=hold.effective_at,
        created_at=now,
        pool_id=hold.pool_id,
    )
    return True


def report_settlement(result: SettleResult, requested: int) -> None:
    """Log a settlement's surprises (a repeat, an overrun) and add a new one's charge to the spend metric."""
    if result.repeated:
        if requested != result.actual:
            log.warning(
                "job %s was already settled at %s; ignoring a second settlement of %s",
                result.job_id,
                format_usd(result.actual),
                format_usd(requested),
            )
        return
    metrics.current().settled(result.actual)
    if result.overrun:
        log.warning(
            "overrun on job %s: charged %s against a reservation of %s (%s not covered)",
            result.job_id,
            format_usd(result.actual),
            format_usd(result.estimate),
            format_usd(result.overrun),
        )
