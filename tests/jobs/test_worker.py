"""The worker against the fake Runware: delivery, money, failures, cancellation, fitting, delivery concurrency."""

from __future__ import annotations

import asyncio

import pytest

from bot.billing.errors import BudgetExceededError
from bot.catalog import Background
from bot.errors import PermissionDeniedError
from bot.images import decode_image
from bot.jobs.delivery import DeliveryError
from bot.jobs.errors import JobNotCancellableError
from bot.jobs.requests import DeliveryTarget
from bot.storage.jobs import JobRepository
from bot.storage.rows import EntryKind, JobState
from fakes.runware import Fault
from tests.jobs.conftest import (
    ALICE,
    BOB,
    CHANNEL,
    GUILD,
    MINI_MEDIUM_SQUARE,
    Harness,
    HarnessFactory,
    eventually,
    make_config,
    make_request,
)


async def test_ten_concurrent_requests_with_room_for_four_make_exactly_four_paid_tasks(harness: Harness) -> None:
    """Room for 4: exactly 4 jobs are reserved and paid, 6 are refused with the numbers, spend == Runware's bill."""
    await harness.budgets.set_default(GUILD, 4 * MINI_MEDIUM_SQUARE)
    outcomes = await asyncio.gather(
        *(harness.service.admit(make_request(f"a lighthouse, take {n}")) for n in range(10)), return_exceptions=True
    )
    admitted = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(admitted) == 4
    assert len(refused) == 6 and all(isinstance(error, BudgetExceededError) for error in refused)
    assert "you have $0.00 left" in str(refused[0])
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    assert len(harness.fake.paid_tasks) == 4
    assert len(harness.delivery.delivered) == 4
    assert await harness.charged() == harness.fake.total_cost_micros == 4 * MINI_MEDIUM_SQUARE
    assert await harness.job_rows() == 4


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        pytest.param(Fault.CONTENT_POLICY, "refused this request under its content policy", id="content-policy"),
        pytest.param(Fault.INSUFFICIENT_CREDITS, "out of credits", id="out-of-credits"),
        pytest.param(Fault.TASK_TIMEOUT, "took too long", id="timeout"),
    ],
)
async def test_runware_failures_fail_the_job_with_a_specific_message_and_charge_nothing(
    harness: Harness, fault: Fault, message: str
) -> None:
    """Refusal, empty account, timeout: state failed, the member is told why, the hold is released, no charge."""
    harness.fake.fail_next(fault, task_type="imageInference")
    admission = await harness.service.admit(make_request())
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    job = await harness.job(admission.job_id)
    assert job.state is JobState.FAILED
    assert job.error is not None and message in job.error and "Nothing was charged" in job.error
    assert harness.delivery.failures == [(job.id, job.error)]
    assert harness.delivery.delivered == []
    entries = await harness.entries(job.id)
    assert set(entries) == {EntryKind.HOLD, EntryKind.RELEASE}
    assert await harness.charged() == 0


async def test_a_task_that_runs_past_the_timeout_fails_and_charges_nothing(harnesses: HarnessFactory) -> None:
    """Runware still working when the task budget runs out: a timeout message, the hold released."""
    config = make_config()
    config = config.model_copy(update={"runware": config.runware.model_copy(update={"task_timeout_seconds": 0.2})})
    harness = await harnesses.open(config)
    harness.fake.latency = 2.0
    admission = await harness.service.admit(make_request())
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    job = await harness.job(admission.job_id)
    assert job.state is JobState.FAILED and job.error is not None and "took too long" in job.error
    assert await harness.charged() == 0


@pytest.mark.parametrize(
    ("error", "message"),
    [
        pytest.param(
            DeliveryError("I can't attach files in this channel; ask an admin for the Attach Files permission."),
            "Attach Files",
            id="missing-permission",
        ),
        pytest.param(RuntimeError("socket closed"), "could not be posted here", id="unexpected"),
    ],
)
async def test_a_result_that_cannot_be_posted_is_not_charged(harness: Harness, error: Exception, message: str) -> None:
    """Delivery fails: the job fails with the reason, the hold is released; Runware's work is not charged."""
    harness.delivery.error = error
    admission = await harness.service.admit(make_request())
    assert admission.job_id is not None
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    job = await harness.job(admission.job_id)
    assert job.state is JobState.FAILED and job.delivered_at is None
    assert job.error is not None and message in job.error
    assert harness.delivery.failures == [(job.id, job.error)]
    assert await harness.charged() == 0
    assert set(await harness.entries(job.id)) == {EntryKind.HOLD, EntryKind.RELEASE}


