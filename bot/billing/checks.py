"""The ledger's judgements inside a unit of work: a reservation's arguments, whether a hold fits, the 80% warning.

Whether a hold fits the member's allowance and the server cap (the team pool's check is `bot.billing.pools`), and
the once-per-period warning when a member reaches 80% of their allowance.

`bot.billing.ledger.Ledger` calls them in the same transaction as it writes, so a check and its hold are atomic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from bot.billing.budgets import MemberLimit, day_span, period_bounds
from bot.billing.errors import BudgetExceededError, BudgetInputError, LedgerError
from bot.billing.inputs import check_amount, check_id
from bot.billing.outcomes import WARN_AT_PERCENT, AllowanceWarning, Reservation
from bot.catalog import Period
from bot.money import format_usd
from bot.storage.jobs import JobQueries
from bot.storage.ledger import LedgerQueries
from bot.storage.pools import PoolQueries
from bot.storage.rows import EntryKind, Job, LedgerEntry, NewJob

__all__ = [
    "allowance_warning",
    "check_job_row",
    "checked_places",
    "checked_request",
    "earlier_duplicate",
    "refusal",
    "repeated_reservation",
]


def earlier_duplicate(conn: sqlite3.Connection, job: NewJob | None, since: datetime | None) -> Job | None:
    """Return the member's job made since `since` that `job` repeats (the same fingerprint in `extras`), or None.

    Read inside the reservation's unit, under the server's budget lock: two processes given the same request at once
    find each other's job here, so it is stored and reserved once.
    """
    fingerprint = None if job is None else job.extras.get("fingerprint")
    if job is None or job.guild_id is None or since is None or not isinstance(fingerprint, str):
        return None
    earlier = JobQueries(conn).find_recent_duplicate(job.guild_id, job.member_id, fingerprint, since)
    return None if earlier is None or earlier.id == job.id else earlier  # the same job again: a repeated reserve


def checked_request(
    guild_id: int, member_id: int, role_ids: Sequence[int], estimate: int
) -> tuple[int, int, list[int], int]:
    """Validate a reservation's server, member, roles and amount (as `reserve` and `check` both need)."""
    guild, member = check_id(guild_id, "server id"), check_id(member_id, "member id")
    roles = [check_id(role, "role id") for role in role_ids]
    return guild, member, roles, check_amount(estimate, "estimate")


def checked_places(places: Sequence[int]) -> list[int]:
    """Validate where a request was made (channel ids, innermost first)."""
    return [check_id(place, "channel id") for place in places]


def allowance_warning(
    conn: sqlite3.Connection, limit: MemberLimit, guild: int, member: int, start: datetime, end: datetime, now: datetime
) -> AllowanceWarning | None:
    """After a new hold: warn if the member's spend and holds reached 80% of their allowance, once per period."""
    if limit.blocked or limit.allowance is None:
        return None
    first_day, end_day = day_span(start, end)
    mine = LedgerQueries(conn).totals(guild, member, first_day, end_day).member
    budget, used = limit.allowance + mine.granted, mine.spent + mine.reserved
    if budget <= 0 or used * 100 < budget * WARN_AT_PERCENT:
        return None
    if not PoolQueries(conn).mark_warned(guild, member, start, now):
        return None
    return AllowanceWarning(used, budget, end)


def refusal(
    ledger: LedgerQueries, limit: MemberLimit, guild: int, member: int, amount: int, start: datetime, end: datetime
) -> BudgetExceededError | None:
    """Return why a hold of `amount` does not fit (member first, then server), or None if it fits."""
    if limit.blocked:
        return BudgetExceededError("blocked", amount, 0, end)
    first_day, end_day = day_span(start, end)
    totals = ledger.totals(guild, member, first_day, end_day)
    if limit.allowance is not None:
        mine = totals.member
        left = limit.allowance + mine.granted - mine.spent - mine.reserved
        if amount > left:
            return BudgetExceededError("member", amount, max(0, left), end)
    if limit.server_cap is not None:
        server = totals.server
        left = limit.server_cap - server.spent - server.reserved
        if amount > left:
            return BudgetExceededError("server", amount, max(0, left), end)
    return None


def check_job_row(job: NewJob, job_id: str, guild: int, member: int, estimate: int) -> None:
    """Raise `BudgetInputError` unless the job row describes this reservation (reconcile settles from the row)."""
    wrong = [
        f"{what} {theirs!r} (the reservation's is {ours!r})"
        for what, theirs, ours in (
            ("id", job.id, job_id),
            ("server", job.guild_id, guild),
            ("member", job.member_id, member),
            ("estimate", job.estimate, estimate),
        )
        if theirs != ours
    ]
    if wrong:
        raise BudgetInputError(f"The job row does not match the reservation: its {'; its '.join(wrong)}.")


def repeated_reservation(
    entries: list[LedgerEntry], job_id: str, guild_id: int, member_id: int, estimate: int, period: Period
) -> Reservation:
    """Return a repeated reserve's hold as a `Reservation`; raise `LedgerError` if it differs or has ended."""
    kinds = {entry.kind: entry for entry in entries}
    hold = kinds.get(EntryKind.HOLD)
    if hold is None or EntryKind.SETTLE in kinds or EntryKind.RELEASE in kinds:
        raise LedgerError(f"Job {job_id} was already settled or released; a job is reserved only once.")
    if (hold.guild_id, hold.member_id, hold.amount) != (guild_id, member_id, estimate):
        raise LedgerError(f"Job {job_id} already holds a different reservation ({format_usd(hold.amount)}).")
    # The hold belongs to the period it was made in, which may have ended since: its reset is that period's end.
    resets_at = period_bounds(period, hold.effective_at)[1]
    return Reservation(job_id, guild_id, member_id, estimate, hold.effective_at, resets_at, created=False)
