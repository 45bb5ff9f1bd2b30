"""Several bot processes on one PostgreSQL database: one job queue (limits across processes, a killed process's jobs
taken over once its leases run out, delivered once and charged once), a cancel that reaches the process running the
job, and settings caches dropped when another process changes them.

Each "process" has its own `Database` handle, NOTIFY listener, shared scheduler and job service
(`tests.jobs.shared_process`); the killed one is a real subprocess.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from bot.catalog import OutputFormat
from bot.jobs.errors import JobNotCancellableError
from bot.moderation.errors import NotAllowedHereError
from bot.storage.ledger import LedgerQueries
from bot.storage.queue import QueueQueries
from bot.storage.rows import EntryKind, JobState
from fakes.runware import FakeRunware
from tests.jobs.conftest import CHANNEL, GUILD, MINI_MEDIUM_SQUARE, eventually, make_config, make_request
from tests.jobs.shared_process import Process, open_process

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def processes(pg_url: str, fake_runware: FakeRunware, runware_key: str) -> AsyncIterator[list[Process]]:
    """The processes a test opens (`open_process`), all stopped at its end."""
    opened: list[Process] = []
    yield opened
    for process in opened:
        await process.close()


async def charges(process: Process, job_id: str) -> list[int]:
    rows = await process.db.run(lambda conn: LedgerQueries(conn).entries_for_job(job_id), write=False)
    return [row.amount for row in rows if row.kind is EntryKind.SETTLE]


async def test_two_processes_share_one_queue_and_its_global_limit(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """Jobs admitted in a process that runs none are claimed by the others (woken by NOTIFY); never more than the
    global limit run at once over all of them; each job is delivered once and charged once."""
    config = make_config(global_concurrency=2, per_member_concurrency=1)
    admitter = await open_process(pg_url, session, fake_runware.url, runware_key, config, start=False)
    # Long leases: the heartbeat's fallback claim comes every 10 s, so only the NOTIFYs can start these jobs in time.
    first = await open_process(pg_url, session, fake_runware.url, runware_key, config, lease_seconds=30)
    second = await open_process(pg_url, session, fake_runware.url, runware_key, config, lease_seconds=30)
    processes.extend([admitter, first, second])
    fake_runware.latency = 0.3
    job_ids = []
    for member in range(1, 7):
        admission = await admitter.service.admit(make_request(member_id=member, prompt=f"fox {member}"))
        assert admission.job_id is not None
        job_ids.append(admission.job_id)
    await eventually(lambda: len(first.delivery.delivered) + len(second.delivery.delivered) == 6, within=8)
    delivered = [d.job.id for d in first.delivery.delivered + second.delivery.delivered]
    assert sorted(delivered) == sorted(job_ids), "each job delivered once"
    assert admitter.delivery.delivered == []
    assert fake_runware.peak_running <= 2, "the global limit holds across the processes"
    assert len(fake_runware.tasks_submitted()) == 6
    for job_id in job_ids:  # the charge is recorded just after the post
        await eventually(lambda job_id=job_id: charges(first, job_id))
        assert await charges(first, job_id) == [MINI_MEDIUM_SQUARE]


async def test_a_killed_process_jobs_are_taken_over_once_its_leases_expire_and_delivered_and_charged_once(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """SIGKILL mid-task: a live lease is never taken; once it runs out another process polls the stored task UUIDs
    (no second submission), delivers each job once and charges it once."""
    fake_runware.latency = 2.5
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.jobs.shared_process",
        pg_url,
        fake_runware.url,
        runware_key,
        "2",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(child.stdout.readline(), 30)).decode()
        assert line.startswith("submitted"), line
        job_ids = line.split()[1:]
        survivor = await open_process(pg_url, session, fake_runware.url, runware_key)
        processes.append(survivor)
        await asyncio.sleep(1.5)  # longer than a lease: the child's heartbeat keeps its jobs
        for job_id in job_ids:
            owner, _, _ = await survivor.db.run(lambda conn, j=job_id: QueueQueries(conn).lease_of(j), write=False)
            assert owner is not None and owner != survivor.scheduler.owner, "a live lease is not taken over"
        assert survivor.delivery.delivered == []
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    await eventually(lambda: len(survivor.delivery.delivered) == 2, within=15)
    assert sorted(d.job.id for d in survivor.delivery.delivered) == sorted(job_ids)
    assert len(fake_runware.tasks_submitted()) == 2, "no task submitted twice"
    for job_id in job_ids:
        await eventually(lambda job_id=job_id: charges(survivor, job_id))  # recorded just after the post
        job = await survivor.service.get_job(job_id)
        assert job is not None and job.state is JobState.SUCCEEDED
        assert job.task_uuid is not None and fake_runware.submissions_of(job.task_uuid) == 1
        assert await charges(survivor, job_id) == [MINI_MEDIUM_SQUARE], "charged once"
    assert len(fake_runware.paid_tasks) == 2, "Runware billed each task once"


async def test_a_cancel_handled_in_one_process_stops_the_run_in_the_other(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """The Cancel button reaches a process that does not run the job: the state changes in the database, the hold is
    released, and the process running it stops its run at once (NOTIFY atelier_cancel)."""
    fake_runware.latency = 3.0
    # Long leases: the heartbeat (every 10 s) cannot be what stops the run within the test; the NOTIFY must.
    runner = await open_process(pg_url, session, fake_runware.url, runware_key, lease_seconds=30)
    button = await open_process(pg_url, session, fake_runware.url, runware_key, start=False)  # claims nothing
    processes.extend([runner, button])
    admission = await runner.service.admit(make_request())
    job_id = admission.job_id
    assert job_id is not None
    await eventually(lambda: len(fake_runware.tasks_submitted()) == 1)
    owner, _, _ = await runner.db.run(lambda conn: QueueQueries(conn).lease_of(job_id), write=False)
    assert owner == runner.scheduler.owner
    result = await button.service.cancel(job_id, make_request().member_id)
    assert result.released == admission.estimate
    await asyncio.wait_for(runner.service.wait_idle(), 1.5)  # well before Runware finishes (3 s)
    await asyncio.sleep(3.0)
    assert runner.delivery.delivered == [] and button.delivery.delivered == []
    job = await runner.service.get_job(job_id)
    assert job is not None and job.state is JobState.CANCELLED
    assert await charges(runner, job_id) == []


async def test_a_settings_change_in_one_process_drops_the_cached_row_in_the_other(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """Server options, channel rules and moderation settings cached in one process follow a change made in another."""
    reader = await open_process(pg_url, session, fake_runware.url, runware_key, start=False)
    writer = await open_process(pg_url, session, fake_runware.url, runware_key, start=False)
    processes.extend([reader, writer])
    assert await reader.options.stored(GUILD) is None  # cached now
    await reader.policy.check(guild_id=GUILD, member_id=1, role_ids=(), places=(CHANNEL,), prompt="a fox")
    assert (await reader.moderation.settings(GUILD)).modlog_channel_id is None

    await writer.options.change_defaults(GUILD, actor_id=1, format=OutputFormat.WEBP)
    await writer.policy.set_channel(GUILD, CHANNEL, False, actor_id=1)
    await writer.moderation.set_modlog(GUILD, 1, 777)

    async def follows() -> bool:
        stored = await reader.options.stored(GUILD)
        return stored is not None and stored.defaults.format is OutputFormat.WEBP

    await eventually(follows, within=5)
    await eventually(lambda: _refused(reader), within=5)

    async def modlog() -> bool:
        return (await reader.moderation.settings(GUILD)).modlog_channel_id == 777

    await eventually(modlog, within=5)


async def _refused(process: Process) -> bool:
    try:
        await process.policy.check(guild_id=GUILD, member_id=1, role_ids=(), places=(CHANNEL,), prompt="a fox")
    except NotAllowedHereError:
        return True
    return False


async def test_one_members_batch_in_one_process_does_not_hold_back_anothers_single_request_in_another(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """Fairness over processes: with one slot in all, a request admitted while a batch of 20 runs starts next."""
    config = make_config(global_concurrency=1, per_member_concurrency=1)
    first = await open_process(pg_url, session, fake_runware.url, runware_key, config)
    second = await open_process(pg_url, session, fake_runware.url, runware_key, config)
    processes.extend([first, second])
    fake_runware.latency = 0.15
    for n in range(20):
        await first.service.admit(make_request(member_id=1, prompt=f"batch {n}"))
    await eventually(lambda: len(fake_runware.tasks_submitted()) >= 3, within=10)
    started_before = len(fake_runware.tasks_submitted())
    await second.service.admit(make_request(member_id=2, prompt="single"))
    await eventually(lambda: any(t["positivePrompt"] == "single" for t in fake_runware.tasks_submitted()), within=10)
    prompts = [t["positivePrompt"] for t in fake_runware.tasks_submitted()]
    # The batch's job that held the slot finishes first (one slot's wait); a claim already under way may start one
    # more batch job, never several.
    assert prompts.index("single") <= started_before + 1, prompts
    assert fake_runware.peak_running <= 1


async def test_a_graceful_stop_gives_its_leases_back_at_once(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """A process stopped normally hands its running job over at once (not after its 30 s lease), and the other
    process continues it by its stored task UUID: one submission, one delivery, one charge."""
    fake_runware.latency = 1.5
    leaving = await open_process(pg_url, session, fake_runware.url, runware_key, lease_seconds=30)
    staying = await open_process(pg_url, session, fake_runware.url, runware_key, lease_seconds=30, start=False)
    processes.append(staying)
    admission = await leaving.service.admit(make_request())
    job_id = admission.job_id
    assert job_id is not None
    await eventually(lambda: len(fake_runware.tasks_submitted()) == 1)
    await staying.service.resume()  # starts claiming: the job is leased to `leaving`, so not taken
    # Nothing waits and nothing runs here: the job it found unfinished runs elsewhere (not shown as waiting).
    await asyncio.wait_for(staying.service.wait_idle(), 2)
    assert staying.scheduler.positions() == {}
    owner, _, _ = await staying.db.run(lambda conn: QueueQueries(conn).lease_of(job_id), write=False)
    assert owner == leaving.scheduler.owner
    await leaving.close()
    await eventually(lambda: len(staying.delivery.delivered) == 1, within=5)  # far less than the lease
    assert leaving.delivery.delivered == []
    await eventually(lambda: charges(staying, job_id))  # recorded just after the post
    job = await staying.service.get_job(job_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.task_uuid is not None
    assert fake_runware.submissions_of(job.task_uuid) == 1
    assert await charges(staying, job_id) == [MINI_MEDIUM_SQUARE]


async def test_a_job_whose_images_are_made_in_another_process_can_no_longer_be_cancelled(
    pg_url: str, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str, processes: list[Process]
) -> None:
    """Its images are stored and being posted by the process running it: a Cancel handled elsewhere is refused, and
    the job is posted and charged as usual."""
    runner = await open_process(pg_url, session, fake_runware.url, runware_key)
    button = await open_process(pg_url, session, fake_runware.url, runware_key, start=False)
    processes.extend([runner, button])
    runner.delivery.gate = asyncio.Event()  # the post waits: images made and stored, not posted yet
    admission = await runner.service.admit(make_request())
    job_id = admission.job_id
    assert job_id is not None
    await asyncio.wait_for(runner.delivery.entered.wait(), 10)
    with pytest.raises(JobNotCancellableError):
        await button.service.cancel(job_id, make_request().member_id)
    runner.delivery.gate.set()
    await eventually(lambda: len(runner.delivery.delivered) == 1)
    await eventually(lambda: charges(runner, job_id))
    assert await charges(runner, job_id) == [MINI_MEDIUM_SQUARE]
