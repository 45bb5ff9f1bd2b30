"""Ledger.refit (failover): the job's held amount becomes the new estimate in the move's transaction.

A larger estimate's difference is held (counted in the member's, the server's and every linked pool's totals), a
smaller one's surplus freed; a repeat changes nothing; the settle or release afterwards ends exactly what is held, so
a settle at the new estimate records no overrun; concurrent requests never pass an allowance, a cap or a pool.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError, LedgerError
from bot.billing.ledger import Ledger
from bot.billing.pools import Pools
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.ledger import LedgerQueries
from bot.storage.rows import JobState
from tests.billing.conftest import GUILD, MEMBER, OTHER, Clock
from tests.billing.invariants import check_ledger_consistent
from tests.billing.test_ledger import ledger_rows, new_job

CATEGORY = 700_000_000_000_000_001
CHANNEL = 700_000_000_000_000_002
THREAD = 700_000_000_000_000_003
IN_THREAD = (THREAD, CHANNEL, CATEGORY)


async def reserve_job(ledger: Ledger, job_id: str, estimate: int, places: tuple[int, ...] = ()) -> None:
    await ledger.reserve(job_id, GUILD, MEMBER, [], estimate, job=new_job(job_id, estimate), places=places)


async def adjusts(db: Database, job_id: str) -> list[tuple[int, int]]:
    rows = await db.run(
        lambda conn: conn.execute(
            "SELECT adjust_seq, amount FROM ledger WHERE job_id = ? AND kind = 'adjust' ORDER BY id", (job_id,)
        ).fetchall(),
        write=False,
    )
    return [(row[0], row[1]) for row in rows]


async def job_on(db: Database, job_id: str) -> tuple[str, int]:
    job = await db.run(lambda conn: JobQueries(conn).get(job_id), write=False)
    assert job is not None
    return job.provider, job.estimate


async def test_a_larger_estimate_is_held_and_settles_without_overrun(ledger: Ledger, db: Database) -> None:
    """$0.40 held, moved at $0.70: $0.30 more is held at once (a request for the rest of the allowance plus one
    micro-dollar is refused, one for exactly the rest fits); the settle at $0.70 releases $0.70, no overrun."""
    await reserve_job(ledger, "job", 400_000)
    assert await ledger.refit("job", [], (), 700_000, "runbase") == 300_000
    assert await adjusts(db, "job") == [(1, 300_000)]
    assert await job_on(db, "job") == ("runbase", 700_000)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.reserved, status.remaining, status.server_reserved) == (700_000, 300_000, 700_000)
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.reserve("rest+1", GUILD, MEMBER, [], 300_001)
    assert (refused.value.scope, refused.value.remaining) == ("member", 300_000)
    await ledger.reserve("rest", GUILD, MEMBER, [], 300_000)
    result = await ledger.settle("job", 700_000)
    assert (result.estimate, result.actual, result.overrun) == (700_000, 700_000, 0)
    settle = await db.run(
        lambda conn: conn.execute(
            "SELECT released, overrun FROM ledger WHERE job_id = 'job' AND kind = 'settle'"
        ).fetchone()[:],
        write=False,
    )
    assert tuple(settle) == (700_000, 0)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved, status.remaining) == (700_000, 300_000, 0)
    await db.run(check_ledger_consistent, write=False)


async def test_a_larger_estimate_that_does_not_fit_is_refused_and_changes_nothing(ledger: Ledger, db: Database) -> None:
    """$0.40 held, $0.50 held by another job: moving the first at $0.61 needs $0.21 of the $0.10 left: refused with
    the numbers, no row written, the job still on its provider at its estimate; at $0.50 it fits exactly."""
    await reserve_job(ledger, "job", 400_000)
    await ledger.reserve("other", GUILD, MEMBER, [], 500_000)
    before = await ledger_rows(db)
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.refit("job", [], (), 610_000, "runbase")
    assert (refused.value.scope, refused.value.needed, refused.value.remaining) == ("member", 210_000, 100_000)
    assert await ledger_rows(db) == before
    assert await job_on(db, "job") == ("runware", 400_000)
    assert await ledger.refit("job", [], (), 500_000, "runbase") == 100_000
    assert (await ledger.status(GUILD, MEMBER, [])).remaining == 0


async def test_the_server_cap_counts_the_difference(ledger: Ledger, budgets: Budgets) -> None:
    """Under a $1.00 cap, a move that takes the server's holds to the cap fits; another member is then refused."""
    await budgets.set_cap(GUILD, 1_000_000)
    await reserve_job(ledger, "job", 400_000)
    await ledger.reserve("theirs", GUILD, OTHER, [], 300_000)
    assert await ledger.refit("job", [], (), 700_000, "runbase") == 300_000
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.reserve("late", GUILD, OTHER, [], 1)
    assert (refused.value.scope, refused.value.remaining) == ("server", 0)