async def test_cancelling_a_queued_job_releases_it_and_it_never_reaches_runware(harnesses: HarnessFactory) -> None:
    """With one slot busy, a waiting job is cancelled: released, state cancelled, never submitted."""
    harness = await harnesses.open(make_config(global_concurrency=1, per_member_concurrency=1))
    harness.fake.latency = 0.3
    first = await harness.service.admit(make_request("first"))
    second = await harness.service.admit(make_request("second"))
    assert first.position is None and second.position == 1
    assert second.job_id is not None

    result = await harness.service.cancel(second.job_id, ALICE)
    assert (result.previous_state, result.released, result.was_running) == (
        JobState.QUEUED,
        MINI_MEDIUM_SQUARE,
        False,
    )
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert (await harness.job(second.job_id)).state is JobState.CANCELLED
    assert len(harness.fake.tasks_submitted()) == 1
    assert [item.job.id for item in harness.delivery.delivered] == [first.job_id]
    assert set(await harness.entries(second.job_id)) == {EntryKind.HOLD, EntryKind.RELEASE}


async def test_a_waiting_job_whose_row_was_cancelled_elsewhere_is_not_submitted_when_its_turn_comes(
    harnesses: HarnessFactory,
) -> None:
    """The worker runs a job it queued from memory, but the submission still checks the row: a job cancelled by
    another writer while it waited (its tracking here untouched) never reaches Runware."""
    harness = await harnesses.open(make_config(global_concurrency=1, per_member_concurrency=1))
    harness.fake.latency = 0.3
    first = await harness.service.admit(make_request("first"))
    second = await harness.service.admit(make_request("second"))
    assert second.position == 1 and second.job_id is not None

    cancelled = await JobRepository(harness.db).finish(
        second.job_id, JobState.CANCELLED, error="Cancelled elsewhere.", expected=(JobState.QUEUED,)
    )
    assert cancelled
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert len(harness.fake.tasks_submitted()) == 1
    assert [item.job.id for item in harness.delivery.delivered] == [first.job_id]
    job = await harness.job(second.job_id)
    assert job.state is JobState.CANCELLED and job.task_uuid is None


async def test_cancelling_a_running_job_releases_it_and_it_is_never_delivered_or_resubmitted(harness: Harness) -> None:
    """A submitted job is cancelled: the worker stops, the hold is released, nothing is posted or charged."""
    harness.fake.latency = 0.5
    admission = await harness.service.admit(make_request())
    assert admission.job_id is not None
    await eventually(lambda: len(harness.fake.tasks_submitted()) == 1)
    job = await harness.job(admission.job_id)
    assert job.state is JobState.SUBMITTED

    result = await harness.service.cancel(job.id, ALICE)
    assert result.was_running and result.released == MINI_MEDIUM_SQUARE
    assert result.job.id == job.id and result.previous_state is JobState.SUBMITTED
    task_uuid = job.task_uuid or ""

    def runware_finished() -> bool:
        state = harness.fake.task(task_uuid)
        return state is not None and state.done

    await eventually(runware_finished)  # Runware finishes (and bills the owner) after the cancel
    await asyncio.wait_for(harness.service.wait_idle(), 5)
    assert (await harness.job(job.id)).state is JobState.CANCELLED
    assert harness.delivery.delivered == [] and harness.delivery.failures == []
    assert harness.fake.submissions_of(task_uuid) == 1 and harness.fake.paid_tasks == [task_uuid]
    assert await harness.charged() == 0
    assert set(await harness.entries(job.id)) == {EntryKind.HOLD, EntryKind.RELEASE}
    with pytest.raises(JobNotCancellableError, match="already cancelled"):
        await harness.service.cancel(job.id, ALICE)


