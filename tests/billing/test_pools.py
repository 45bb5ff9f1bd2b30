"""Team pools in the ledger: checked in the reservation's transaction with the allowance and the cap, every pooled
place of a request applies (nested pools: a category's is a ceiling for its channels' own), settle and release count
against the pools the hold was made in, the totals can be rebuilt; and the 80% allowance warning, once per period."""

from __future__ import annotations

import asyncio

import pytest

from bot.billing.budgets import Budgets, MemberOverride
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.billing.pools import Pools
from bot.storage.database import Database
from bot.storage.ledger import LedgerQueries
from tests.billing.conftest import ADMIN, GUILD, MEMBER, OTHER, Clock

CATEGORY = 700_000_000_000_000_001
CHANNEL = 700_000_000_000_000_002
THREAD = 700_000_000_000_000_003
ELSEWHERE = 700_000_000_000_000_004
IN_THREAD = (THREAD, CHANNEL, CATEGORY)


@pytest.fixture
def pools(db: Database, budgets: Budgets, clock: Clock) -> Pools:
    """Pools on the test database, reading the test clock."""
    return Pools(db, budgets, clock=clock)


async def _pool_rows(db: Database) -> list[tuple[str, int | None]]:
    rows = await db.run(lambda conn: conn.execute("SELECT kind, pool_id FROM ledger ORDER BY id").fetchall())
    return [(row[0], row[1]) for row in rows]


async def test_the_pool_refuses_what_does_not_fit_and_names_itself(ledger: Ledger, pools: Pools) -> None:
    """A category pool of $0.10 holds $0.06 then refuses $0.05 in a thread of one of its channels (naming the
    category), while the same request elsewhere is held."""
    await pools.set(GUILD, CATEGORY, 100_000, actor_id=ADMIN)
    first = await ledger.reserve("job-1", GUILD, MEMBER, [], 60_000, places=IN_THREAD)
    assert first.pool_id == CATEGORY
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.reserve("job-2", GUILD, OTHER, [], 50_000, places=IN_THREAD)
    assert (refused.value.scope, refused.value.pool_id, refused.value.remaining) == ("pool", CATEGORY, 40_000)
    with pytest.raises(BudgetExceededError):
        await ledger.check(GUILD, OTHER, [], 50_000, places=(CHANNEL, CATEGORY))
    assert (await ledger.reserve("job-3", GUILD, OTHER, [], 50_000, places=(ELSEWHERE,))).pool_id is None
    status = await ledger.status(GUILD, OTHER, [], places=IN_THREAD)
    assert status.pool is not None and (status.pool.spent, status.pool.reserved, status.pool.remaining) == (
        0,
        60_000,
        40_000,
    )
    assert status.available == 40_000


async def test_every_pool_of_the_places_applies_a_category_pool_is_a_ceiling(
    ledger: Ledger, pools: Pools, db: Database
) -> None:
    """A channel's own pool of $5.00 inside a category's of $0.10: $0.30 in a thread of the channel is refused by the
    category (the channel's pool is no way around it); $0.06 counts against both pools (and is linked to both)."""
    await pools.set(GUILD, CATEGORY, 100_000)
    await pools.set(GUILD, CHANNEL, 5_000_000)
    with pytest.raises(BudgetExceededError) as refused:
        await ledger.reserve("job-1", GUILD, MEMBER, [], 300_000, places=IN_THREAD)
    assert (refused.value.scope, refused.value.pool_id, refused.value.remaining) == ("pool", CATEGORY, 100_000)
    with pytest.raises(BudgetExceededError):
        await ledger.check(GUILD, MEMBER, [], 300_000, places=IN_THREAD)
    held = await ledger.reserve("job-2", GUILD, MEMBER, [], 60_000, places=IN_THREAD)
    assert (held.pool_id, held.pool_ids) == (CHANNEL, (CHANNEL, CATEGORY))
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (0, 60_000), CHANNEL: (0, 60_000)}
    links = await db.run(lambda conn: conn.execute("SELECT pool_id FROM hold_pools ORDER BY pool_id").fetchall())
    assert [row[0] for row in links] == sorted((CATEGORY, CHANNEL))
    # /balance there shows the pool with the least left: the category's.
    status = await ledger.status(GUILD, MEMBER, [], places=IN_THREAD)
    assert status.pool is not None and (status.pool.pool_id, status.pool.remaining) == (CATEGORY, 40_000)


