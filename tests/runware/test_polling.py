"""Batched getResponse polls and the finish-time poll schedule (`bot.runware.polling`), against the fake Runware."""

from __future__ import annotations

import asyncio

import pytest

from bot.runware.client import RunwareClient
from bot.runware.errors import RunwareTaskNotFoundError
from bot.runware.models import ImageInferenceRequest
from bot.runware.polling import MIN_STEP, FinishEstimate
from fakes.runware import FakeRunware, Fault

REQUEST = ImageInferenceRequest(model="gpt-image-1-mini", prompt="a fox", quality="medium", count=1)


def poll_requests(fake: FakeRunware) -> list[list[str]]:
    """The taskUUIDs of each getResponse request the fake received, in order."""
    return [
        [task["taskUUID"] for task in recorded.tasks if task.get("taskType") == "getResponse"]
        for recorded in fake.requests
        if any(task.get("taskType") == "getResponse" for task in recorded.tasks)
    ]


async def test_polls_asked_together_go_out_as_one_request(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """Five tasks polled in the same turn: one request with five getResponse tasks, each answered with its own."""
    uuids = [client.new_task_uuid() for _ in range(5)]
    for task_uuid in uuids:
        await client.submit(REQUEST, task_uuid)
    states = await asyncio.gather(*(client.poll(task_uuid, 1) for task_uuid in uuids))
    assert poll_requests(fake_runware) == [uuids]
    assert [state.task_uuid for state in states] == uuids
    assert all(state.done and len(state.images) == 1 for state in states)
    assert all(state.images[0].task_uuid == task_uuid for state, task_uuid in zip(states, uuids, strict=True))
    assert len({state.images[0].image_uuid for state in states}) == 5


async def test_a_task_the_batch_did_not_answer_is_asked_alone_and_fails_alone(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """An unknown task in a batch gets the error a lone poll gets; the known ones get their images from the batch."""
    known = [client.new_task_uuid() for _ in range(2)]
    for task_uuid in known:
        await client.submit(REQUEST, task_uuid)
    unknown = client.new_task_uuid()
    results = await asyncio.gather(
        client.poll(known[0], 1), client.poll(unknown, 1), client.poll(known[1], 1), return_exceptions=True
    )
    assert isinstance(results[1], RunwareTaskNotFoundError) and results[1].code == "taskFailedOrNotFound"
    assert not isinstance(results[0], BaseException) and results[0].done
    assert not isinstance(results[2], BaseException) and results[2].done
    assert poll_requests(fake_runware) == [[known[0], unknown, known[1]], [unknown]]


async def test_a_batch_that_failed_as_a_whole_is_asked_again_task_by_task(
    client: RunwareClient, fake_runware: FakeRunware
) -> None:
    """A 503 on the batched request: each task is asked on its own, so each poll still answers."""
    uuids = [client.new_task_uuid() for _ in range(3)]
    for task_uuid in uuids:
        await client.submit(REQUEST, task_uuid)
    fake_runware.fail_next(Fault.UNAVAILABLE, task_type="getResponse")
    states = await asyncio.gather(*(client.poll(task_uuid, 1) for task_uuid in uuids))
    assert all(state.done for state in states)
    assert poll_requests(fake_runware) == [uuids, [uuids[0]], [uuids[1]], [uuids[2]]]


async def test_a_lone_poll_is_one_request_of_one_task(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """Nothing else asked in the same turn: the poll is sent exactly as before batching."""
    task_uuid = client.new_task_uuid()
    await client.submit(REQUEST, task_uuid)
    assert (await client.poll(task_uuid, 1)).done
    assert poll_requests(fake_runware) == [[task_uuid]]


async def test_waiting_for_many_tasks_shares_poll_requests(client: RunwareClient, fake_runware: FakeRunware) -> None:
    """Twenty tasks submitted together and waited for: far fewer poll requests than polls, every image once."""
    fake_runware.latency = 0.1
    uuids = [client.new_task_uuid() for _ in range(20)]
    await asyncio.gather(*(client.submit(REQUEST, task_uuid) for task_uuid in uuids))
    results = await asyncio.gather(*(client.wait(task_uuid, 1) for task_uuid in uuids))
    assert all(len(images) == 1 for images in results)
    requests = poll_requests(fake_runware)
    polls = sum(len(request) for request in requests)
    assert polls >= 20
    assert len(requests) < polls / 2, requests


def test_before_any_task_the_schedule_is_the_configured_one() -> None:
    """No estimate yet: the first poll after the configured delay, then the configured backoff unchanged."""
    estimate = FinishEstimate(initial_delay=2.0, max_interval=5.0)
    assert estimate.expected is None
    assert estimate.first_delay() == 2.0
    assert estimate.next_delay(3.0, elapsed=2.0) == 3.0


def test_the_first_poll_follows_the_learnt_finish_time_and_polls_come_close_around_it() -> None:
    """Tasks seen done between 10 and 12 s: the first poll moves towards 11 s; near it the pauses are short."""
    estimate = FinishEstimate(initial_delay=2.0, max_interval=5.0)
    for _ in range(30):
        estimate.observe(missed_at=10.0, seen_at=12.0)
    assert estimate.expected == pytest.approx(11.0, abs=0.01)
    assert estimate.first_delay() == 5.0  # never beyond the configured ceiling between polls
    assert estimate.next_delay(5.0, elapsed=11.5) == pytest.approx(1.15)
    assert estimate.next_delay(5.0, elapsed=5.0) == 5.0, "long before the expected time: the usual backoff"
    assert estimate.next_delay(5.0, elapsed=30.0) == 5.0, "far beyond it: the usual backoff again"


def test_a_faster_provider_pulls_the_estimate_down() -> None:
    """Every first poll finds the task done: the estimate shrinks, so the first poll comes earlier each time."""
    estimate = FinishEstimate(initial_delay=0.5, max_interval=5.0)
    estimate.observe(missed_at=None, seen_at=0.5)
    first = estimate.first_delay()
    assert first == pytest.approx(0.45)
    for _ in range(20):
        estimate.observe(missed_at=None, seen_at=estimate.first_delay())
    assert estimate.first_delay() < first
    assert estimate.next_delay(1.0, elapsed=estimate.first_delay()) == pytest.approx(MIN_STEP, abs=0.05)
