"""The generation service end to end through its facade: one request delivered and charged; a member's queue."""

from __future__ import annotations

import asyncio

from bot.images import decode_image
from bot.storage.rows import EntryKind, JobState
from tests.jobs.conftest import (
    ALICE,
    BOB,
    GUILD,
    MINI_MEDIUM_SQUARE,
    Harness,
    HarnessFactory,
    make_config,
    make_request,
)


async def test_a_request_is_generated_delivered_once_and_charged_what_runware_reported(harness: Harness) -> None:
    """Admit -> one task on Runware -> delivered once -> settled to the reported cost, state succeeded."""
    admission = await harness.service.admit(make_request(count=2))
    assert admission.job_id is not None and not admission.duplicate and not admission.needs_confirmation
    assert admission.estimate == 2 * MINI_MEDIUM_SQUARE
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    job = await harness.job(admission.job_id)
    assert job.state is JobState.SUCCEEDED and job.delivered_at is not None
    assert len(harness.delivery.delivered) == 1
    delivered = harness.delivery.delivered[0]
    assert job.result_message_id == delivered.message_id
    assert len(delivered.images) == 2 and all(decode_image(image.data).format == "PNG" for image in delivered.images)
    summary = delivered.summary
    assert (summary.cost, summary.cost_reported, summary.requester_id) == (2 * MINI_MEDIUM_SQUARE, True, ALICE)
    assert summary.remaining == 1_000_000 - 2 * MINI_MEDIUM_SQUARE
    assert job.task_uuid is not None and harness.fake.submissions_of(job.task_uuid) == 1
    entries = await harness.entries(job.id)
    assert entries[EntryKind.SETTLE].amount == harness.fake.total_cost_micros == job.cost
    assert set(entries) == {EntryKind.HOLD, EntryKind.SETTLE}
    results = await harness.service.job_results(job.id)
    assert [result.index for result in results] == [0, 1]
    assert await harness.service.job_for_message(delivered.message_id) == job


async def test_queue_shows_the_members_jobs_with_position_and_elapsed_time(harnesses: HarnessFactory) -> None:
    """`queue_for_member`: running jobs without a position, waiting ones in start order."""
    harness = await harnesses.open(make_config(global_concurrency=1, per_member_concurrency=1))
    harness.fake.latency = 0.3
    ids = []
    for prompt in ("one", "two", "three"):
        admission = await harness.service.admit(make_request(prompt))
        ids.append(admission.job_id)
    await harness.service.admit(make_request("bob's", member_id=BOB))
    entries = await harness.service.queue_for_member(GUILD, ALICE)
    assert [entry.job.id for entry in entries] == ids
    assert [entry.position for entry in entries] == [None, 1, 3]  # Bob's job is second in line
    assert all(entry.elapsed_seconds >= 0 for entry in entries)
    for entry in entries[1:]:
        await harness.service.cancel(entry.job.id, ALICE)
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert await harness.service.queue_for_member(GUILD, ALICE) == []