async def test_nested_pools_settle_and_release_exactly_and_survive_a_rebuild(
    ledger: Ledger, pools: Pools, db: Database
) -> None:
    """Holds in a thread (pools: channel and category) and in a plain channel of the category (pool: category): a
    settle below the estimate, an overrun and a release end exactly in each pool; removing the channel's pool changes
    nothing for holds made before; the stored totals equal a fresh sum (reconcile finds nothing to repair)."""
    other_channel = ELSEWHERE
    await pools.set(GUILD, CATEGORY, 1_000_000)
    await pools.set(GUILD, CHANNEL, 500_000)
    await ledger.reserve("job-1", GUILD, MEMBER, [], 100_000, places=IN_THREAD)
    await ledger.reserve("job-2", GUILD, OTHER, [], 200_000, places=(other_channel, CATEGORY))
    await ledger.reserve("job-3", GUILD, OTHER, [], 50_000, places=(CHANNEL, CATEGORY))
    await pools.set(GUILD, CHANNEL, None)
    await ledger.settle("job-1", 90_000)
    await ledger.settle("job-2", 250_000)  # an overrun: the pool is charged what was spent
    await ledger.release("job-3")
    await ledger.release("job-3")  # repeated: nothing more
    await pools.set(GUILD, CHANNEL, 500_000)
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (340_000, 0), CHANNEL: (90_000, 0)}
    assert await db.run(lambda conn: LedgerQueries(conn).count_totals_mismatches(), write=False) == 0
    assert (await ledger.reconcile()).totals_repaired == 0

    await db.run(lambda conn: conn.execute("DELETE FROM pool_day_totals"))
    assert (await ledger.reconcile()).totals_repaired == 2
    statuses = {pool.pool_id: (pool.spent, pool.reserved) for pool in await pools.statuses(GUILD)}
    assert statuses == {CATEGORY: (340_000, 0), CHANNEL: (90_000, 0)}


async def test_concurrent_requests_in_two_channels_of_a_category_never_pass_its_pool(
    ledger: Ledger, pools: Pools
) -> None:
    """Two channels of a category, each with a roomy pool of its own, the category's with room for 7 holds of $0.01:
    20 concurrent requests spread over both channels hold exactly 7, all refused ones by the category's pool."""
    await pools.set(GUILD, CATEGORY, 70_000)
    await pools.set(GUILD, CHANNEL, 1_000_000)
    await pools.set(GUILD, ELSEWHERE, 1_000_000)
    members = [MEMBER + n for n in range(10)]

    async def one(number: int) -> bool:
        channel = CHANNEL if number % 2 else ELSEWHERE
        try:
            await ledger.reserve(f"job-{number}", GUILD, members[number % 10], [], 10_000, places=(channel, CATEGORY))
        except BudgetExceededError as exc:
            assert (exc.scope, exc.pool_id) == ("pool", CATEGORY)
            return False
        return True

    held = await asyncio.gather(*(one(number) for number in range(20)))
    assert sum(held) == 7
    statuses = {pool.pool_id: pool.reserved for pool in await pools.statuses(GUILD)}
    assert statuses[CATEGORY] == 70_000
    assert statuses[CHANNEL] + statuses[ELSEWHERE] == 70_000


