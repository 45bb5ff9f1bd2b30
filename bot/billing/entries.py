"""Settle and release rows inside a ledger unit of work, and the log and metric of a settlement.

`bot.billing.ledger` calls these within its own transactions; they write one row each (a unique index keeps one
settle and one release per job) and never commit.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime

from bot.billing.errors import LedgerError
from bot.billing.outcomes import SettleResult
from bot.money import format_usd
from bot.observability import metrics
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import EntryKind, LedgerEntry

log = logging.getLogger(__name__)


def held(ledger: LedgerQueries, job_id: str, action: str) -> tuple[LedgerEntry, dict[EntryKind, LedgerEntry]]:
    """Return the job's hold and its entries by kind, or raise `LedgerError` if the job has no reservation."""
    kinds = {entry.kind: entry for entry in ledger.entries_for_job(job_id)}
    hold = kinds.get(EntryKind.HOLD)
    if hold is None:
        raise LedgerError(f"No reservation was found for job {job_id}, so there is nothing to {action}.")
    return hold, kinds


def settle_in(conn: sqlite3.Connection, job_id: str, actual: int, now: datetime) -> SettleResult:
    """Write the job's settle row at `actual` (idempotent: a repeat returns the first settlement)."""
    ledger = LedgerQueries(conn)
    hold, kinds = held(ledger, job_id, "settle")
    settled = kinds.get(EntryKind.SETTLE)
    if settled is not None:
        return SettleResult(job_id, hold.amount, settled.amount, settled.overrun, repeated=True)
    # After a release the hold no longer covers anything: the whole cost is then an overrun.
    released = 0 if EntryKind.RELEASE in kinds else hold.amount
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
    return SettleResult(job_id, hold.amount, actual, overrun, repeated=False)


def release_in(conn: sqlite3.Connection, job_id: str, now: datetime) -> bool:
    """Write the job's release row; False when it was already settled or released."""
    ledger = LedgerQueries(conn)
    hold, kinds = held(ledger, job_id, "release")
    if EntryKind.SETTLE in kinds or EntryKind.RELEASE in kinds:
        return False
    ledger.insert(
        guild_id=hold.guild_id,
        member_id=hold.member_id,
        job_id=job_id,
        kind=EntryKind.RELEASE,
        amount=hold.amount,
        released=hold.amount,
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
