"""The per-key limiter: never more than `limit` requests in any window, at the fake's end, whatever the load."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.runbase.limiter import RequestKind, RunbaseLimiter, SlidingWindow
from bot.runbase.models import CreateRun, RunInput
from fakes.runbase import FakeRunbase, max_in_any_window
from tests.runbase.conftest import make_client

REQUEST = CreateRun(model="openai/gpt-image-2", input=RunInput(prompt="a burst", aspect_ratio="1:1"))


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 25),
    window=st.floats(0.5, 20.0),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=120),
)
def test_no_window_ever_holds_more_than_the_limit(limit: int, window: float, gaps: list[float]) -> None:
    """Requests arriving at any times, each started as early as the window allows: no window holds more than `limit`."""
    rule = SlidingWindow(limit, window)
    now = 0.0
    starts: list[float] = []
    for gap in gaps:
        now += gap
        start = rule.next_start(now)
        assert start >= now
        now = start
        rule.record(start)
        starts.append(start)
    assert max_in_any_window(starts, window) <= limit


def test_the_window_lets_a_full_budget_start_at_once_and_then_waits_a_window() -> None:
    rule = SlidingWindow(3, 10.0)
    for _ in range(3):
        assert rule.next_start(5.0) == 5.0
        rule.record(5.0)
    assert rule.next_start(6.0) == 15.0


def test_a_request_counts_until_a_window_after_its_answer() -> None:
    """Runbase may see a request as late as its answer: it keeps its place in flight and for a window afterwards."""
    rule = SlidingWindow(2, 10.0)
    rule.start()
    rule.start()
    assert rule.next_start(100.0) is None  # both in flight, however long ago they were sent
    rule.finish(104.0)
    assert rule.next_start(105.0) == 114.0
    rule.finish(106.0)
    assert rule.next_start(114.5) == 114.5
    rule.start()
    assert rule.next_start(114.5) == 116.0


async def test_a_slow_answer_holds_back_the_next_grant() -> None:
    limiter = RunbaseLimiter(1, 0.2, margin=0.0)
    answered = asyncio.Event()
    granted: list[float] = []

    async def slow() -> None:
        async with limiter.request(RequestKind.CREATE):
            await asyncio.sleep(0.3)
            answered.set()

    async def second() -> None:
        await asyncio.sleep(0.05)
        async with limiter.request(RequestKind.POLL):
            granted.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(slow(), second())
    assert answered.is_set() and granted[0] - started >= 0.48  # 0.3 s in flight, then the 0.2 s window


async def test_creates_and_polls_take_turns_when_both_wait() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds
        await asyncio.sleep(0)

    limiter = RunbaseLimiter(2, 1.0, margin=0.0, clock=lambda: clock[0], sleep=sleep)
    order: list[RequestKind] = []

    async def one(kind: RequestKind) -> None:
        async with limiter.request(kind):
            order.append(kind)

    await asyncio.gather(*(one(RequestKind.CREATE) for _ in range(6)), *(one(RequestKind.POLL) for _ in range(6)))
    assert order == [RequestKind.CREATE, RequestKind.POLL] * 6
    assert clock[0] == pytest.approx(5.0)  # 12 requests at 2 per second: the last pair starts at t = 5


def test_the_poll_cadence_slows_as_runs_accumulate() -> None:
    limiter = RunbaseLimiter()
    assert limiter.poll_interval() == 1.0
    for _ in range(2):
        limiter.run_started()
    assert limiter.poll_interval() == 2.0
    for _ in range(8):
        limiter.run_started()
    assert limiter.poll_interval() == 10.0
    for _ in range(100):
        limiter.run_started()
    assert limiter.poll_interval() == 30.0


async def test_a_429_pauses_every_grant_with_a_growing_backoff() -> None:
    limiter = RunbaseLimiter(20, 10.0, backoff_base=0.2)
    limiter.rate_limited()
    started = time.monotonic()
    async with limiter.request(RequestKind.POLL):
        first = time.monotonic() - started
    limiter.rate_limited()
    started = time.monotonic()
    async with limiter.request(RequestKind.POLL):
        pass
    assert first >= 0.18 and time.monotonic() - started >= 0.38


async def test_a_burst_of_50_runs_on_one_key_never_passes_the_limit(session: aiohttp.ClientSession) -> None:
    """The window shortened to 1 s in the fake and the limiter alike (the real 10 s is the next test)."""
    async with FakeRunbase(rate_limit=20, rate_window=1.0) as fake:
        limiter = RunbaseLimiter(20, 1.0, margin=0.1, min_poll_interval=0.1, max_poll_interval=5.0)
        client = make_client(session, fake, limiter=limiter)
        runs = await asyncio.gather(*(client.generate(REQUEST) for _ in range(50)))
        assert all(run.succeeded for run in runs) and len({run.id for run in runs}) == 50
        assert len(fake.creates) == 50 and fake.rate_limited == 0
        assert fake.max_in_any_window(1.0) <= 20
        assert len(fake.requests) > 60  # the limit mattered: well over one window's budget went through it
        assert fake.total_charged_micros == 50 * 50_000 == sum(run.cost_micros for run in runs)
        assert limiter.granted[RequestKind.POLL] == len(fake.polls)


async def test_without_the_limiter_the_fake_refuses_the_excess(session: aiohttp.ClientSession) -> None:
    """The control: a limiter allowing far more than Runbase meets 429 RATE_LIMITED (so the test above can fail)."""
    async with FakeRunbase(rate_limit=20, rate_window=1.0) as fake:
        limiter = RunbaseLimiter(1000, 1.0, backoff_base=0.05, backoff_max=0.1)
        client = make_client(session, fake, limiter=limiter)
        await asyncio.gather(*(client.create(REQUEST) for _ in range(30)), return_exceptions=True)
        assert fake.rate_limited > 0 and fake.max_in_any_window(1.0) > 20


async def test_the_real_limit_of_20_per_10_s_holds_under_a_burst(session: aiohttp.ClientSession) -> None:
    """15 runs at Runbase's real limit, polled every second: 30+ requests, so half of them wait for the next window."""
    async with FakeRunbase() as fake:
        limiter = RunbaseLimiter(max_poll_interval=1.0)
        client = make_client(session, fake, limiter=limiter)
        started = time.monotonic()
        runs = await asyncio.gather(*(client.generate(REQUEST) for _ in range(15)))
        assert all(run.succeeded for run in runs)
        assert len(fake.requests) >= 30 and fake.rate_limited == 0
        assert fake.max_in_any_window(10.0) <= 20
        assert time.monotonic() - started >= 10.0
