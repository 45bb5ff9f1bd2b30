"""The scheduler is fair across members and never exceeds its global or per-member limits."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.jobs.scheduler import Scheduler


class Recorder:
    """A `run_job` that records start order and concurrency, and finishes each job when told to (or after a delay)."""

    def __init__(self, owner: dict[str, int], delay: float = 0.02) -> None:
        self.owner = owner
        self.delay = delay
        self.started: list[str] = []
        self.running: Counter[int] = Counter()
        self.max_total = 0
        self.max_per_member = 0

    async def __call__(self, job_id: str) -> None:
        member = self.owner[job_id]
        self.started.append(job_id)
        self.running[member] += 1
        self.max_total = max(self.max_total, sum(self.running.values()))
        self.max_per_member = max(self.max_per_member, self.running[member])
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running[member] -= 1


async def test_a_single_job_is_not_starved_by_another_members_batch() -> None:
    """A queues 8, then B queues 1: B's job starts before the second half of A's; limits always hold."""
    scheduler = Scheduler(global_limit=2, per_member_limit=2)
    owner = {f"a{n}": 1 for n in range(8)} | {"b0": 2}
    recorder = Recorder(owner)
    scheduler.start(recorder)
    for n in range(8):
        scheduler.submit(f"a{n}", 1)
    scheduler.submit("b0", 2)
    await asyncio.wait_for(scheduler.wait_idle(), 5)

    assert sorted(recorder.started) == sorted(owner)
    assert recorder.started.index("b0") < recorder.started.index("a4")
    assert [job for job in recorder.started if job.startswith("a")] == [f"a{n}" for n in range(8)]
    assert recorder.max_total <= 2
    assert recorder.max_per_member <= 2


async def test_the_per_member_limit_holds_even_with_free_global_slots() -> None:
    """One member with many jobs runs at most `per_member_limit` at once, though global slots are free."""
    scheduler = Scheduler(global_limit=4, per_member_limit=2)
    owner = {f"a{n}": 1 for n in range(6)} | {f"b{n}": 2 for n in range(3)}
    recorder = Recorder(owner)
    scheduler.start(recorder)
    for job, member in owner.items():
        scheduler.submit(job, member)
    await asyncio.wait_for(scheduler.wait_idle(), 5)

    assert recorder.max_per_member == 2
    assert recorder.max_total <= 4
    assert len(recorder.started) == 9


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(st.integers(min_value=1, max_value=5), max_size=40),
    removed=st.sets(st.integers(min_value=0, max_value=39), max_size=10),
)
def test_a_position_is_the_place_in_the_start_order(members: list[int], removed: set[int]) -> None:
    """`position` (counted per member, without building the order) agrees with `waiting_order` for every job."""
    scheduler = Scheduler(global_limit=1, per_member_limit=1)  # not started: every job waits
    for index, member in enumerate(members):
        scheduler.submit(f"j{index}", member)
    for index in removed:
        scheduler.remove(f"j{index}")
    order = scheduler.waiting_order()
    assert [scheduler.position(job_id) for job_id in order] == list(range(1, len(order) + 1))


async def test_positions_follow_the_round_robin_start_order() -> None:
    """Waiting positions interleave members as the scheduler would start them; removal closes the gap."""
    scheduler = Scheduler(global_limit=1, per_member_limit=1)
    gate = asyncio.Event()

    async def blocked(job_id: str) -> None:
        await gate.wait()

    scheduler.start(blocked)
    assert scheduler.submit("run", 9) is None  # started at once
    for job in ("a1", "a2", "a3"):
        scheduler.submit(job, 1)
    scheduler.submit("b1", 2)

    assert scheduler.waiting_order() == ["a1", "b1", "a2", "a3"]
    assert [scheduler.position(job) for job in ("a1", "b1", "a2", "a3")] == [1, 2, 3, 4]
    assert scheduler.positions() == {"a1": 1, "b1": 2, "a2": 3, "a3": 4}
    assert scheduler.position("run") is None
    assert scheduler.remove("b1") is True
    assert scheduler.remove("run") is False
    assert scheduler.position("a2") == 2
    assert scheduler.positions() == {"a1": 1, "a2": 2, "a3": 3}
    gate.set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)


async def test_stop_cancels_running_jobs_after_the_grace_period_and_starts_no_more() -> None:
    """After stop(), running runs are cancelled (to be resumed elsewhere) and waiting jobs never start."""
    scheduler = Scheduler(global_limit=1, per_member_limit=1)
    started: list[str] = []
    cancelled: list[str] = []

    async def forever(job_id: str) -> None:
        started.append(job_id)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(job_id)
            raise

    scheduler.start(forever)
    scheduler.submit("one", 1)
    scheduler.submit("two", 1)
    await asyncio.sleep(0.01)
    await asyncio.wait_for(scheduler.stop(grace=0.05), 2)

    assert started == ["one"]
    assert cancelled == ["one"]
    assert scheduler.is_waiting("two")


async def test_a_failing_run_does_not_stop_the_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    """An exception escaping run_job is logged; the next jobs still run."""
    scheduler = Scheduler(global_limit=1, per_member_limit=1)
    done: list[str] = []

    async def run(job_id: str) -> None:
        if job_id == "bad":
            raise RuntimeError("boom")
        done.append(job_id)

    scheduler.start(run)
    scheduler.submit("bad", 1)
    scheduler.submit("good", 1)
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert done == ["good"]
    assert "job bad failed" in caplog.text


def test_limits_must_be_positive() -> None:
    """A zero limit is a configuration mistake."""
    with pytest.raises(ValueError):
        Scheduler(global_limit=0, per_member_limit=1)


async def test_a_released_slot_starts_the_next_job_while_the_first_still_runs() -> None:
    """release_slot: the next job starts at once; the released one still counts for wait_idle and finishes."""
    scheduler = Scheduler(global_limit=1, per_member_limit=1)
    first_may_finish = asyncio.Event()
    started: list[str] = []

    async def run(job_id: str) -> None:
        started.append(job_id)
        if job_id == "a":
            scheduler.release_slot("a")
            await first_may_finish.wait()

    scheduler.start(run)
    scheduler.submit("a", 1)
    scheduler.submit("b", 1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == ["a", "b"]
    assert scheduler.running_count == 0
    assert not scheduler.release_slot("b")  # finished: nothing to release
    idle = asyncio.ensure_future(scheduler.wait_idle())
    await asyncio.sleep(0)
    assert not idle.done()  # "a" still runs
    first_may_finish.set()
    await asyncio.wait_for(idle, 5)


async def test_a_lanes_limit_lowers_what_runs_and_wake_raises_it_again_up_to_the_global_limit() -> None:
    """With the lane at 1 one job runs at a time; raising it and calling wake() starts more, up to global_limit."""
    capacity = [1]
    scheduler = Scheduler(global_limit=3, per_member_limit=4, lanes={"runware": lambda: capacity[0]})
    gate = asyncio.Event()
    started: list[str] = []

    async def run(job_id: str) -> None:
        started.append(job_id)
        await gate.wait()

    scheduler.start(run)
    for n in range(5):
        scheduler.submit(f"j{n}", 1, "runware")
    await asyncio.sleep(0)
    assert len(started) == 1 and scheduler.running_count == 1
    capacity[0] = 10  # above global_limit: the configured limit still caps it
    scheduler.wake()
    await asyncio.sleep(0)
    assert len(started) == 3 and scheduler.running_count == 3
    gate.set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)


async def test_each_lane_runs_at_most_its_providers_limit_and_a_full_lane_blocks_no_other_member() -> None:
    """Runbase's lane at 1, Runware's at 3: member 1 (Runbase only) waits on its lane while member 2's Runware
    jobs start past it, even though member 1 is first in the rotation; the global limit caps the sum."""
    lanes = {"runware": [3], "runbase": [1]}
    scheduler = Scheduler(
        global_limit=4, per_member_limit=4, lanes={name: (lambda box=box: box[0]) for name, box in lanes.items()}
    )
    gates = {name: asyncio.Event() for name in ("runware", "runbase")}
    provider = {f"rb{n}": "runbase" for n in range(4)} | {f"rw{n}": "runware" for n in range(6)}
    started: list[str] = []
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def run(job_id: str) -> None:
        lane = provider[job_id]
        started.append(job_id)
        running[lane] += 1
        peak[lane] = max(peak[lane], running[lane])
        try:
            await gates[lane].wait()
        finally:
            running[lane] -= 1

    scheduler.start(run)
    for n in range(4):
        scheduler.submit(f"rb{n}", 1, "runbase")
    for n in range(6):
        scheduler.submit(f"rw{n}", 2, "runware")
    await asyncio.sleep(0)
    assert started == ["rb0", "rw0", "rw1", "rw2"]
    assert scheduler.running_count == 4
    assert scheduler.position("rb1") is not None  # still waiting on its lane
    lanes["runware"][0] = 10  # above the global limit: 4 in all still
    scheduler.wake()
    await asyncio.sleep(0)
    assert len(started) == 4
    gates["runware"].set()  # Runware's jobs end; Runbase's lane is still full, so only Runware's start
    for _ in range(20):
        await asyncio.sleep(0)
    assert [job for job in started if job.startswith("rb")] == ["rb0"]
    assert sorted(job for job in started if job.startswith("rw")) == [f"rw{n}" for n in range(6)]
    lanes["runbase"][0] = 2
    scheduler.wake()
    await asyncio.sleep(0)
    assert [job for job in started if job.startswith("rb")] == ["rb0", "rb1"]
    gates["runbase"].set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert peak == Counter({"runware": 3, "runbase": 2})  # Runware's 3 = the global 4 less Runbase's running one
    assert sorted(started) == sorted(provider)


async def test_a_lane_cut_holds_back_only_its_own_jobs_and_released_slots_free_the_lane() -> None:
    """Round-robin still alternates members; a job that released its slot no longer counts on its lane."""
    capacity = {"runbase": [2]}
    scheduler = Scheduler(global_limit=8, per_member_limit=8, lanes={"runbase": lambda: capacity["runbase"][0]})
    gate = asyncio.Event()
    started: list[str] = []

    async def run(job_id: str) -> None:
        started.append(job_id)
        if job_id == "a0":
            scheduler.release_slot("a0")  # its images exist: the lane slot goes to the next job
        await gate.wait()

    scheduler.start(run)
    for n in range(3):
        scheduler.submit(f"a{n}", 1, "runbase")
        scheduler.submit(f"b{n}", 2, "runbase")
    scheduler.submit("c0", 3, "runware")  # a provider without a lane: only the global limits apply
    for _ in range(5):
        await asyncio.sleep(0)
    # a0 and b0 fill the lane's 2 slots (a1 waits), c0 runs beside them; a0 releases its slot and a1 takes it.
    assert started == ["a0", "b0", "c0", "a1"]
    assert scheduler.is_waiting("b1") and scheduler.is_waiting("a2") and scheduler.is_waiting("b2")
    capacity["runbase"][0] = 1  # a cut: nothing more starts until the lane drains below 1
    gate.set()
    await asyncio.wait_for(scheduler.wait_idle(), 5)
    assert sorted(started) == sorted(["a0", "a1", "a2", "b0", "b1", "b2", "c0"])
