"""A batch of units of work on the connection's thread: group commit, savepoints, budget locks, lost races.

`bot.storage.database.Database` queues the units (`Database.run`) and runs each batch here, on its worker thread:
`run_group` (one transaction for the batch, a savepoint per unit) or `run_alone` (a transaction per unit). On a
shared database (PostgreSQL) the batch's advisory locks are taken first, in ascending order, and a unit that lost a
deadlock or a serialization failure runs again in a new transaction (see `run_group`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Unit:
    """One queued unit of work: the function, whether it writes, its caller's future, its budget locks."""

    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    future: asyncio.Future[Any]
    locks: tuple[int, ...] = ()
    deferrable: bool = False


Outcome = tuple[bool, Any]
"""(True, result) or (False, exception) for one unit."""


RETRIES = 3
"""How often a PostgreSQL unit that met a deadlock or a serialization failure runs again before its error is raised."""

RETRY_PAUSE = 0.02
"""Seconds (times the attempt, plus jitter) a unit that lost a race waits before it runs again."""

_RETRY_STATES = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock_detected and serialization_failure: the unit lost a race and can simply run again."""


def _take_locks(conn: sqlite3.Connection, units: list[Unit]) -> None:
    """Take the units' advisory locks in ascending order (one global order: no deadlock between two batches)."""
    for key in sorted({key for unit in units for key in unit.locks}):
        conn.execute("SELECT pg_advisory_xact_lock(?)", (key,)).fetchone()


def _lost_race(exc: BaseException) -> bool:
    return getattr(exc, "sqlstate", None) in _RETRY_STATES


def _pause(attempt: int) -> None:
    time.sleep(RETRY_PAUSE * attempt * (1 + random.random()))


def _run_unit(conn: sqlite3.Connection, unit: Unit) -> Outcome:
    """Run one unit inside its savepoint: if it raises, only its own changes are undone."""
    conn.execute("SAVEPOINT unit")
    try:
        value = unit.fn(conn)
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK TO unit")
            conn.execute("RELEASE unit")
        return (False, exc)
    conn.execute("RELEASE unit")
    return (True, value)


def _begin(conn: sqlite3.Connection, units: list[Unit], shared: bool) -> sqlite3.Error | None:
    """Open the transaction of `units` (and, shared, take their locks); return the error if it cannot be opened."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        if shared:
            _take_locks(conn, units)
    except sqlite3.Error as exc:
        rollback_quietly(conn)
        return exc
    return None


def _failed_since(outcomes: list[Outcome], start: int, error: BaseException) -> list[Outcome]:
    """Return the outcomes with every success from `start` on (the open transaction's units) turned into `error`."""
    return outcomes[:start] + [(False, error) if ok else (ok, value) for ok, value in outcomes[start:]]


def _commit(conn: sqlite3.Connection, outcomes: list[Outcome], start: int) -> list[Outcome]:
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback_quietly(conn)
        return _failed_since(outcomes, start, exc)
    return outcomes


def run_group(conn: sqlite3.Connection, batch: list[Unit], shared: bool = False) -> list[Outcome]:
    """Run the batch's units in one transaction (more than one only after a lost race or a dropped transaction).

    A PostgreSQL unit that lost a deadlock or a serialization failure is not run again in the same transaction:
    PostgreSQL lets the rows it touched go only when the whole transaction ends (a savepoint's rollback does not wake
    the winner, so the unit would lose again). So the units before it are committed, and it runs again, after a short
    pause, at the start of a new transaction with the rest of the batch, up to `RETRIES` times.
    """
    outcomes: list[Outcome] = []
    start = 0  # the first unit of the open transaction
    error = _begin(conn, batch, shared)
    if error is not None:
        return [(False, error)] * len(batch)
    index, attempts = 0, 0
    while index < len(batch):
        if not conn.in_transaction:
            # SQLite dropped the whole transaction after an I/O error or a full disk: the units before this one
            # are lost with it, so they fail too, and the rest start a fresh transaction.
            outcomes, start = _failed_since(outcomes, start, outcomes[-1][1]), len(outcomes)
            error = _begin(conn, batch[index:], shared)
            if error is not None:
                return outcomes + [(False, error)] * (len(batch) - index)
        outcome = _run_unit(conn, batch[index])
        if shared and not outcome[0] and _lost_race(outcome[1]) and attempts < RETRIES:
            attempts += 1
            log.warning("a unit of work met %s; running it again", getattr(outcome[1], "sqlstate", "?"))
            outcomes, start = _commit(conn, outcomes, start), len(outcomes)
            _pause(attempts)
            error = _begin(conn, batch[index:], shared)
            if error is not None:
                return outcomes + [(False, error)] * (len(batch) - index)
            continue
        outcomes.append(outcome)
        index, attempts = index + 1, 0
    if not conn.in_transaction:
        return _failed_since(outcomes, start, outcomes[-1][1])
    return _commit(conn, outcomes, start)


def run_alone(conn: sqlite3.Connection, unit: Unit, shared: bool = False) -> Outcome:
    """Run one unit in a transaction of its own (group commit off); on PostgreSQL again after a lost race."""
    for attempt in range(RETRIES + 1):
        try:
            conn.execute("BEGIN IMMEDIATE" if unit.write else "BEGIN")
            if shared:
                _take_locks(conn, [unit])
            value = unit.fn(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            rollback_quietly(conn)
            if shared and attempt < RETRIES and _lost_race(exc):
                _pause(attempt + 1)
                continue
            return (False, exc)
        return (True, value)
    raise AssertionError("unreachable")  # pragma: no cover - the loop always returns


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any, ignoring a failure to (the connection may be broken)."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
