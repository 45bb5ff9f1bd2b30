"""The shared job queue's SQL on both engines: claims under a lease, heartbeats, expiry, give-back, the limits counted
in the database over every owner, and fairness by the member's last start."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.queue import CLAIM_LOCK, Claimed, QueueLimits, QueueQueries, QueueView
from bot.storage.rows import JobState
from tests.job_writes import small_job
from tests.postgres_server import PostgresServer

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
T0 = 1_000_000_000_000
LEASE = 30_000
ROOMY = QueueLimits(global_limit=100, per_member=100)


async def queue(db: Database, member: int, *, provider: str = "runware", offset: int = 0, **changes: Any) -> str:
    """Store a queued job of `member`, `offset` seconds after NOW (creation order); return its id."""
    job = small_job(member_id=member, guild_id=10, channel_id=30, provider=provider, **changes)
    at = NOW + timedelta(seconds=offset)
    await db.run(lambda conn: JobQueries(conn).insert(job, at))
    return job.id


async def claim(db: Database, owner: str, now: int, limits: QueueLimits = ROOMY) -> list[Claimed]:
    claimed = await db.run(lambda conn: QueueQueries(conn).claim(owner, now, LEASE, limits))
    assert claimed is not None, "nobody else is claiming"
    return claimed


async def ids(db: Database, owner: str, now: int, limits: QueueLimits = ROOMY) -> list[str]:
    return [c.job_id for c in await claim(db, owner, now, limits)]


async def view(db: Database, now: int) -> QueueView:
    return await db.run(lambda conn: QueueQueries(conn).view(now), write=False)


async def test_a_claim_holds_a_lease_that_no_other_owner_takes_until_it_expires(db: Database) -> None:
    """A claimed job is leased to its owner; another owner gets it only once the lease has run out."""
    job = await queue(db, 1)
    assert await ids(db, "a", T0) == [job]
    owner, until, slot = await db.run(lambda conn: QueueQueries(conn).lease_of(job), write=False)
    assert (owner, until, slot) == ("a", T0 + LEASE, True)
    assert await ids(db, "a", T0 + 1) == [], "a leased job is not claimed twice, even by its owner"
    assert await ids(db, "b", T0 + LEASE) == [], "the lease still holds at its last millisecond"
    assert await ids(db, "b", T0 + LEASE + 1) == [job], "an expired lease is taken over"
    owner, _, _ = await db.run(lambda conn: QueueQueries(conn).lease_of(job), write=False)
    assert owner == "b"


async def test_the_heartbeat_keeps_the_lease_and_reports_what_the_owner_still_holds(db: Database) -> None:
    """`renew` moves the lease on (so nobody takes the job) and names the owner's jobs; a taken job drops out."""
    first, second = await queue(db, 1), await queue(db, 2, offset=1)
    assert sorted(await ids(db, "a", T0)) == sorted([first, second])
    held = await db.run(lambda conn: QueueQueries(conn).renew("a", T0 + LEASE - 10, LEASE))
    assert held == {first: "queued", second: "queued"}
    assert await ids(db, "b", T0 + LEASE + 1) == [], "renewed: not expired"
    await db.run(lambda conn: JobQueries(conn).update_state(second, JobState.CANCELLED, NOW))
    # The owner stalls past its renewed lease: another owner takes the unfinished job; the owner hears it lost it.
    assert await ids(db, "b", T0 + 2 * LEASE) == [first]
    held = await db.run(lambda conn: QueueQueries(conn).renew("a", T0 + 2 * LEASE, LEASE))
    assert held == {second: "cancelled"}


async def test_the_heartbeat_renews_only_the_jobs_the_owner_runs(db: Database) -> None:
    """`renew(..., running)` moves on only the leases of the runs named; a lease the owner no longer runs runs out."""
    first, second = await queue(db, 1), await queue(db, 2, offset=1)
    assert sorted(await ids(db, "a", T0)) == sorted([first, second])
    held = await db.run(lambda conn: QueueQueries(conn).renew("a", T0 + LEASE - 10, LEASE, {first}))
    assert held == {first: "queued", second: "queued"}, "both are still the owner's"
    _, until, _ = await db.run(lambda conn: QueueQueries(conn).lease_of(first), write=False)
    assert until == T0 + 2 * LEASE - 10
    assert await ids(db, "b", T0 + LEASE + 1) == [second], "the lease not renewed ran out"
    await db.run(lambda conn: QueueQueries(conn).renew("a", T0 + LEASE + 2, LEASE, set()))
    _, until, _ = await db.run(lambda conn: QueueQueries(conn).lease_of(first), write=False)
    assert until == T0 + 2 * LEASE - 10, "nothing runs: nothing is renewed"


async def test_the_database_clock_judges_leases_when_no_time_is_given(db: Database) -> None:
    """Production passes no time: the lease is the database's clock plus the lease, the same for every process."""
    job = await queue(db, 1)
    before = int(time.time() * 1000)
    claimed = await db.run(lambda conn: QueueQueries(conn).claim("a", None, LEASE, ROOMY))
    after = int(time.time() * 1000)
    assert [c.job_id for c in claimed or []] == [job]
    _, until, _ = await db.run(lambda conn: QueueQueries(conn).lease_of(job), write=False)
    assert until is not None and before + LEASE - 50 <= until <= after + LEASE + 50
    assert await db.run(lambda conn: QueueQueries(conn).claim("b", None, LEASE, ROOMY)) == [], "the lease is live"
    assert (await db.run(lambda conn: QueueQueries(conn).view(), write=False)).running == 1


