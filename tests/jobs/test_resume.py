"""Durability: a process that dies at any point leaves jobs that the next one finishes once and charges once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.billing.ledger import ReconcileReport
from bot.catalog import ModelName, Quality
from bot.runware.models import ImageInferenceRequest
from bot.settings import AppConfig
from bot.storage.jobs import JobRepository
from bot.storage.rows import EntryKind, JobResult, JobState
from fakes.runware import FakeRunware, Fault, RecordedRequest
from tests.jobs.conftest import (
    FAST_RUNWARE,
    MINI_MEDIUM_SQUARE,
    Harness,
    HarnessFactory,
    eventually,
    make_config,
    make_request,
)

RUNWARE_REQUEST = ImageInferenceRequest(model=ModelName.GPT_IMAGE_1_MINI, prompt="a red fox", quality=Quality.MEDIUM)
"""A task like the one `make_request()` makes (mini, medium, square: `MINI_MEDIUM_SQUARE`), for tests that POST the
stored task themselves."""


@dataclass(frozen=True)
class Stored:
    """A job whose process died after storing its task UUID (see `crash_after_storing_the_task_uuid`)."""

    job_id: str
    task_uuid: str
    stored_at: float
    """`time.time()` just before the task UUID was stored."""


async def crash_after_storing_the_task_uuid(
    harnesses: HarnessFactory,
    config: AppConfig | None = None,
    *,
    before_crash: Callable[[Harness, Stored], Awaitable[None]] | None = None,
) -> Stored:
    """A process (not resumed) admits a job and stores a new task UUID for it, as `begin_submit` does just before
    the POST; then it runs `before_crash` (sends the POST, say), if given, and dies."""
    first = await harnesses.open(config, start=False)
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None
    task_uuid = first.client.new_task_uuid()
    stored = Stored(admission.job_id, task_uuid, time.time())
    assert await JobRepository(first.db).begin_submit(stored.job_id, task_uuid)
    if before_crash is not None:
        await before_crash(first, stored)
    await harnesses.crash(first)
    return stored


async def test_a_job_killed_while_runware_works_is_polled_after_restart_never_resubmitted(
    harnesses: HarnessFactory,
) -> None:
    """Killed mid-task: the new process polls the stored task UUID; one submission, one delivery, one charge."""
    first = await harnesses.open()
    first.fake.latency = 0.6
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None
    job_id = admission.job_id
    await eventually(lambda: len(first.fake.tasks_submitted()) == 1)
    await eventually(lambda: JobRepository(first.db).acknowledged_at(job_id))
    await harnesses.crash(first)

    second = await harnesses.open(start=False)
    stored = await second.job(job_id)
    assert stored.state is JobState.SUBMITTED and stored.task_uuid is not None
    report = await second.service.resume()
    assert report.resumed == [job_id] and report.requeued == []
    await asyncio.wait_for(second.service.wait_idle(), 10)

    assert second.fake.submissions_of(stored.task_uuid) == 1
    assert [item.job.id for item in second.delivery.delivered] == [job_id]
    assert second.delivery.delivered[0].summary.redelivery is False
    finished = await second.job(job_id)
    assert finished.state is JobState.SUCCEEDED and finished.delivered_at is not None
    entries = await second.entries(job_id)
    assert set(entries) == {EntryKind.HOLD, EntryKind.SETTLE}
    assert entries[EntryKind.SETTLE].amount == second.fake.total_cost_micros == MINI_MEDIUM_SQUARE


async def test_a_job_stored_as_submitted_but_never_posted_is_submitted_once_under_its_uuid(
    harnesses: HarnessFactory,
) -> None:
    """Died after storing the task UUID, before the POST: Runware does not know it, so it is submitted once."""
    stored = await crash_after_storing_the_task_uuid(harnesses)

    second = await harnesses.open(start=False)
    report = await second.service.resume()
    assert report.resumed == [stored.job_id]
    await asyncio.wait_for(second.service.wait_idle(), 10)
    assert second.fake.submissions_of(stored.task_uuid) == 1
    assert len(second.delivery.delivered) == 1
    assert await second.charged() == MINI_MEDIUM_SQUARE


async def test_a_submission_still_registering_when_the_bot_died_is_found_after_the_restart_and_only_polled(
    harnesses: HarnessFactory,
) -> None:
    """Died while the POST was on its way: Runware registers the task only after the restart first asks about it.
    The restart keeps asking within the late-registration window, finds the task and polls it, so even a Runware
    that would run a repeated task UUID a second time bills it once."""
    harnesses.fake.reject_duplicate_uuids = False
    harnesses.fake.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=1.0)

    async def die_while_posting(first: Harness, stored: Stored) -> None:
        posting = asyncio.ensure_future(first.client.submit(RUNWARE_REQUEST, stored.task_uuid))
        await eventually(lambda: harnesses.fake.submissions_of(stored.task_uuid) == 1)
        posting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await posting

    stored = await crash_after_storing_the_task_uuid(harnesses, before_crash=die_while_posting)
    job_id, task_uuid = stored.job_id, stored.task_uuid

    second = await harnesses.open(start=False)
    report = await second.service.resume()
    assert report.resumed == [job_id]
    await asyncio.wait_for(second.service.wait_idle(), 15)
    assert second.fake.submissions_of(task_uuid) == 1
    assert second.fake.paid_tasks == [task_uuid]
    assert [item.job.id for item in second.delivery.delivered] == [job_id]
    assert await second.charged() == MINI_MEDIUM_SQUARE


LATE_TIMEOUT = 1.0
"""Request timeout of the late-registration tests: Runware registers a POST within twice that of sending it."""
LATE_DELAY = 1.2
"""How long the fake holds a late-registering POST before registering (and billing) its task."""


def late_config() -> AppConfig:
    """The test config with a request timeout long enough to tell one POST's late-registration window from another's."""
    config = make_config()
    return config.model_copy(
        update={"runware": config.runware.model_copy(update={"request_timeout_seconds": LATE_TIMEOUT})}
    )


def inference_posts(fake: FakeRunware) -> list[RecordedRequest]:
    """The POSTs that carried an imageInference task, in arrival order."""
    return [
        recorded for recorded in fake.requests if any(t.get("taskType") == "imageInference" for t in recorded.tasks)
    ]


async def sleep_until(wall_clock: float) -> None:
    """Sleep until `time.time()` reaches `wall_clock` (at once if it already has)."""
    await asyncio.sleep(max(0.0, wall_clock - time.time()))


async def test_a_re_post_still_registering_when_the_bot_died_is_waited_for_from_its_own_sending_not_the_first(
    harnesses: HarnessFactory,
) -> None:
    """The first POST timed out unregistered, the client's re-POST (same UUID) was still on its way when the bot
    died, and the restart came after the first POST's late-registration window but within the re-POST's: the restart
    measures the window from the latest POST, keeps asking, finds the task and polls it: one paid run, even on a
    Runware that runs a repeated task UUID twice."""
    harnesses.fake.reject_duplicate_uuids = False
    harnesses.fake.fail_next(Fault.HANG, task_type="imageInference")
    harnesses.fake.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=LATE_DELAY)
    config = late_config()
    first = await harnesses.open(config)
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None
    job_id = admission.job_id
    await eventually(lambda: len(inference_posts(harnesses.fake)) == 2, within=10)
    await harnesses.crash(first)
    [hung, late] = inference_posts(harnesses.fake)
    assert (hung.fault, late.fault) == (Fault.HANG, Fault.REGISTER_LATE)
    task_uuid = late.tasks[0]["taskUUID"]
    assert harnesses.fake.task(task_uuid) is None, "the re-POST must still be registering at the crash"
    assert harnesses.fake.pending_late_registrations == 1
    await sleep_until(hung.time + 2 * LATE_TIMEOUT + 0.1)  # the first POST's window is over

    second = await harnesses.open(config, start=False)
    stored = await second.job(job_id)
    assert stored.task_uuid == task_uuid and await JobRepository(second.db).acknowledged_at(job_id) is None
    report = await second.service.resume()
    assert report.resumed == [job_id]
    await asyncio.wait_for(second.service.wait_idle(), 15)
    await second.fake.drain()  # every held request has registered (and been billed)
    assert second.fake.paid_tasks == [task_uuid]
    assert second.fake.submissions_of(task_uuid) == 2
    assert [item.job.id for item in second.delivery.delivered] == [job_id]
    assert await second.charged() == MINI_MEDIUM_SQUARE


async def test_two_restarts_during_the_resubmission_of_a_resumed_job_still_run_it_once(
    harnesses: HarnessFactory,
) -> None:
    """A job stored as submitted but never posted is submitted by the first restart, which dies while that POST is
    still registering; the second restart (past the window counted from storing the UUID) counts from that POST,
    finds the task and only polls it: one paid run on a Runware that runs a repeated task UUID twice."""
    harnesses.fake.reject_duplicate_uuids = False
    config = late_config()
    stored = await crash_after_storing_the_task_uuid(harnesses, config)
    job_id, task_uuid = stored.job_id, stored.task_uuid

    harnesses.fake.fail_next(Fault.REGISTER_LATE, task_type="imageInference", delay=LATE_DELAY)
    second = await harnesses.open(config)
    await eventually(lambda: harnesses.fake.submissions_of(task_uuid) == 1, within=10)
    await harnesses.crash(second)
    [late] = inference_posts(harnesses.fake)
    assert late.fault is Fault.REGISTER_LATE
    assert harnesses.fake.task(task_uuid) is None, "the resubmission must still be registering at the crash"
    assert harnesses.fake.pending_late_registrations == 1
    await sleep_until(stored.stored_at + 2 * LATE_TIMEOUT + 0.1)  # the window counted from storing the UUID is over

    third = await harnesses.open(config, start=False)
    report = await third.service.resume()
    assert report.resumed == [job_id]
    await asyncio.wait_for(third.service.wait_idle(), 15)
    await third.fake.drain()  # every held request has registered (and been billed)
    assert third.fake.paid_tasks == [task_uuid]
    assert third.fake.submissions_of(task_uuid) == 1
    assert [item.job.id for item in third.delivery.delivered] == [job_id]
    assert await third.charged() == MINI_MEDIUM_SQUARE


async def test_a_job_posted_but_not_acknowledged_is_found_on_runware_through_flaky_answers_and_only_polled(
    harnesses: HarnessFactory,
) -> None:
    """Died after the POST, before the acknowledgement was recorded: the restart asks Runware about the task,
    retrying its transient failures as the client's policy allows, finds it, and polls it: one submission, one
    charge."""

    async def post(first: Harness, stored: Stored) -> None:
        await first.client.submit(RUNWARE_REQUEST, stored.task_uuid)

    stored = await crash_after_storing_the_task_uuid(harnesses, before_crash=post)

    second = await harnesses.open(start=False)
    second.fake.fail_next(Fault.UNAVAILABLE, times=FAST_RUNWARE.max_retries, task_type="getResponse")
    report = await second.service.resume()
    assert report.resumed == [stored.job_id]
    await asyncio.wait_for(second.service.wait_idle(), 10)
    assert second.fake.submissions_of(stored.task_uuid) == 1
    assert [item.job.id for item in second.delivery.delivered] == [stored.job_id]
    assert await second.charged() == MINI_MEDIUM_SQUARE


async def test_a_job_whose_task_runware_cannot_be_asked_about_fails_and_is_never_submitted_blind(
    harnesses: HarnessFactory,
) -> None:
    """Died before the acknowledgement, and on restart Runware keeps failing to say whether it has the task: after
    the configured retries the job fails and its hold is released; "no answer" is never taken for "unknown"."""
    stored = await crash_after_storing_the_task_uuid(harnesses)
    job_id, task_uuid = stored.job_id, stored.task_uuid

    second = await harnesses.open(start=False)
    second.fake.fail_next(Fault.UNAVAILABLE, times=50, task_type="getResponse")
    await second.service.resume()
    await asyncio.wait_for(second.service.wait_idle(), 10)
    assert second.fake.polls_of(task_uuid) == FAST_RUNWARE.max_retries + 1
    assert second.fake.submissions_of(task_uuid) == 0
    assert (await second.job(job_id)).state is JobState.FAILED
    assert set(await second.entries(job_id)) == {EntryKind.HOLD, EntryKind.RELEASE}
    assert await second.charged() == 0
    assert [failed for failed, _ in second.delivery.failures] == [job_id]
    second.fake.clear_faults()


async def test_a_queued_job_is_queued_again_after_a_restart(harnesses: HarnessFactory) -> None:
    """A job admitted but not started when the process stopped runs after the restart."""
    first = await harnesses.open(start=False)
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None and admission.position == 1
    await harnesses.crash(first)
    assert first.fake.tasks_submitted() == []

    second = await harnesses.open(start=False)
    report = await second.service.resume()
    assert report.requeued == [admission.job_id]
    await asyncio.wait_for(second.service.wait_idle(), 10)
    assert (await second.job(admission.job_id)).state is JobState.SUCCEEDED
    assert len(second.fake.paid_tasks) == 1


async def test_results_finished_before_a_crash_are_delivered_from_storage_and_charged_once(
    harnesses: HarnessFactory,
) -> None:
    """Killed while posting: the restart re-delivers (flagged) the stored images without asking Runware again."""
    first = await harnesses.open()
    first.delivery.gate = asyncio.Event()  # the post never completes
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None
    await asyncio.wait_for(first.delivery.entered.wait(), 10)
    await harnesses.crash(first)
    polls_before = len(first.fake.tasks_submitted("getResponse"))

    second = await harnesses.open()
    await asyncio.wait_for(second.service.wait_idle(), 10)
    assert len(second.fake.tasks_submitted("getResponse")) == polls_before
    assert len(second.delivery.delivered) == 1 and second.delivery.delivered[0].summary.redelivery
    assert await second.charged() == MINI_MEDIUM_SQUARE
    assert len(second.fake.tasks_submitted()) == 1


async def crashed_before_settling(harnesses: HarnessFactory) -> tuple[Harness, str]:
    """A job delivered and recorded whose process died before settling; return the next start (not resumed) and it."""
    first = await harnesses.open()
    first.delivery.gate = asyncio.Event()
    admission = await first.service.admit(make_request())
    assert admission.job_id is not None
    job_id = admission.job_id
    await asyncio.wait_for(first.delivery.entered.wait(), 10)
    # The post went out and was recorded (one transaction); then the process died before `Ledger.settle`.
    assert await JobRepository(first.db).finish_delivered(job_id, 123, MINI_MEDIUM_SQUARE)
    await harnesses.crash(first)
    return await harnesses.open(start=False), job_id


async def test_a_crash_between_delivery_and_settlement_is_settled_by_reconcile(harnesses: HarnessFactory) -> None:
    """Delivered and recorded, but the process died before settling: the restart settles, never re-posts."""
    second, job_id = await crashed_before_settling(harnesses)
    report = await second.service.resume()
    assert report.reconcile.settled == [job_id] and report.resumed == []
    await asyncio.wait_for(second.service.wait_idle(), 5)
    assert second.delivery.delivered == []
    assert await second.charged() == MINI_MEDIUM_SQUARE
    assert set(await second.entries(job_id)) == {EntryKind.HOLD, EntryKind.SETTLE}


async def test_a_start_reconciles_once_the_process_did_already(harnesses: HarnessFactory) -> None:
    """`bot.app` reconciles before the bot connects and hands the report to the job service, which does not read the
    whole ledger again: given that report, resume leaves alone what only a reconcile would settle."""
    second, job_id = await crashed_before_settling(harnesses)
    earlier = ReconcileReport()  # as if the start-up reconcile had run before this crash's hold was left open
    report = await second.service.resume(earlier)
    assert report.reconcile is earlier
    assert set(await second.entries(job_id)) == {EntryKind.HOLD}, "the ledger was reconciled a second time"


async def test_stopping_gracefully_lets_running_jobs_finish(harnesses: HarnessFactory) -> None:
    """A SIGTERM-style stop with a grace period: the running job completes; a waiting one stays queued."""
    harness = await harnesses.open(make_config(global_concurrency=1))
    harness.fake.latency = 0.2
    running = await harness.service.admit(make_request("one"))
    waiting = await harness.service.admit(make_request("two"))
    assert running.job_id is not None and waiting.job_id is not None
    await harness.service.stop(grace=5)
    assert (await harness.job(running.job_id)).state is JobState.SUCCEEDED
    assert (await harness.job(waiting.job_id)).state is JobState.QUEUED
    assert len(harness.fake.tasks_submitted()) == 1, "the waiting job never reached Runware"
    assert await harness.charged() == MINI_MEDIUM_SQUARE


async def test_a_partial_result_without_a_reported_cost_is_charged_its_share_of_the_estimate(
    harnesses: HarnessFactory,
) -> None:
    """One of two images stored (with no cost from Runware) before a crash: the restart posts that one image and
    charges half the estimate, not the whole of it, as the card's "you pay only for those" promises."""
    first = await harnesses.open()
    done = await first.service.admit(make_request("an earlier fox"))
    await asyncio.wait_for(first.service.wait_idle(), 10)
    assert done.job_id is not None
    served = (await first.service.job_results(done.job_id))[0]
    await harnesses.crash(first)

    second = await harnesses.open(start=False)
    admission = await second.service.admit(make_request(count=2))
    assert admission.job_id is not None and admission.estimate == 2 * MINI_MEDIUM_SQUARE
    queue = JobRepository(second.db)
    assert await queue.begin_submit(admission.job_id, second.client.new_task_uuid())
    await queue.mark_acknowledged(admission.job_id)
    await queue.save_results(admission.job_id, [JobResult(0, "image-1", served.image_url, None)], None)
    await harnesses.crash(second)

    third = await harnesses.open()
    await asyncio.wait_for(third.service.wait_idle(), 10)
    [delivered] = third.delivery.delivered
    assert (delivered.summary.image_count, delivered.summary.count) == (1, 2)
    assert (delivered.summary.cost, delivered.summary.cost_reported) == (MINI_MEDIUM_SQUARE, False)
    entries = await third.entries(admission.job_id)
    assert entries[EntryKind.SETTLE].amount == MINI_MEDIUM_SQUARE
    assert (await third.job(admission.job_id)).cost == MINI_MEDIUM_SQUARE


