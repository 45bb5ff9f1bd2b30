"""The jobs table group: jobs round-trip every column, keep their creation order, and link to their parent; job ids
and states."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.storage.database import Database
from bot.storage.jobs import JobQueries, JobRepository
from bot.storage.rows import ACTIVE_STATES, FINISHED_STATES, Job, JobResult, JobState, NewJob, new_job_id
from tests.job_writes import JobWrites

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


async def create(db: Database, job: NewJob, at: datetime = NOW) -> Job:
    """Store `job` at `at` in a transaction of its own (the ledger stores it with its hold)."""
    return await db.run(lambda conn: JobQueries(conn).insert(job, at))


def a_job(**changes: Any) -> NewJob:
    fields: dict[str, Any] = {
        "member_id": 20,
        "guild_id": 10,
        "channel_id": 30,
        "model": ModelName.GPT_IMAGE_1_5,
        "size": Size.LANDSCAPE,
        "quality": Quality.HIGH,
        "background": Background.TRANSPARENT,
        "format": OutputFormat.WEBP,
        "count": 2,
        "prompt": "a lighthouse at dusk, oil on canvas",
        "estimate": 440_330,
    }
    fields.update(changes)
    return NewJob(**fields)


def test_new_job_ids_are_short_hex_and_unique() -> None:
    """Job ids are 12 hex characters (they go into Discord custom_ids) and do not repeat."""
    ids = {new_job_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{12}", job_id) for job_id in ids)


def test_job_states_split_into_active_and_finished() -> None:
    """Every state is either active (resumed on restart) or finished, never both."""
    assert set(JobState) == ACTIVE_STATES | FINISHED_STATES
    assert not ACTIVE_STATES & FINISHED_STATES
    assert JobState.SUCCEEDED.is_finished and not JobState.SUBMITTED.is_finished


async def test_created_job_reads_back_with_every_field(db: Database) -> None:
    """A job stored with references, extras, a parent and an interaction token reads back identically."""
    parent = await create(db, a_job())
    expires = NOW + timedelta(minutes=15)
    new = a_job(
        references=("img-uuid-1", "img-uuid-2"),
        extras={"delivery": {"channel_id": 31}, "seed": 7},
        parent_job_id=parent.id,
        interaction_token="interaction-token-123",
        interaction_expires_at=expires,
        state=JobState.AWAITING_APPROVAL,
    )
    created = await create(db, new)
    assert created == await JobRepository(db).get(new.id)
    assert created.id == new.id and created.state is JobState.AWAITING_APPROVAL
    assert created.references == ("img-uuid-1", "img-uuid-2")
    assert created.extras == {"delivery": {"channel_id": 31}, "seed": 7}
    assert created.parent_job_id == parent.id
    assert (created.interaction_token, created.interaction_expires_at) == ("interaction-token-123", expires)
    assert "interaction-token-123" not in repr(created) + repr(new), "the token must not reach logs through repr"
    assert (created.model, created.size, created.quality) == (ModelName.GPT_IMAGE_1_5, Size.LANDSCAPE, Quality.HIGH)
    assert (created.background, created.format, created.count) == (Background.TRANSPARENT, OutputFormat.WEBP, 2)
    assert created.created_at == NOW and created.cost is None and created.task_uuid is None
    assert created.finished_at is None and created.delivered_at is None


async def test_unknown_job_reads_as_none(db: Database) -> None:
    """Getting a job id that was never stored returns None."""
    assert await JobRepository(db).get("nope") is None


async def test_duplicate_job_id_is_refused(db: Database) -> None:
    """Two jobs cannot share an id."""
    job = a_job()
    await create(db, job)
    with pytest.raises(sqlite3.IntegrityError):
        await create(db, job)


async def test_extras_may_not_shadow_references(db: Database) -> None:
    """The `references` key is reserved for the references field."""
    with pytest.raises(ValueError, match="references"):
        await create(db, a_job(extras={"references": ["x"]}))


async def test_state_changes_record_finish_time_and_honour_expected_states(db: Database) -> None:
    """update_state moves the job, records finished_at for end states, and refuses unexpected current states."""
    job = await create(db, a_job())

    async def update(job_id: str, state: JobState, at: datetime = NOW, **changes: Any) -> bool:
        return await db.run(lambda conn: JobQueries(conn).update_state(job_id, state, at, **changes))

    assert await update(job.id, JobState.SUBMITTED, expected={JobState.QUEUED})
    assert not await update(job.id, JobState.CANCELLED, expected={JobState.QUEUED})
    later = NOW + timedelta(seconds=40)
    assert await update(job.id, JobState.FAILED, later, error="content policy", expected=ACTIVE_STATES)
    stored = await JobRepository(db).get(job.id)
    assert stored is not None
    assert (stored.state, stored.error, stored.finished_at) == (JobState.FAILED, "content policy", later)
    assert not await update("missing", JobState.FAILED)


async def test_a_cancel_without_results_and_a_runs_results_exclude_each_other(db: Database) -> None:
    """Another process's cancel holds only if no image is stored; a run's results are refused once it is cancelled."""
    stored, cancelled = await create(db, a_job()), await create(db, a_job())
    image = [JobResult(0, "uuid-0", "https://im.example/0.png", 1_000)]
    repository = JobRepository(db)
    for job in (stored, cancelled):
        await db.run(lambda conn, job=job: JobQueries(conn).update_state(job.id, JobState.SUBMITTED, NOW))
    assert await repository.save_results(stored.id, image, 1_000) is True
    cancel = {"error": "Cancelled.", "expected": ACTIVE_STATES, "without_results": True}
    assert await repository.finish(stored.id, JobState.CANCELLED, **cancel) is False, "its images are stored"
    assert await repository.finish(cancelled.id, JobState.CANCELLED, **cancel) is True
    assert await repository.save_results(cancelled.id, image, 1_000) is False, "cancelled: nothing stored"
    assert await repository.results(cancelled.id) == []
    current = await repository.get(stored.id)
    assert current is not None and current.state is JobState.SUBMITTED


async def test_task_uuid_cost_and_interaction_are_recorded(db: Database) -> None:
    """The task UUID, the cost and the interaction token each land on the job."""
    job = await create(db, a_job())
    task_uuid = "0b0e6f0e-0000-4000-8000-000000000001"
    assert await db.run(lambda conn: JobWrites(conn).set_task_uuid(job.id, task_uuid, NOW))
    assert await db.run(lambda conn: JobWrites(conn).set_cost(job.id, 199_610, NOW))
    assert await db.run(lambda conn: JobWrites(conn).set_interaction(job.id, None, None, NOW))
    stored = await JobRepository(db).get(job.id)
    assert stored is not None
    assert (stored.task_uuid, stored.cost, stored.interaction_token) == (task_uuid, 199_610, None)


async def test_task_uuid_is_unique_across_jobs(db: Database) -> None:
    """Two jobs can never point at the same Runware task (that would deliver or charge one result twice)."""
    first, second = await create(db, a_job()), await create(db, a_job())
    await db.run(lambda conn: JobWrites(conn).set_task_uuid(first.id, "same", NOW))
    with pytest.raises(sqlite3.IntegrityError):
        await db.run(lambda conn: JobWrites(conn).set_task_uuid(second.id, "same", NOW))


async def test_delivery_is_recorded_only_once(db: Database) -> None:
    """mark_delivered is true the first time only, so a result is posted once."""
    job = await create(db, a_job())
    assert await db.run(lambda conn: JobWrites(conn).mark_delivered(job.id, 123456789, NOW))
    assert not await db.run(lambda conn: JobWrites(conn).mark_delivered(job.id, 987654321, NOW))
    stored = await JobRepository(db).get(job.id)
    assert stored is not None and stored.result_message_id == 123456789 and stored.delivered_at == NOW


async def test_unfinished_and_recent_listings(db: Database) -> None:
    """list_unfinished returns active jobs oldest first; list_recent_for_member the member's newest first."""
    jobs = JobRepository(db)
    ids = []
    for minute, state in enumerate(
        [JobState.QUEUED, JobState.SUCCEEDED, JobState.SUBMITTED, JobState.AWAITING_APPROVAL]
    ):
        ids.append((await create(db, a_job(state=state), NOW + timedelta(minutes=minute))).id)
    await create(db, a_job(member_id=99), NOW + timedelta(minutes=10))
    await create(db, a_job(guild_id=None), NOW + timedelta(minutes=10))
    assert [job.id for job in await jobs.list_unfinished()][:3] == [ids[0], ids[2], ids[3]]
    recent = await jobs.list_recent_for_member(10, 20, 3)
    assert [job.id for job in recent] == [ids[3], ids[2], ids[1]]
    assert len(await jobs.list_recent_for_member(None, 20, 10)) == 1


async def test_jobs_created_in_the_same_millisecond_keep_their_creation_order(db: Database) -> None:
    """Equal created_at (a burst of requests) falls back to insertion order, never to the random job ids."""
    jobs = JobRepository(db)
    # Ids that sort against creation order, the worst case of what random ids do half of the time.
    ids = [(await create(db, a_job(id=f"job-{99 - index:02d}"))).id for index in range(12)]
    assert sorted(ids) != ids
    assert [job.id for job in await jobs.list_unfinished()] == ids
    assert [job.id for job in await jobs.list_recent_for_member(10, 20, 12)] == ids[::-1]
    assert [job.id for job in await jobs.list_active_for_member(10, 20)] == ids


async def test_deleting_a_parent_clears_the_childs_link(db: Database) -> None:
    """The parent link is a foreign key: deleting the parent leaves the child with no parent, not a dangling id."""
    parent = await create(db, a_job())
    child = await create(db, a_job(parent_job_id=parent.id))
    assert await db.run(lambda conn: JobWrites(conn).delete(parent.id))
    stored = await JobRepository(db).get(child.id)
    assert stored is not None and stored.parent_job_id is None
    with pytest.raises(sqlite3.IntegrityError):
        await create(db, a_job(parent_job_id="no-such-job"))