async def test_a_smaller_estimate_frees_the_surplus_and_the_release_ends_what_is_held(
    ledger: Ledger, db: Database
) -> None:
    """$0.40 held, moved at $0.25: $0.15 freed at once; the release ends $0.25, leaving nothing reserved."""
    await reserve_job(ledger, "job", 400_000)
    assert await ledger.refit("job", [], (), 250_000, "runbase") == -150_000
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.reserved, status.remaining) == (250_000, 750_000)
    assert await ledger.release("job")
    assert not await ledger.release("job")
    release = await db.run(
        lambda conn: tuple(
            conn.execute("SELECT amount, released FROM ledger WHERE job_id = 'job' AND kind = 'release'").fetchone()
        ),
        write=False,
    )
    assert release == (250_000, 250_000)
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved, status.remaining) == (0, 0, 1_000_000)
    # A settle after the release: the whole cost is an overrun, as for any released hold.
    assert (await ledger.settle("job", 100_000)).overrun == 100_000
    await db.run(check_ledger_consistent, write=False)


async def test_a_repeated_refit_changes_nothing_and_each_move_is_one_numbered_adjust(
    ledger: Ledger, db: Database
) -> None:
    """The same move twice writes one adjust; moving back writes a second (numbered 2) and holds the first estimate;
    an equal estimate on another provider moves the job without any ledger row."""
    await reserve_job(ledger, "job", 400_000)
    assert await ledger.refit("job", [], (), 650_000, "runbase") == 250_000
    rows = await ledger_rows(db)
    assert await ledger.refit("job", [], (), 650_000, "runbase") == 0
    assert await ledger_rows(db) == rows
    assert await ledger.refit("job", [], (), 400_000, "runware") == -250_000
    assert await adjusts(db, "job") == [(1, 250_000), (2, -250_000)]
    assert (await ledger.status(GUILD, MEMBER, [])).reserved == 400_000
    assert await ledger.refit("job", [], (), 400_000, "runbase") == 0
    assert await job_on(db, "job") == ("runbase", 400_000)
    assert len(await adjusts(db, "job")) == 2
    result = await ledger.settle("job", 400_000)
    assert (result.estimate, result.overrun) == (400_000, 0)
    await db.run(check_ledger_consistent, write=False)


async def test_a_refit_after_the_hold_ended_or_of_a_finished_job_is_refused(ledger: Ledger, db: Database) -> None:
    """No move once the hold is settled or released, nor for a job no longer queued or submitted."""
    await reserve_job(ledger, "settled", 100_000)
    await ledger.settle("settled", 100_000)
    with pytest.raises(LedgerError):
        await ledger.refit("settled", [], (), 200_000, "runbase")
    await reserve_job(ledger, "done", 100_000)
    await db.run(lambda conn: conn.execute("UPDATE jobs SET state = 'failed' WHERE id = 'done'"))
    before = await ledger_rows(db)
    with pytest.raises(LedgerError):
        await ledger.refit("done", [], (), 50_000, "runbase")
    assert await ledger_rows(db) == before
    with pytest.raises(LedgerError):
        await ledger.refit("never", [], (), 50_000, "runbase")


