"""The start-up reconcile's unit of work: what each open hold becomes, under the budget locks of its server.

`Ledger.reconcile` reads the servers with an open hold, then runs `reconcile_in` holding their budget locks. On a
shared database (PostgreSQL) a hold can be opened in another server between the two (another process is live): that
hold is not under a lock here, and its own process may settle or release it at the same moment, so writing its row
here could meet that process's row in the unique index and fail the start-up. `reconcile_in` therefore leaves
the holds of servers it does not hold the lock of alone and names those servers; the ledger runs it again with
their locks too (`RECONCILE_ROUNDS`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.billing.entries import release_in, settle_in
from bot.billing.operator import operator_hold_action
from bot.billing.outcomes import ReconcileReport, SettleResult
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import ACTIVE_STATES, JobState

__all__ = ["RECONCILE_ROUNDS", "Reconciled", "reconcile_in"]

RECONCILE_ROUNDS = 3
"""How often reconcile runs again for servers whose holds appeared after it took its locks; then they are kept."""


@dataclass(slots=True)
class Reconciled:
    """One run of `reconcile_in`: what it did with the holds, and the servers it left alone for want of their lock.

    The ledger logs the settlements; `unlocked_jobs` are the jobs of the holds of the `unlocked` servers.
    """

    settled: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    settlements: list[SettleResult] = field(default_factory=list)
    totals_repaired: int = 0
    unlocked: set[int] = field(default_factory=set)
    unlocked_jobs: list[str] = field(default_factory=list)

    def report(self, earlier: list[Reconciled]) -> ReconcileReport:
        """Return the report of this last run and the `earlier` ones (holds left alone by the last run: kept)."""
        runs = [*earlier, self]
        return ReconcileReport(
            settled=[job for run in runs for job in run.settled],
            released=[job for run in runs for job in run.released],
            kept=self.kept + self.unlocked_jobs,
            totals_repaired=sum(run.totals_repaired for run in runs),
        )


def reconcile_in(
    conn: sqlite3.Connection,
    now: datetime,
    *,
    orphan_grace: timedelta,
    operator_grace: timedelta,
    locked: frozenset[int] | None,
) -> Reconciled:
    """Settle, release or keep every open hold (see `Ledger.reconcile`), then repair the daily totals.

    With `locked` (a shared database), only the holds of those servers; the others are named in `unlocked`.
    """
    ledger = LedgerQueries(conn)
    done = report = Reconciled()
    for hold in ledger.open_holds():
        entry, state = hold.entry, hold.job_state
        job_id = entry.job_id
        if job_id is None:  # pragma: no cover - the schema gives every hold a job id
            continue
        if locked is not None and entry.guild_id not in locked:
            done.unlocked.add(entry.guild_id)
            done.unlocked_jobs.append(job_id)
            continue
        operator = operator_hold_action(entry, state, now, operator_grace)
        if operator == "keep" or (state is None and now - entry.created_at < orphan_grace):
            report.kept.append(job_id)
        elif operator == "settle":  # a dead terminal run, outcome unknown: never under-count
            done.settlements.append(settle_in(conn, job_id, hold.held, now))
            report.settled.append(job_id)
        elif state in ACTIVE_STATES:
            report.kept.append(job_id)
        elif state is JobState.SUCCEEDED:
            # Only a delivered success is charged; failed, cancelled and rejected jobs never are.
            cost = hold.held if hold.job_cost is None else hold.job_cost
            done.settlements.append(settle_in(conn, job_id, cost, now))
            report.settled.append(job_id)
        else:
            release_in(conn, job_id, now)
            report.released.append(job_id)
    done.totals_repaired = ledger.count_totals_mismatches()
    if done.totals_repaired:
        ledger.rebuild_totals()
    return done