async def test_giving_back_frees_the_job_at_once_and_releasing_the_slot_keeps_the_lease(db: Database) -> None:
    """`give_back` makes a job claimable now; `release_slot` frees only the slot, the job stays the owner's."""
    one_slot = QueueLimits(global_limit=1, per_member=1)
    first, second = await queue(db, 1), await queue(db, 2, offset=1)
    assert await ids(db, "a", T0, one_slot) == [first]
    assert await ids(db, "b", T0, one_slot) == [], "the one slot is taken"
    assert await db.run(lambda conn: QueueQueries(conn).release_slot(first, "b")) is False, "only the owner frees it"
    assert await db.run(lambda conn: QueueQueries(conn).release_slot(first, "a")) is True
    assert await ids(db, "b", T0, one_slot) == [second], "the freed slot goes to the next job, not the leased one"
    assert await db.run(lambda conn: QueueQueries(conn).give_back(second, "b")) is True
    assert (await view(db, T0)).waiting == [second]
    assert await db.run(lambda conn: QueueQueries(conn).give_back_all("a")) == 1
    assert await ids(db, "c", T0, QueueLimits(global_limit=5, per_member=5)) == [first, second]


async def test_the_limits_count_every_owners_slots(db: Database) -> None:
    """The global, per-member and per-lane limits count the slots held by every owner, not the claimer's own."""
    for n in range(3):
        await queue(db, 1, offset=n)
        await queue(db, 2, offset=10 + n, provider="runbase")
        await queue(db, 3, offset=20 + n)
    limits = QueueLimits(global_limit=5, per_member=2, lanes={"runbase": 1})
    first = await claim(db, "a", T0, QueueLimits(global_limit=2, per_member=2, lanes={"runbase": 1}))
    second = await claim(db, "b", T0, limits)
    everything = first + second
    assert len(everything) == 5, "the global limit over both owners"
    per_member = {m: sum(1 for c in everything if c.member_id == m) for m in (1, 2, 3)}
    assert max(per_member.values()) <= 2
    assert sum(1 for c in everything if c.provider == "runbase") == 1, "the Runbase lane holds one"
    assert await claim(db, "c", T0, limits) == [], "nothing more until a slot frees"
    assert (await view(db, T0)).running == 5
    # A dead owner's slots stop counting when its leases run out.
    assert len(await claim(db, "c", T0 + LEASE + 1, limits)) == 5


async def test_the_member_whose_last_start_is_oldest_goes_next(db: Database) -> None:
    """One member's batch of 20 does not delay another member's single request beyond one slot's wait."""
    batch = [await queue(db, 1, offset=n) for n in range(20)]
    single = await queue(db, 2, offset=100)
    one = QueueLimits(global_limit=1, per_member=1)
    started: list[str] = []
    now = T0
    for _ in range(4):
        (job,) = await ids(db, "a", now, one)
        started.append(job)
        await db.run(lambda conn, job=job: QueueQueries(conn).give_back(job, "a"))
        await db.run(lambda conn, job=job: JobQueries(conn).update_state(job, JobState.SUCCEEDED, NOW))
        now += 1
    assert started == [batch[0], single, batch[1], batch[2]]


async def test_the_view_orders_waiting_jobs_one_per_member_per_round_and_resumed_jobs_first(db: Database) -> None:
    """Positions follow the claims: members by last start (ties by their oldest job), one job each per round."""
    a1, a2 = await queue(db, 1), await queue(db, 1, offset=1)
    b1 = await queue(db, 2, offset=2)
    resumed = await queue(db, 2, offset=3, state=JobState.SUBMITTED)
    assert (await view(db, T0)).waiting == [resumed, a1, b1, a2]


async def test_a_claim_never_waits_for_another_process_claiming_on_postgres(postgres_server: PostgresServer) -> None:
    """While another connection holds the claim lock, a claim returns None at once (it must not wait inside its batch:
    that could deadlock with the other batch's row locks); once the lock is free it claims."""
    if postgres_server.problem is not None:
        pytest.fail(f"PostgreSQL could not be started for the tests: {postgres_server.problem}", pytrace=False)
    name = postgres_server.create_database()
    try:
        async with await Database.open(postgres_server.url(name)) as db:
            job = await queue(db, 1)
            with psycopg.connect(postgres_server.url(name)) as other:
                other.execute("SELECT pg_advisory_xact_lock(%s)", (CLAIM_LOCK,))  # held until this transaction ends
                busy = await asyncio.wait_for(db.run(lambda conn: QueueQueries(conn).claim("a", T0, LEASE, ROOMY)), 2)
                assert busy is None
                other.rollback()
            assert await ids(db, "a", T0) == [job]
    finally:
        postgres_server.drop_database(name)


async def test_a_job_given_back_with_a_back_off_waits_before_it_is_claimed_again(db: Database) -> None:
    """A run that ended without finishing its job gives it back with a back-off (database clock): no claim loop."""
    job = await queue(db, 1)
    assert [c.job_id for c in await db.run(lambda conn: QueueQueries(conn).claim("a", None, LEASE, ROOMY)) or []] == [
        job
    ]
    assert await db.run(lambda conn: QueueQueries(conn).give_back(job, "a", 60_000)) is True
    owner, until, slot = await db.run(lambda conn: QueueQueries(conn).lease_of(job), write=False)
    assert owner is None and until is not None and not slot
    assert await db.run(lambda conn: QueueQueries(conn).claim("b", None, LEASE, ROOMY)) == [], "backing off"
    assert await db.run(lambda conn: QueueQueries(conn).claim("b", until + 1, LEASE, ROOMY)) != [], "after it"