async def test_a_job_whose_images_are_made_cannot_be_cancelled_while_it_waits_to_be_posted(
    harnesses: HarnessFactory,
) -> None:
    """Two jobs made on Runware, one posting and one waiting for its delivery turn: neither can be cancelled (the
    owner already paid for the images), the refusal says so, and each is then posted and charged once."""
    harness = await harnesses.open(
        make_config(global_concurrency=2, per_member_concurrency=2, delivery_concurrency=1, progress_edit_seconds=0.3)
    )
    harness.delivery.gate = asyncio.Event()
    admissions = [await harness.service.admit(make_request(f"fox number {n}")) for n in range(2)]
    job_ids = [admission.job_id for admission in admissions if admission.job_id is not None]
    assert len(job_ids) == 2

    async def both_made() -> bool:
        return all([await harness.service.job_results(job_id) for job_id in job_ids])

    await eventually(both_made)
    await asyncio.wait_for(harness.delivery.entered.wait(), 5)
    assert len(harness.fake.downloads) == 1, "one job posts, the other waits for its turn before downloading"
    [waiting] = [
        job_id
        for job_id in job_ids
        if (await harness.service.job_results(job_id))[0].image_uuid not in harness.fake.downloads
    ]
    posting = next(job_id for job_id in job_ids if job_id != waiting)
    for job_id in (waiting, posting):
        with pytest.raises(JobNotCancellableError, match="too late to cancel") as refused:
            await harness.service.cancel(job_id, ALICE)
        assert "will be charged" in str(refused.value)
        assert (await harness.job(job_id)).state is JobState.SUBMITTED, "a refused cancel changes nothing"
    # The waiting job's status says its images are being posted (once), so its Cancel button is taken away.
    await eventually(lambda: waiting in harness.delivery.posting_calls)
    await asyncio.sleep(0.7)
    assert harness.delivery.posting_calls.count(waiting) == 1

    harness.delivery.gate.set()
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert sorted(item.job.id for item in harness.delivery.delivered) == sorted(job_ids)
    for job_id in job_ids:
        job = await harness.job(job_id)
        assert job.state is JobState.SUCCEEDED and job.cost == MINI_MEDIUM_SQUARE
        assert set(await harness.entries(job_id)) == {EntryKind.HOLD, EntryKind.SETTLE}
    assert await harness.charged() == harness.fake.total_cost_micros == 2 * MINI_MEDIUM_SQUARE


async def test_only_the_requester_or_a_moderator_can_cancel(harnesses: HarnessFactory) -> None:
    """Bob cannot cancel Alice's job; a moderator can; a finished job cannot be cancelled."""
    harness = await harnesses.open(make_config(global_concurrency=1))
    harness.fake.latency = 0.2
    running = await harness.service.admit(make_request("one"))
    waiting = await harness.service.admit(make_request("two"))
    assert running.job_id is not None and waiting.job_id is not None
    with pytest.raises(PermissionDeniedError):
        await harness.service.cancel(waiting.job_id, BOB)
    assert (await harness.job(waiting.job_id)).state is JobState.QUEUED, "a refused cancel changes nothing"
    result = await harness.service.cancel(waiting.job_id, BOB, is_moderator=True)
    assert result.released == MINI_MEDIUM_SQUARE
    cancelled = await harness.job(waiting.job_id)
    assert cancelled.state is JobState.CANCELLED and cancelled.error == "Cancelled by a moderator."
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    with pytest.raises(JobNotCancellableError, match="already finished"):
        await harness.service.cancel(running.job_id, ALICE)


async def test_results_are_fitted_to_the_channels_upload_limit(harness: Harness) -> None:
    """A small attachment limit: every posted file fits it (re-encoded or downscaled), never a 413."""
    limit = 3_000
    delivery = DeliveryTarget(channel_id=CHANNEL, attachment_size_limit=limit)
    admission = await harness.service.admit(make_request(delivery=delivery, background=Background.TRANSPARENT))
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    images = harness.delivery.delivered[0].images
    assert admission.job_id is not None and images
    assert all(len(image.data) <= limit and image.reencoded for image in images)
    assert all(decode_image(image.data).has_alpha for image in images)


async def test_only_delivery_concurrency_jobs_hold_their_images_at_once(harnesses: HarnessFactory) -> None:
    """With 6 jobs finished on Runware and their posts held up, only `delivery_concurrency` (2) of them have
    downloaded their images; the others wait before downloading, having given their Runware slot back (a seventh
    job starts at once), and all are delivered once the posts go through."""
    harness = await harnesses.open(make_config(global_concurrency=6, per_member_concurrency=6, delivery_concurrency=2))
    harness.delivery.gate = asyncio.Event()
    admissions = [await harness.service.admit(make_request(f"fox number {n}", count=2)) for n in range(6)]
    job_ids = [admission.job_id for admission in admissions if admission.job_id is not None]
    assert len(job_ids) == 6

    async def all_made() -> bool:
        return all([await harness.service.job_results(job_id) for job_id in job_ids])

    await eventually(all_made)
    await eventually(lambda: len(harness.fake.downloads) >= 4)
    await asyncio.sleep(0.3)  # time enough for any further download to show up
    assert len(harness.fake.downloads) == 4, "two jobs of two images each"
    assert harness.delivery.delivered == []
    seventh = await harness.service.admit(make_request("a seventh fox"))
    assert seventh.position is None, "the six jobs waiting to post hold no Runware slot"
    assert seventh.job_id is not None
    await eventually(lambda: len(harness.fake.tasks_submitted()) == 7)  # its task went to Runware meanwhile

    harness.delivery.gate.set()
    await asyncio.wait_for(harness.service.wait_idle(), 10)
    assert len(harness.delivery.delivered) == 7 and len(harness.fake.downloads) == 2 * 6 + 1
