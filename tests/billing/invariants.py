"""Checks shared by the property and crash tests: the ledger's own consistency, a replay of every hold, and the
limits at the end of a run.

Limits are judged when a hold is made (reservation time): a hold that fitted stays, even if an admin lowers an
allowance or the cap, or deducts, afterwards; and Runware may charge more than the hold (an over-run, recorded on the
settle row). So `check_every_hold_fit` is the invariant for any run, and `check_end_within_limits` the end-of-run
bound for runs in which the rules stood still and nothing was deducted.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.billing.budgets import BudgetRules
from bot.storage.ledger import LedgerQueries


@dataclass
class Sums:
    spent: int = 0
    reserved: int = 0
    granted: int = 0
    overrun: int = 0


def ledger_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    conn.row_factory = sqlite3.Row
    return list(conn.execute("SELECT * FROM ledger ORDER BY id"))


def sums_by_member(conn: sqlite3.Connection) -> dict[tuple[int, int], Sums]:
    """Sum the raw ledger rows per (guild, member), by the rules of the ledger table's comment."""
    sums: dict[tuple[int, int], Sums] = defaultdict(Sums)
    for row in ledger_rows(conn):
        entry = sums[(row["guild_id"], row["member_id"])]
        if row["kind"] in ("hold", "adjust"):
            entry.reserved += row["amount"]
        elif row["kind"] == "grant":
            entry.granted += row["amount"]
        else:
            entry.reserved -= row["released"]
            if row["kind"] == "settle":
                entry.spent += row["amount"]
                entry.overrun += row["overrun"]
    return dict(sums)


def check_ledger_consistent(conn: sqlite3.Connection) -> None:
    """Assert what must hold of any ledger, whatever happened: rows agree with their holds, totals with the rows.

    A job holds its hold plus its adjusts (numbered 1, 2, ... and made while the hold was open); its release, or its
    settle's `released`, is exactly that.
    """
    holds: dict[str, sqlite3.Row] = {}
    held: dict[str, int] = {}
    adjusts: dict[str, int] = defaultdict(int)
    released: set[str] = set()
    settled: set[str] = set()
    for row in ledger_rows(conn):
        job = row["job_id"]
        if row["kind"] == "grant":
            assert job is None and row["amount"] != 0
            continue
        if row["kind"] == "hold":
            assert job not in holds, f"second hold for {job}"
            holds[job] = row
            held[job] = row["amount"]
            continue
        hold = holds.get(job)
        assert hold is not None, f"{row['kind']} of {job} without an earlier hold"
        assert (row["guild_id"], row["member_id"], row["effective_at"]) == (
            hold["guild_id"],
            hold["member_id"],
            hold["effective_at"],
        )
        assert row["pool_id"] == hold["pool_id"]
        if row["kind"] == "adjust":
            assert job not in released and job not in settled, f"adjust of {job} after it ended"
            adjusts[job] += 1
            assert row["adjust_seq"] == adjusts[job] and row["amount"] != 0
            held[job] += row["amount"]
            assert held[job] >= 0, f"{job} holds {held[job]}"
        elif row["kind"] == "release":
            assert job not in released and job not in settled, f"release of {job} after it ended"
            assert row["amount"] == row["released"] == held[job]
            released.add(job)
        else:
            assert job not in settled, f"second settle of {job}"
            expected_release = 0 if job in released else held[job]
            assert row["released"] == expected_release
            assert row["overrun"] == max(0, row["amount"] - expected_release)
            settled.add(job)
    for sums in sums_by_member(conn).values():
        assert sums.reserved >= 0 and sums.spent >= 0
    assert LedgerQueries(conn).count_totals_mismatches() == 0


def open_hold_ids(conn: sqlite3.Connection) -> set[str]:
    return {hold.entry.job_id for hold in LedgerQueries(conn).open_holds() if hold.entry.job_id is not None}


def check_every_hold_fit(
    conn: sqlite3.Connection,
    rule_states: Sequence[BudgetRules],
    roles_of: Mapping[int, Sequence[int]],
) -> None:
    """Replay the ledger in commit order and assert each hold (and each adjust's increase) fitted the rules in force
    when it was written.

    Rule changes are known only as an ordered list, not by their position among the ledger rows; since a hold's
    fit depends only on the rows before it, the earliest rule state (at or after the previous hold's) that the
    hold fits is always a valid choice, and if none fits, no interleaving could have allowed it. All rows must
    belong to one budget period (the tests that use this keep the clock still).
    """
    member_sums: dict[int, Sums] = defaultdict(Sums)
    server = Sums()
    state = 0
    for row in ledger_rows(conn):
        member = row["member_id"]
        mine = member_sums[member]
        if row["kind"] in ("hold", "adjust"):
            amount = row["amount"]
            # A positive adjust (a failover to a larger estimate) is checked like a hold of the difference.
            checked = row["kind"] == "hold" or amount > 0
            while checked and not _fits(rule_states[state], member, roles_of.get(member, ()), amount, mine, server):
                state += 1
                assert state < len(rule_states), (
                    f"hold {row['job_id']} of {amount} for member {member} fitted no rules in force: "
                    f"spent {mine.spent}, reserved {mine.reserved}, granted {mine.granted}; "
                    f"server spent {server.spent}, reserved {server.reserved}"
                )
            mine.reserved += amount
            server.reserved += amount
        elif row["kind"] == "grant":
            mine.granted += row["amount"]
        else:
            mine.reserved -= row["released"]
            server.reserved -= row["released"]
            if row["kind"] == "settle":
                mine.spent += row["amount"]
                server.spent += row["amount"]


def _fits(rules: BudgetRules, member: int, roles: Sequence[int], amount: int, mine: Sums, server: Sums) -> bool:
    limit = rules.limit_for(member, roles)
    if limit.blocked:
        return False
    if limit.allowance is not None and mine.spent + mine.reserved + amount > limit.allowance + mine.granted:
        return False
    return limit.server_cap is None or server.spent + server.reserved + amount <= limit.server_cap


def check_end_within_limits(
    conn: sqlite3.Connection, rules: BudgetRules, roles_of: Mapping[int, Sequence[int]]
) -> None:
    """Assert the end-of-run bound of a run whose rules never changed and that had no deductions (one period).

    Per member: spent + reserved <= allowance + grants + recorded over-runs (nothing at all when blocked); for the
    server: spent + reserved <= cap + recorded over-runs. Checks the totals, not each hold, so it also catches a
    hold that was checked against stale totals.
    """
    server = Sums()
    for (_, member), sums in sums_by_member(conn).items():
        assert sums.granted >= 0, "check_end_within_limits is for runs without deductions"
        limit = rules.limit_for(member, roles_of.get(member, ()))
        used = sums.spent + sums.reserved
        if limit.blocked:
            assert used == 0, f"blocked member {member} has {used}"
        elif limit.allowance is not None:
            bound = limit.allowance + sums.granted + sums.overrun
            assert used <= bound, (
                f"member {member}: spent {sums.spent} + reserved {sums.reserved} > allowance {limit.allowance} "
                f"+ granted {sums.granted} + over-runs {sums.overrun}"
            )
        server.spent += sums.spent
        server.reserved += sums.reserved
        server.overrun += sums.overrun
    if rules.server_cap is not None:
        assert server.spent + server.reserved <= rules.server_cap + server.overrun, (
            f"server: spent {server.spent} + reserved {server.reserved} > cap {rules.server_cap} "
            f"+ over-runs {server.overrun}"
        )
