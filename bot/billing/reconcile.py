"""The start-up reconcile's unit of work: what each open hold becomes, under the budget locks of its server.

`Ledger.reconcile` reads the servers with an open hold, then runs `reconcile_in` holding their budget locks. On a
shared database (PostgreSQL) a hold can be opened in another server between the two: it was opened after the read,
so by a live process (a hold a crash left was open before, and its server is locked), and that process may settle or
release it at the same moment; writing its row here could meet that process's row in the unique index and fail the
start-up. `reconcile_in` keeps such a hold, untouched: it is its process's.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.billing.entries import release_in, settle_in
from bot.billing.operator import operator_hold_action
from bot.billing.outcomes import ReconcileReport, SettleResult
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import ACTIVE_STATES, JobState

__all__ = ["Reconciled", "reconcile_in"]


@dataclass(slots=True)
class Reconciled:
    """What `reconcile_in` did: the report, and the settlements for the ledger to log."""

    report: ReconcileReport
    settlements: list[SettleResult] = field(default_factory=list)


def reconcile_in(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    orphan_grace: timedelta,
    operator_grace: timedelta,
    locked: frozenset[int] | None,
) -> Reconciled:
    """Settle, release or keep every open hold (see `Ledger.reconcile`), then repair the daily totals.

    With `locked` (a shared database), only the holds of those servers; the others are kept (see the module's text).
    """
    ledger = LedgerQueries(conn)
    report = ReconcileReport()
    settlements: list[SettleResult] = []
    for hold in ledger.open_holds():
        entry, state = hold.entry, hold.job_state
        job_id = entry.job_id
        if job_id is None:  # pragma: no cover - the schema gives every hold a job id
            continue
        operator = operator_hold_action(entry, state, now, operator_grace)
        unlocked = locked is not None and entry.guild_id not in locked
        if unlocked or operator == "keep" or (state is None and now - entry.created_at < orphan_grace):
            report.kept.append(job_id)
        elif operator == "settle":  # a dead terminal run, outcome unknown: never under-count
            settlements.append(settle_in(conn, job_id, hold.held, now))
            report.settled.append(job_id)
        elif state in ACTIVE_STATES:
            report.kept.append(job_id)
        elif state is JobState.SUCCEEDED:
            # Only a delivered success is charged; failed, cancelled and rejected jobs never are.
            cost = hold.held if hold.job_cost is None else hold.job_cost
            settlements.append(settle_in(conn, job_id, cost, now))
            report.settled.append(job_id)
        else:
            release_in(conn, job_id, now)
            report.released.append(job_id)
    mismatches = ledger.count_totals_mismatches()
    if mismatches:
        ledger.rebuild_totals()
    return Reconciled(replace(report, totals_repaired=mismatches), settlements)