async def test_a_result_where_one_image_lacks_a_cost_is_charged_from_the_estimate_not_the_partial_sum(
    harnesses: HarnessFactory,
) -> None:
    """Two images stored before a crash, only one with a reported cost: the restart charges the estimate for both
    images (not just the one cost Runware reported, which would under-charge)."""
    first = await harnesses.open()
    done = await first.service.admit(make_request("an earlier fox"))
    await asyncio.wait_for(first.service.wait_idle(), 10)
    assert done.job_id is not None
    served = (await first.service.job_results(done.job_id))[0]
    await harnesses.crash(first)

    second = await harnesses.open(start=False)
    admission = await second.service.admit(make_request(count=2))
    assert admission.job_id is not None and admission.estimate == 2 * MINI_MEDIUM_SQUARE
    queue = JobRepository(second.db)
    assert await queue.begin_submit(admission.job_id, second.client.new_task_uuid())
    await queue.mark_acknowledged(admission.job_id)
    stored = [
        JobResult(0, "image-1", served.image_url, MINI_MEDIUM_SQUARE),
        JobResult(1, "image-2", served.image_url, None),
    ]
    await queue.save_results(admission.job_id, stored, None)
    await harnesses.crash(second)

    third = await harnesses.open()
    await asyncio.wait_for(third.service.wait_idle(), 10)
    [delivered] = third.delivery.delivered
    assert (delivered.summary.image_count, delivered.summary.count) == (2, 2)
    assert (delivered.summary.cost, delivered.summary.cost_reported) == (2 * MINI_MEDIUM_SQUARE, False)
    entries = await third.entries(admission.job_id)
    assert entries[EntryKind.SETTLE].amount == 2 * MINI_MEDIUM_SQUARE
    assert (await third.job(admission.job_id)).cost == 2 * MINI_MEDIUM_SQUARE
