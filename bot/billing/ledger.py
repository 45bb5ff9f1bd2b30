"""The spend ledger: reserve before a generation, settle to its real cost or release it, grant, report status.

Every operation is one atomic unit of work on the database thread (`Database.run`, committed before the call returns;
a grant with its audit row), reading the rules and totals it checks in that unit. So a check and its hold are atomic:
however many requests arrive at once, holds and charges never together pass a member's allowance plus grants, or the
server cap, except by an overrun (Runware reporting more than was reserved), recorded on the settle row and logged.

Limits are judged at reservation time. A hold that fitted stays valid when an admin later lowers an allowance or
the cap, or deducts: it is settled or released as usual, so spend plus holds can end above a limit lowered after
they were made (new requests are refused until they are back under it). While the rules stand and nothing is
deducted, at every moment spend + holds <= allowance + grants + recorded overruns for each member, and
<= cap + recorded overruns for the server (tests/billing/test_ledger_properties.py checks both).

Idempotency: the ledger allows one hold, one settle and one release row per job (a unique index), so repeating
`settle` or `release` changes nothing, and a repeated `reserve` with the same figures returns the existing hold.
A failover's `refit` re-reserves the job at its new estimate with an `adjust` row (numbered per job by another unique
index); what a job holds is its hold plus its adjusts, and its settle or release ends exactly that. A repeated refit
with the same figures changes nothing. A
caller cancelled while its `reserve` is running may not know whether the hold was written; `release(job_id)` is
always safe to call afterwards.

Job rows and holds: a hold carries its job id without a foreign key, because the generation flow reserves before
it writes the job (contract §2, steps 5 and 6); pass `job=` to `reserve` to create the row in the same transaction
and close that gap. `reconcile()` treats a hold whose job row does not exist as abandoned (the process died between
the two steps) and releases it, so run it at start-up, before requests are accepted, or give it a grace period. The
operator's terminal holds (`bot.billing.operator`) are the exception: another process may still be running them, so
they are kept for `operator_grace`, then settled at the estimate (the outcome is unknown), never released.

Several processes (PostgreSQL): every unit that moves a server's money holds that server's budget lock
(`Database.run(..., locks=[guild_id])`), so a reservation's checks and hold are atomic against every process. Settle,
release and refit know the job: its server is remembered from the reserve, or read first. See docs/architecture.md.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from bot.billing.budgets import Budgets, MemberLimit, day_span, period_bounds, record_change
from bot.billing.checks import (
    allowance_warning,
    check_job_row,
    checked_places,
    checked_request,
    earlier_duplicate,
    refusal,
    repeated_reservation,
)
from bot.billing.entries import adjust_in, held, release_in, report_settlement, settle_in
from bot.billing.errors import BudgetExceededError, BudgetInputError, LedgerError
from bot.billing.inputs import check_amount, check_id, check_job_id
from bot.billing.operator import operator_grace_for
from bot.billing.outcomes import (
    AllowanceWarning,
    BudgetStatus,
    ReconcileReport,
    Reservation,
    SettleResult,
)
from bot.billing.pools import pools_refusal, tightest_pool
from bot.billing.reconcile import reconcile_in
from bot.catalog import Period
from bot.clock import utc_now
from bot.money import format_usd
from bot.settings import RunwareConfig
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.ledger import LedgerQueries
from bot.storage.pools import PoolQueries
from bot.storage.rows import EntryKind, Job, JobState, LedgerEntry, NewJob, PoolRow

__all__ = [
    "AllowanceWarning",
    "BudgetExceededError",
    "BudgetStatus",
    "Ledger",
    "LedgerError",
    "ReconcileReport",
    "Reservation",
    "SettleResult",
]

log = logging.getLogger(__name__)

MAX_REASON_CHARS = 500


class Ledger:
    """Reservations, settlements, releases and grants against the budgets of `Budgets`."""

    def __init__(
        self,
        db: Database,
        budgets: Budgets,
        *,
        clock: Callable[[], datetime] = utc_now,
        operator_grace: timedelta | None = None,
    ) -> None:
        """Serve the ledger on `db` with `budgets`' rules.

        `operator_grace`: how long a terminal `generate` may hold (`operator_grace_for(config.runware)`; by default,
        that of the default Runware config).
        """
        self._db = db
        self._budgets = budgets
        self._clock = clock
        self._operator_grace = operator_grace_for(RunwareConfig()) if operator_grace is None else operator_grace
        self._guilds: dict[str, int] = {}  # job id -> server, of the jobs reserved here (shared database only)

    async def reserve(
        self,
        job_id: str,
        guild_id: int,
        member_id: int,
        role_ids: Sequence[int],
        estimate: int,
        *,
        job: NewJob | None = None,
        places: Sequence[int] = (),
        duplicate_since: datetime | None = None,
    ) -> Reservation:
        """Hold `estimate` for the job if it fits the member's and the server's budgets and the team pools, else raise.

        `places` are where the request was made, innermost first (`GenerationRequest.places`); the hold must fit the
        pool of every one of them that has one (a thread's channel, the channel's category: a category's pool is a
        ceiling for everything in it, a channel's own pool a tighter one inside it), and counts against all of them
        (linked in `hold_pools` in the same transaction, so its settle or release counts against the same ones).
        Raises `BudgetExceededError` (scope `member`, `server`, `pool` or `blocked`, with the numbers for the message;
        for `pool`, the innermost pool that refuses) and records nothing when it does not fit.
        A hold that takes the member to 80% of their allowance for the first time in the period carries a
        `Reservation.warning` (remembered in the same transaction, so it is given once per period). With `job`, the
        job row is created in the same transaction and returned as `Reservation.job`; it must be the row of this
        reservation (same id, server, member and estimate), or `BudgetInputError` is raised and nothing is written.
        A repeated reserve of a job returns its hold, with the reset instant of the period the hold was made in.
        With `duplicate_since`, a job of the member with `job`'s fingerprint made since then is returned instead
        (`Reservation.duplicate`, its estimate and creation time), and nothing is written: duplicates collapse here,
        under the server's lock, across processes.
        """
        job_id = check_job_id(job_id)
        guild, member, roles, amount = checked_request(guild_id, member_id, role_ids, estimate)
        spots = checked_places(places)
        if job is not None:
            check_job_row(job, job_id, guild, member, amount)
        now = self._clock()

        def repeated(conn: sqlite3.Connection, existing: list[LedgerEntry], period: Period) -> Reservation:
            reservation = repeated_reservation(existing, job_id, guild, member, amount, period)
            return reservation if job is None else replace(reservation, job=JobQueries(conn).get(job_id))

        def unit(conn: sqlite3.Connection) -> Reservation:
            earlier = earlier_duplicate(conn, job, duplicate_since)
            if earlier is not None:
                resets = period_bounds(self._budgets.member_limit(conn, guild, member, roles).period, now)[1]
                created = earlier.created_at
                return Reservation(
                    earlier.id, guild, member, earlier.estimate, created, resets, False, earlier, duplicate=True
                )
            ledger = LedgerQueries(conn)
            refusal, limit, pools = self._refusal_in(conn, guild, member, roles, spots, amount, now)
            period = limit.period
            if refusal is not None:
                existing = ledger.entries_for_job(job_id)
                if existing:  # a repeated reserve of a job that already holds: not a new request
                    return repeated(conn, existing, period)
                raise refusal
            try:
                hold = ledger.insert(
                    guild_id=guild,
                    member_id=member,
                    job_id=job_id,
                    kind=EntryKind.HOLD,
                    amount=amount,
                    effective_at=now,
                    created_at=now,
                    pool_id=pools[0].pool_id if pools else None,
                )
            except sqlite3.IntegrityError:
                # The (job, kind) key: this job already reserved. Checking here, not first, keeps the common
                # path to one lookup fewer.
                existing = ledger.entries_for_job(job_id)
                if not existing:
                    raise
                return repeated(conn, existing, period)
            PoolQueries(conn).link_hold(job_id, [pool.pool_id for pool in pools])
            stored: Job | None = None
            if job is not None:
                try:
                    stored = JobQueries(conn).insert(job, now)
                except sqlite3.IntegrityError as exc:
                    raise LedgerError(f"Job {job_id} could not be stored: {exc}.") from exc
            start, end = period_bounds(period, now)
            return Reservation(
                job_id,
                guild,
                member,
                amount,
                hold.effective_at,
                end,
                created=True,
                job=stored,
                pool_id=hold.pool_id,
                pool_ids=tuple(pool.pool_id for pool in pools),
                warning=allowance_warning(conn, limit, guild, member, start, end, now),
            )

        # Deferrable: a new hold and job row, which no unit queued after it can touch (see `Database.run`).
        reservation = await self._db.run(unit, locks=[guild], deferrable=True)
        if self._db.shared and not reservation.duplicate:  # a shortcut only: a job missing here is read instead
            self._guilds = {} if len(self._guilds) > 100_000 else self._guilds
            self._guilds[job_id] = guild
        return reservation

    async def check(
        self, guild_id: int, member_id: int, role_ids: Sequence[int], amount: int, *, places: Sequence[int] = ()
    ) -> None:
        """Raise the `BudgetExceededError` that `reserve` of `amount` would raise right now; write nothing.

        For refusing early (before asking the member to confirm, or before fetching references) what the budget
        cannot hold anyway. The rules and totals are read in one read-only unit and judged exactly as `reserve`
        judges them, so the two agree; the answer may of course change before a later `reserve`, which decides.
        """
        guild, member, roles, value = checked_request(guild_id, member_id, role_ids, amount)
        spots = checked_places(places)
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> BudgetExceededError | None:
            return self._refusal_in(conn, guild, member, roles, spots, value, now)[0]

        refusal = await self._db.run(unit, write=False)
        if refusal is not None:
            raise refusal

    async def settle(self, job_id: str, actual: int) -> SettleResult:
        """Charge the job's real cost and end its hold; repeating it changes nothing. Overruns are recorded and logged.

        Raises `LedgerError` if the job has no reservation.
        """
        job_id = check_job_id(job_id)
        amount = check_amount(actual, "actual cost")
        now = self._clock()
        locks = await self._job_locks(job_id, ending=True)
        result = await self._db.run(lambda conn: settle_in(conn, job_id, amount, now), locks=locks)
        report_settlement(result, amount)
        return result

    async def settle_delivered(self, job_id: str, actual: int, message_id: int | None) -> SettleResult | None:
        """Record the job delivered (`succeeded`, its cost and message) and charge it, in one unit of work.

        The two writes always go together, so they share one trip to the database and cannot be split by a crash.
        Returns None, and charges nothing, when the job is no longer a submitted, undelivered job (it was cancelled
        or finished meanwhile). Raises `LedgerError` (and writes nothing) if the job has no reservation.
        """
        job_id = check_job_id(job_id)
        amount = check_amount(actual, "actual cost")
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> SettleResult | None:
            if not JobQueries(conn).finish_delivered(job_id, message_id, amount, now):
                return None
            return settle_in(conn, job_id, amount, now)

        result = await self._db.run(unit, locks=await self._job_locks(job_id, ending=True))
        if result is not None:
            report_settlement(result, amount)
        return result

    async def release(self, job_id: str) -> bool:
        """End the job's hold without charging; True if a hold was released, False if it had already ended.

        Raises `LedgerError` if the job has no reservation.
        """
        job_id = check_job_id(job_id)
        now = self._clock()
        locks = await self._job_locks(job_id, ending=True)
        return await self._db.run(lambda conn: release_in(conn, job_id, now), locks=locks)

    async def grant(
        self, guild_id: int, member_id: int, amount: int, reason: str, actor_id: int | None = None
    ) -> LedgerEntry:
        """Add (or, negative, deduct) an amount to the member's budget for the current period, with a reason."""
        guild, member = check_id(guild_id, "server id"), check_id(member_id, "member id")
        value = check_amount(amount, "grant", allow_negative=True, allow_zero=False)
        actor = None if actor_id is None else check_id(actor_id, "admin id")
        if not isinstance(reason, str) or not reason.strip():
            raise BudgetInputError("A grant needs a reason.")
        text = reason.strip()
        if len(text) > MAX_REASON_CHARS:
            raise BudgetInputError(f"A grant's reason must be at most {MAX_REASON_CHARS} characters.")
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> LedgerEntry:
            entry = LedgerQueries(conn).insert(
                guild_id=guild,
                member_id=member,
                job_id=None,
                kind=EntryKind.GRANT,
                amount=value,
                effective_at=now,
                created_at=now,
                reason=text,
                actor_id=actor,
            )
            record_change(conn, guild, actor, f"grant <@{member}>", None, f"{format_usd(value)}: {text}", now)
            return entry

        entry = await self._db.run(unit, locks=[guild])
        log.info("grant of %s to member %d in guild %d by %s: %s", format_usd(value), member, guild, actor, text)
        return entry

    async def status(
        self, guild_id: int, member_id: int, role_ids: Sequence[int], *, places: Sequence[int] = ()
    ) -> BudgetStatus:
        """Return the member's budget this period (allowance, grants, spend, holds, left), the server's, the pool's.

        The team pool shown is the tightest of those that apply in `places` (a channel, then what encloses it): the
        one with the least left, the innermost on a tie; None if no place has a pool.
        """
        guild, member = check_id(guild_id, "server id"), check_id(member_id, "member id")
        roles = [check_id(role, "role id") for role in role_ids]
        spots = checked_places(places)
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> BudgetStatus:
            limit = self._budgets.member_limit(conn, guild, member, roles)
            start, end = period_bounds(limit.period, now)
            first_day, end_day = day_span(start, end)
            totals = LedgerQueries(conn).totals(guild, member, first_day, end_day)
            mine, server = totals.member, totals.server
            if limit.blocked:
                remaining: int | None = 0
            elif limit.allowance is None:
                remaining = None
            else:
                remaining = max(0, limit.allowance + mine.granted - mine.spent - mine.reserved)
            return BudgetStatus(
                period=limit.period,
                period_start=start,
                resets_at=end,
                allowance=limit.allowance,
                blocked=limit.blocked,
                granted=mine.granted,
                spent=mine.spent,
                reserved=mine.reserved,
                remaining=remaining,
                server_cap=limit.server_cap,
                server_spent=server.spent,
                server_reserved=server.reserved,
                pool=tightest_pool(conn, PoolQueries(conn).of_places(guild, spots), start, end),
            )

        return await self._db.run(unit, write=False)

    async def _job_locks(self, job_id: str, *, ending: bool = False) -> list[int]:
        """Return the budget lock of the job's server on a shared database (none needed on SQLite).

        A job reserved by this process is known; another's (taken over after a restart) is read first.
        """
        if not self._db.shared:
            return []
        known = self._guilds.pop(job_id, None) if ending else self._guilds.get(job_id)
        if known is not None:
            return [known]
        guild = await self._db.run(lambda conn: LedgerQueries(conn).guild_of_job(job_id), write=False)
        return [] if guild is None else [guild]

    def _refusal_in(
        self,
        conn: sqlite3.Connection,
        guild: int,
        member: int,
        roles: Sequence[int],
        places: Sequence[int],
        amount: int,
        now: datetime,
    ) -> tuple[BudgetExceededError | None, MemberLimit, list[PoolRow]]:
        """Judge a hold of `amount` in the caller's unit: why it does not fit (None if it does), limit, pools.

        Returns the refusal, the member's limit (and so the period), and the team pools that apply (innermost first).
        """
        limit = self._budgets.member_limit(conn, guild, member, roles)
        start, end = period_bounds(limit.period, now)
        pools = PoolQueries(conn).of_places(guild, places)
        why = refusal(LedgerQueries(conn), limit, guild, member, amount, start, end)
        if why is None:
            why = pools_refusal(conn, pools, amount, start, end)
        return why, limit, pools

    async def refit(
        self,
        job_id: str,
        role_ids: Sequence[int],
        places: Sequence[int],
        estimate: int,
        provider: str,
        *,
        references: Sequence[str] | None = None,
    ) -> int:
        """Move a running job to another provider and re-reserve it at the new estimate, in one transaction (failover).

        The job's held amount becomes `estimate`: an `adjust` row of the difference (the ledger stays append-only),
        counted in the member's, the server's and every linked pool's totals like the hold, in the hold's period.
        A larger estimate's difference must fit the member's and the server's budgets and the team pools of `places`
        *now* (in the hold's period, the hold already counted), or `BudgetExceededError` is raised and nothing
        changes; a smaller one frees the surplus. The settle or release later ends exactly what is held. Returns the
        difference (positive: held beyond the old hold; negative: freed). Repeating a refit that was done (the job is
        on `provider` at `estimate` and holds it) changes nothing and returns 0. Raises `LedgerError` when the job has
        no open hold or is no longer queued or submitted. `references`, when given, replace the job's stored
        references in the same transaction (the new provider's form of them).
        """
        job_id = check_job_id(job_id)
        amount = check_amount(estimate, "estimate")
        spots = checked_places(places)
        now = self._clock()

        def unit(conn: sqlite3.Connection) -> int:
            reservation = held(LedgerQueries(conn), job_id, "move")
            if reservation.ended:
                raise LedgerError(f"Job {job_id}'s hold has ended; it cannot move to another provider.")
            jobs = JobQueries(conn)
            job = jobs.get(job_id)
            if (
                job is not None
                and job.state in (JobState.QUEUED, JobState.SUBMITTED)
                and (job.provider, job.estimate, reservation.amount) == (provider, amount, amount)
            ):
                return 0  # this refit was done already
            extra = amount - reservation.amount
            if extra > 0:
                hold = reservation.hold
                why, _, _ = self._refusal_in(
                    conn, hold.guild_id, hold.member_id, role_ids, spots, extra, hold.effective_at
                )
                if why is not None:
                    raise why
            if not jobs.move_to_provider(job_id, provider, amount, now, references):
                raise LedgerError(f"Job {job_id} is no longer running; it cannot move to another provider.")
            return adjust_in(conn, reservation, amount, now)

        return await self._db.run(unit, locks=await self._job_locks(job_id))

    async def reconcile(self, *, orphan_grace: timedelta = timedelta(0)) -> ReconcileReport:
        """Resolve holds left open by a crash; check the daily totals against the ledger and rebuild them if needed.

        A hold whose job succeeded (was delivered) is settled to the job's cost (to its estimate if no cost was
        recorded, the conservative choice); a hold whose job failed, was cancelled or rejected is released; a hold
        whose job row is gone and is older than `orphan_grace` is released; holds of active jobs are kept. An operator's
        terminal hold without a job row is kept for `operator_grace` (the `generate` may still be running), then
        settled at its estimate, as is one whose job the terminal recorded as failed with an unknown outcome.
        """
        now = self._clock()
        locked: frozenset[int] | None = None
        if self._db.shared:  # every server with an open hold: another process may be reserving there
            locked = frozenset(
                await self._db.run(lambda conn: LedgerQueries(conn).guilds_with_open_holds(), write=False)
            )
        unit = partial(
            reconcile_in, now=now, orphan_grace=orphan_grace, operator_grace=self._operator_grace, locked=locked
        )
        done = await self._db.run(unit, locks=sorted(locked or ()))
        report = done.report
        for result in done.settlements:
            report_settlement(result, result.actual)
        if report.totals_repaired:
            log.error("rebuilt the daily totals from the ledger: %d rows disagreed", report.totals_repaired)
        if report.settled or report.released:
            log.info(
                "reconciled open holds: %d settled, %d released, %d kept",
                len(report.settled),
                len(report.released),
                len(report.kept),
            )
        return report