async def test_settle_and_release_count_against_the_holds_pool_even_after_it_is_removed(
    ledger: Ledger, pools: Pools, db: Database
) -> None:
    """Settle and release rows carry the hold's pool; the pool's totals end with the charge and no holds; the totals
    survive a rebuild by reconcile."""
    await pools.set(GUILD, CHANNEL, 1_000_000)
    await ledger.reserve("job-1", GUILD, MEMBER, [], 100_000, places=(CHANNEL,))
    await ledger.reserve("job-2", GUILD, OTHER, [], 200_000, places=(CHANNEL,))
    await pools.set(GUILD, CHANNEL, None)
    await ledger.settle("job-1", 90_000)
    await ledger.release("job-2")
    assert await _pool_rows(db) == [
        ("hold", CHANNEL),
        ("hold", CHANNEL),
        ("settle", CHANNEL),
        ("release", CHANNEL),
    ]
    await pools.set(GUILD, CHANNEL, 1_000_000)
    (pool,) = await pools.statuses(GUILD)
    assert (pool.spent, pool.reserved, pool.remaining) == (90_000, 0, 910_000)

    await db.run(lambda conn: conn.execute("UPDATE pool_day_totals SET spent = spent + 1"))
    report = await ledger.reconcile()
    assert report.totals_repaired == 1
    (pool,) = await pools.statuses(GUILD)
    assert pool.spent == 90_000


async def test_concurrent_reservations_of_many_members_never_pass_the_pool(ledger: Ledger, pools: Pools) -> None:
    """20 concurrent holds of $0.01 by 10 members against a pool with room for 7: exactly 7 are held."""
    await pools.set(GUILD, CATEGORY, 70_000)
    members = [MEMBER + n for n in range(10)]

    async def one(number: int) -> bool:
        try:
            await ledger.reserve(f"job-{number}", GUILD, members[number % 10], [], 10_000, places=IN_THREAD)
        except BudgetExceededError as exc:
            assert exc.scope == "pool"
            return False
        return True

    held = await asyncio.gather(*(one(number) for number in range(20)))
    assert sum(held) == 7
    (pool,) = await pools.statuses(GUILD)
    assert (pool.reserved, pool.remaining) == (70_000, 0)


async def test_pool_changes_are_audited_in_words(pools: Pools, db: Database) -> None:
    """Set, change, remove: three audit rows; setting the same amount again records nothing."""
    await pools.set(GUILD, CHANNEL, 5_000_000, actor_id=ADMIN)
    await pools.set(GUILD, CHANNEL, 5_000_000, actor_id=ADMIN)
    await pools.set(GUILD, CHANNEL, 2_500_000, actor_id=ADMIN)
    await pools.set(GUILD, CHANNEL, None, actor_id=ADMIN)
    rows = await db.run(
        lambda conn: conn.execute("SELECT actor_id, area, setting, before, after FROM audit_log ORDER BY id").fetchall()
    )
    setting = f"pool <#{CHANNEL}>"
    assert [tuple(row) for row in rows] == [
        (ADMIN, "budget", setting, None, "$5.00 per period"),
        (ADMIN, "budget", setting, "$5.00 per period", "$2.50 per period"),
        (ADMIN, "budget", setting, "$2.50 per period", None),
    ]


async def test_the_80_percent_warning_is_given_once_per_period(ledger: Ledger, budgets: Budgets, clock: Clock) -> None:
    """With $1.00: holds to 70% warn nobody, the one reaching 80% warns, later ones do not; next month it warns again.
    Unlimited members are never warned."""
    await budgets.set_member(GUILD, MEMBER, MemberOverride.of_amount(1_000_000))
    first = await ledger.reserve("job-1", GUILD, MEMBER, [], 700_000)
    second = await ledger.reserve("job-2", GUILD, MEMBER, [], 100_000)
    third = await ledger.reserve("job-3", GUILD, MEMBER, [], 100_000)
    assert first.warning is None and third.warning is None
    assert second.warning is not None and (second.warning.used, second.warning.allowance) == (800_000, 1_000_000)
    await ledger.settle("job-1", 700_000)
    await ledger.release("job-2")
    await ledger.release("job-3")

    clock.advance(days=31)
    again = await ledger.reserve("job-4", GUILD, MEMBER, [], 900_000)
    assert again.warning is not None and again.warning.used == 900_000

    await budgets.set_member(GUILD, OTHER, MemberOverride.unlimited())
    assert (await ledger.reserve("job-5", GUILD, OTHER, [], 900_000)).warning is None