async def test_every_pool_of_the_hold_counts_the_difference_and_the_totals_rebuild_the_same(
    ledger: Ledger, db: Database, budgets: Budgets, clock: Clock
) -> None:
    """A hold in a thread counts against its channel's and its category's pools: a larger estimate's difference is
    held in both (the category's refuses what would pass it), a smaller one frees it in both; settled, both pools
    show the charge with nothing reserved, and the stored totals equal a fresh sum of the ledger."""
    pools = Pools(db, budgets, clock=clock)
    await pools.set(GUILD, CATEGORY, 500_000)
    await pools.set(GUILD, CHANNEL, 900_000)
    await reserve_job(ledger, "job", 200_000, IN_THREAD)
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.refit("job", [], IN_THREAD, 500_001, "runbase")
    assert (refused.value.scope, refused.value.pool_id, refused.value.remaining) == ("pool", CATEGORY, 300_000)
    assert await ledger.refit("job", [], IN_THREAD, 450_000, "runbase") == 250_000
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (0, 450_000), CHANNEL: (0, 450_000)}
    with pytest.raises(BudgetExceededError):
        await ledger.reserve("squeeze", GUILD, OTHER, [], 50_001, places=(CHANNEL, CATEGORY))
    assert await ledger.refit("job", [], IN_THREAD, 300_000, "runware") == -150_000
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (0, 300_000), CHANNEL: (0, 300_000)}
    assert (await ledger.settle("job", 300_000)).overrun == 0
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (300_000, 0), CHANNEL: (300_000, 0)}
    assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches(), write=False) == 0
    await db.run(lambda conn: conn.execute("DELETE FROM pool_day_totals"))
    await db.run(lambda conn: conn.execute("DELETE FROM member_day_totals"))
    assert (await ledger.reconcile()).totals_repaired > 0
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (300_000, 0), CHANNEL: (300_000, 0)}
    assert (await ledger.status(GUILD, MEMBER, [])).spent == 300_000


async def test_concurrent_requests_and_a_refit_never_pass_the_allowance(ledger: Ledger, db: Database) -> None:
    """A move to $0.70 races 20 requests of $0.05 for the $0.60 left: whatever the order, spend plus holds never
    pass $1.00, and the job settles at its held amount without an overrun."""
    await reserve_job(ledger, "job", 400_000)

    async def request(number: int) -> bool:
        try:
            await ledger.reserve(f"req-{number}", GUILD, MEMBER, [], 50_000)
        except BudgetExceededError:
            return False
        return True

    async def move() -> int | None:
        try:
            return await ledger.refit("job", [], (), 700_000, "runbase")
        except BudgetExceededError:
            return None

    outcomes = await asyncio.gather(*(request(n) for n in range(10)), move(), *(request(n) for n in range(10, 20)))
    moved = outcomes[10]
    held = sum(1 for outcome in outcomes if outcome is True)
    status = await ledger.status(GUILD, MEMBER, [])
    assert status.reserved <= 1_000_000
    estimate = 400_000 if moved is None else 700_000
    assert status.reserved == estimate + held * 50_000
    assert held == (1_000_000 - estimate) // 50_000
    result = await ledger.settle("job", estimate)
    assert (result.estimate, result.overrun) == (estimate, 0)


async def test_reconcile_settles_a_moved_delivered_job_without_cost_at_its_held_amount(
    ledger: Ledger, db: Database
) -> None:
    """A delivered job with no recorded cost is settled at what it holds after the move (not the first hold)."""
    await reserve_job(ledger, "job", 400_000)
    await ledger.refit("job", [], (), 600_000, "runbase")
    await db.run(lambda conn: conn.execute("UPDATE jobs SET state = ? WHERE id = 'job'", (JobState.SUCCEEDED.value,)))
    report = await ledger.reconcile()
    assert report.settled == ["job"]
    status = await ledger.status(GUILD, MEMBER, [])
    assert (status.spent, status.reserved) == (600_000, 0)


async def test_a_refit_with_references_stores_them_with_the_move_and_a_refused_one_keeps_the_old(
    ledger: Ledger, db: Database
) -> None:
    """The new provider's references (Runbase URLs for Runware UUIDs) are written in the move's transaction, the
    other extras kept; a refit the budget refuses changes neither the provider nor the references."""
    job = replace(new_job("job", 400_000), references=("uuid-1",), extras={"kind": "imagine"})
    await ledger.reserve("job", GUILD, MEMBER, [], 400_000, job=job)
    with pytest.raises(BudgetExceededError):
        await ledger.refit("job", [], (), 1_100_000, "runbase", references=("https://cdn.example/a.png",))
    stored = await db.run(lambda conn: JobQueries(conn).get("job"), write=False)
    assert stored is not None and (stored.provider, stored.references) == ("runware", ("uuid-1",))
    await ledger.refit("job", [], (), 500_000, "runbase", references=("https://cdn.example/a.png",))
    stored = await db.run(lambda conn: JobQueries(conn).get("job"), write=False)
    assert stored is not None
    assert (stored.provider, stored.estimate, stored.references) == ("runbase", 500_000, ("https://cdn.example/a.png",))
    assert stored.extras.get("kind") == "imagine"
