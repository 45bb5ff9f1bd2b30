"""The `meta` key/value table, through the Discord client's `MetaRepository`, and the claims kept in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.meta import MetaQueries, MetaRepository
from bot.storage.moderation import POST_CLAIM_SECONDS, ModerationRepository, post_claim_key
from tests.storage.test_jobs import a_job


async def test_meta_stores_replaces_and_deletes_values(db: Database) -> None:
    """Meta is a plain key/value table."""
    meta = MetaRepository(db)
    assert await meta.get("command_hash") is None
    await meta.set("command_hash", "one")
    await meta.set("command_hash", "two")
    assert await meta.get("command_hash") == "two"
    assert await meta.delete("command_hash")
    assert not await meta.delete("command_hash")


async def test_a_claim_is_won_once_until_it_expires_or_is_deleted(db: Database) -> None:
    """`MetaQueries.claim`: the first claim wins; another before its expiry loses (the value is unchanged); at or
    after the expiry, or once deleted, the next claim wins."""

    assert await db.run(lambda conn: MetaQueries(conn).claim("job:1", 1_000, 5_000))
    assert not await db.run(lambda conn: MetaQueries(conn).claim("job:1", 4_999, 9_000))
    assert await MetaRepository(db).get("job:1") == "5000"
    assert await db.run(lambda conn: MetaQueries(conn).claim("job:1", 5_000, 1_700_000_000_000))
    assert await MetaRepository(db).get("job:1") == "1700000000000"
    assert await MetaRepository(db).delete("job:1")
    assert await db.run(lambda conn: MetaQueries(conn).claim("job:1", 0, 1))


async def test_claiming_a_hold_post_requires_an_unposted_undecided_hold_and_no_live_claim(db: Database) -> None:
    """`ModerationRepository.claim_post`: no hold, no claim; an open hold is claimed once (until the claim expires);
    recording the message ends the claim and a later claim loses (already posted); releasing lets the next one win."""
    now = [datetime(2025, 3, 1, 9, 30, tzinfo=UTC)]
    holds = ModerationRepository(db, clock=lambda: now[0])
    job = await db.run(lambda conn: JobQueries(conn).insert(a_job(), now[0]))
    assert not await holds.claim_post(job.id)
    await holds.add_hold(job.id, 10, "safety")

    assert await holds.claim_post(job.id)
    assert not await holds.claim_post(job.id)
    await holds.release_post(job.id)
    assert await holds.claim_post(job.id)
    now[0] += timedelta(seconds=POST_CLAIM_SECONDS)
    assert await holds.claim_post(job.id)  # the first poster died: its claim ran out
    await holds.set_hold_message(job.id, 40, 50)
    assert await MetaRepository(db).get(post_claim_key(job.id)) is None
    assert not await holds.claim_post(job.id)
    assert await MetaRepository(db).get(post_claim_key(job.id)) is None
