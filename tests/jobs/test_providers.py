"""Providers behind one interface: a job stores the provider it runs on, and the worker runs it on that one only."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.catalog import ProviderName
from bot.jobs.worker import GENERIC_FAILURE
from bot.storage import migrate
from bot.storage.jobs import JobRepository
from bot.storage.rows import EntryKind, JobState
from fakes.runware import Fault
from tests.jobs.conftest import Harness, HarnessFactory, make_request


async def test_a_job_is_stored_with_its_provider_and_runs_on_it(harness: Harness) -> None:
    """Admission stores `runware` on the job (the only provider here); the worker sends the task there, once."""
    admission = await harness.service.admit(make_request())
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    job = await harness.job(admission.job_id)
    assert job.provider == ProviderName.RUNWARE.value
    assert job.state is JobState.SUCCEEDED
    assert len(harness.fake.tasks_submitted()) == 1
    assert list(harness.service.providers) == ["runware"]


async def test_a_job_on_a_provider_this_process_lacks_fails_without_reaching_another(harnesses: HarnessFactory) -> None:
    """A queued job whose provider is not configured is not quietly run on Runware: it fails, and is not charged."""
    first = await harnesses.open(start=False)
    admission = await first.service.admit(make_request())
    job_id = admission.job_id
    assert job_id is not None
    await first.db.run(lambda conn: conn.execute("UPDATE jobs SET provider = 'runbase' WHERE id = ?", (job_id,)))
    await harnesses.crash(first)

    second = await harnesses.open()
    await asyncio.wait_for(second.service.wait_idle(), 10)

    job = await second.job(job_id)
    assert job.state is JobState.FAILED
    assert job.error == GENERIC_FAILURE
    assert second.fake.tasks_submitted() == []
    assert set(await second.entries(job_id)) == {EntryKind.HOLD, EntryKind.RELEASE}
    assert await JobRepository(second.db).results(job_id) == []


def test_jobs_stored_before_schema_10_ran_on_runware(tmp_path: Path) -> None:
    """Migration 0010 gives every existing job the provider `runware` (the only one there was)."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate.apply_migrations(conn, 9)
        conn.execute(
            "INSERT INTO jobs (id, state, member_id, model, size, quality, background, format, count, prompt,"
            " estimate, created_at, updated_at) VALUES ('old', 'succeeded', 1, 'gpt-image-1', '1024x1024', 'low',"
            " 'auto', 'png', 1, 'a fox', 11000, 0, 0)"
        )
        assert migrate.apply_migrations(conn) == migrate.latest_version()
        assert conn.execute("SELECT provider FROM jobs WHERE id = 'old'").fetchone() == ("runware",)
    finally:
        conn.close()


async def test_the_first_post_of_a_task_costs_no_write_of_its_own(harnesses: HarnessFactory) -> None:
    """Storing the task UUID is the write before the first POST (a restart counts from its `updated_at`); a re-POST
    after a 429 records its own time before it is sent."""
    harness = await harnesses.open()
    first = await harness.service.admit(make_request("a quiet fox"))
    assert first.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert await JobRepository(harness.db).last_post_at(first.job_id) is None

    harness.fake.fail_next(Fault.RATE_LIMITED, task_type="imageInference")
    second = await harness.service.admit(make_request("a fox refused once"))
    assert second.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 20)
    job = await harness.job(second.job_id)
    assert job.state is JobState.SUCCEEDED
    resent = await JobRepository(harness.db).last_post_at(second.job_id)
    assert resent is not None and resent >= job.created_at
    assert harness.fake.submissions_of(job.task_uuid or "") == 2
