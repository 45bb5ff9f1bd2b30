"""The adaptive concurrency limit (AIMD within the configured bounds), on an injected clock; and end to end, against
the fake Runware refusing work past its capacity."""

from __future__ import annotations

import asyncio

import pytest

from bot.jobs.concurrency import AdaptiveLimit
from bot.storage.rows import EntryKind, JobState
from tests.jobs.conftest import MINI_MEDIUM_SQUARE, HarnessFactory, make_config, make_request


class Clock:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_limit(clock: Clock, *, minimum: int = 2, maximum: int = 16) -> AdaptiveLimit:
    return AdaptiveLimit(minimum=minimum, maximum=maximum, clock=clock, cooldown=1.0)


def test_it_starts_at_the_ceiling_and_steady_latency_keeps_it_there() -> None:
    clock = Clock()
    limit = make_limit(clock)
    assert limit.current == 16
    for _ in range(50):
        limit.on_answer(0.2)
    assert limit.current == 16 and limit.decreases == 0
    assert limit.steady_latency == pytest.approx(0.2)


def test_a_429_halves_it_once_per_cooldown_and_never_below_the_floor() -> None:
    clock = Clock()
    limit = make_limit(clock)
    limit.on_overload(429)
    assert limit.current == 8
    limit.on_overload(429)  # the same overload, seen by another request: no second cut
    assert limit.current == 8
    for _ in range(5):
        clock.now += 1.0
        limit.on_overload(503)
    assert limit.current == 2, "the floor holds"
    assert limit.decreases == 3  # 16 -> 8 -> 4 -> 2, then no change at the floor


def test_it_grows_back_one_step_per_quarter_window_of_steady_answers_and_tells_the_listeners() -> None:
    """At 8, two steady answers make it 9; at 12, three make it 13; and so on up to the ceiling, never beyond."""
    clock = Clock()
    limit = make_limit(clock)
    limit.on_overload(429)
    rises: list[int] = []
    limit.subscribe(lambda: rises.append(limit.current))
    limit.on_answer(0.2)
    assert limit.current == 8 and rises == []
    limit.on_answer(0.2)
    assert limit.current == 9 and rises == [9]
    for _ in range(2 + 2 + 2):
        limit.on_answer(0.2)
    assert limit.current == 12
    for _ in range(2):
        limit.on_answer(0.2)
    assert limit.current == 12, "a quarter of 12 is 3 answers"
    limit.on_answer(0.2)
    assert limit.current == 13
    for _ in range(200):
        limit.on_answer(0.2)
    assert limit.current == 16, "never beyond the ceiling"
    assert rises == list(range(9, 17))


def test_rising_latency_makes_it_fall_and_noise_does_not() -> None:
    clock = Clock()
    limit = make_limit(clock)
    for _ in range(10):
        limit.on_answer(0.3)
    limit.on_answer(0.5)  # a little slower: not a rise (under twice the steady latency and the margin)
    assert limit.current == 16
    for _ in range(5):
        limit.on_answer(3.0)  # queueing at the provider: well over twice as slow
    assert limit.current == 8 and limit.decreases == 1
    clock.now += 1.0
    limit.on_answer(3.0)
    assert limit.current == 4, "still rising after the cooldown: falls again"


def test_a_provider_that_stays_slower_stops_pulling_it_down() -> None:
    """The steady latency drifts up to a lasting new level, so the limit recovers instead of sitting at the floor."""
    clock = Clock()
    limit = make_limit(clock)
    for _ in range(10):
        limit.on_answer(0.3)
    for _ in range(400):
        clock.now += 1.0
        limit.on_answer(2.0)
    assert limit.current == 16
    assert limit.steady_latency is not None and limit.steady_latency > 1.0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(minimum=0, maximum=4)
    with pytest.raises(ValueError, match="minimum"):
        AdaptiveLimit(minimum=5, maximum=4)


@pytest.mark.parametrize("status", [429, 503])
async def test_runware_refusing_work_past_its_capacity_lowers_the_bots_concurrency_and_every_job_is_paid_once(
    harnesses: HarnessFactory, status: int
) -> None:
    """The fake Runware takes 3 tasks at once and answers 429 (or 503) past that; 16 jobs with room for 8 at once.

    The bot's limit falls (it stops sending past what Runware takes), then recovers once the burst is through; every
    job is delivered once, each task was run (and billed) once, and each job is settled to what Runware charged.
    """
    # max_retries is 2 here: refusals for overload do not count against it (`RunwareClient._out_of_retries`).
    config = make_config(global_concurrency=8, per_member_concurrency=8, min_concurrency=1)
    harness = await harnesses.open(config, retry_base_delay=0.1, retry_max_delay=0.4)
    limit = harness.limit
    assert limit.current == 8
    harness.fake.latency = 0.3
    harness.fake.capacity = 3
    harness.fake.capacity_status = status
    seen: list[int] = []

    async def watch() -> None:
        while True:
            seen.append(limit.current)
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    admissions = [await harness.service.admit(make_request(f"a heron, take {n}")) for n in range(16)]
    job_ids = [admission.job_id for admission in admissions if admission.job_id is not None]
    assert len(job_ids) == 16
    await asyncio.wait_for(harness.service.wait_idle(), 60)
    watcher.cancel()

    assert harness.fake.capacity_refusals > 0
    assert limit.decreases >= 1
    lowest = min(seen)
    assert lowest <= 4, "the bot sent less at once than it was allowed to"
    delivered = sorted(delivered.job.id for delivered in harness.delivery.delivered)
    assert delivered == sorted(job_ids), "every job delivered, once"
    paid = harness.fake.paid_tasks
    assert len(paid) == len(set(paid)) == 16, "every task run (and billed) once"
    for job_id in job_ids:
        job = await harness.job(job_id)
        assert job.state is JobState.SUCCEEDED
        entries = await harness.entries(job_id)
        assert set(entries) == {EntryKind.HOLD, EntryKind.SETTLE}
        assert entries[EntryKind.SETTLE].amount == MINI_MEDIUM_SQUARE, "charged once, what Runware charged"

    # Runware copes again: steady answers grow the limit back to the ceiling.
    harness.fake.capacity = None
    harness.fake.latency = 0.02
    more = [await harness.service.admit(make_request(f"a crane, take {n}")) for n in range(60)]
    assert all(admission.job_id is not None for admission in more)
    await asyncio.wait_for(harness.service.wait_idle(), 60)
    assert limit.current == 8, f"recovered from {lowest}"
    assert len(harness.delivery.delivered) == 16 + 60
