"""Money stays exact across processes: several handles (and several OS processes) on one PostgreSQL database.

Each scenario gives one budget (a member's allowance, a team pool, the server cap) room for exactly 4 reservations
and sends 30 at once, spread over three database handles or three processes: exactly 4 are held. Without the budget
lock (`Database.run(..., locks=...)`) each handle's group-committed batch judges against what it alone has written,
and about three times the room is held (checked by hand when the lock was added).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.billing.budgets import Budgets
from bot.billing.errors import BudgetExceededError
from bot.billing.ledger import Ledger
from bot.settings import AppConfig, load_app_config
from bot.storage.database import Database
from bot.storage.rows import NewJob
from tests.billing.conftest import CONFIG_PATH, ROOT
from tests.billing.race import ESTIMATE, GUILD, MEMBER, ROOM, SCENARIOS, held_in_ledger, prepare, reserve_many
from tests.job_writes import small_job

HANDLES = 3
REQUESTS = 30


@pytest.fixture
def config() -> AppConfig:
    return load_app_config(CONFIG_PATH)


async def open_handles(url: str, count: int) -> list[Database]:
    return [await Database.open(url) for _ in range(count)]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_reservations_from_several_handles_never_pass_a_budget(
    pg_url: str, config: AppConfig, scenario: str
) -> None:
    """30 reservations at once over three handles, room for 4: exactly 4 are held, in every budget kind."""
    handles = await open_handles(pg_url, HANDLES)
    try:
        await prepare(handles[0], config, scenario)
        share = REQUESTS // HANDLES
        held = await asyncio.gather(
            *(reserve_many(db, config, scenario, range(i * share, (i + 1) * share)) for i, db in enumerate(handles))
        )
        assert sum(held) == ROOM
        assert await held_in_ledger(handles[0]) == (ROOM, ROOM * ESTIMATE)
    finally:
        for db in handles:
            await db.close()


def race_in_processes(url: str, scenario: str) -> list[int]:
    """Start three race workers, let them all connect, fire them together; return what each held."""
    share = REQUESTS // HANDLES
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.billing.race_worker", url, scenario, str(i * share), str(share)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(HANDLES)
    ]
    try:
        for process in processes:  # every process connected and waiting before any fires
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.strip() == "ready", (line, process.stderr.read() if process.stderr else "")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    assert all(process.returncode == 0 for process in processes), [err for _, err in results]
    return [int(out.split()[-1]) for out, _ in results]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_reservations_from_separate_processes_never_pass_a_budget(
    pg_url: str, config: AppConfig, scenario: str
) -> None:
    """The same race from three OS processes, started together: exactly 4 are held."""
    async with await Database.open(pg_url) as db:
        await prepare(db, config, scenario)
    results = await asyncio.to_thread(race_in_processes, pg_url, scenario)
    assert sum(results) == ROOM
    async with await Database.open(pg_url) as db:
        assert await held_in_ledger(db) == (ROOM, ROOM * ESTIMATE)


def repeated_request(job_id: str) -> NewJob:
    return small_job(
        member_id=MEMBER,
        guild_id=GUILD,
        channel_id=9,
        prompt="the same fox",
        id=job_id,
        extras={"fingerprint": "same-request"},
    )


async def test_the_same_request_at_two_processes_collapses_into_one_job(pg_url: str, config: AppConfig) -> None:
    """Identical requests arriving at two handles at once: one job row, one hold; every caller gets that job."""
    handles = await open_handles(pg_url, 2)
    now = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    try:
        ledgers = [Ledger(db, Budgets(db, config, clock=lambda: now), clock=lambda: now) for db in handles]

        async def request(number: int) -> str:
            job = repeated_request(f"dup-{number}")
            ledger = ledgers[number % 2]
            reservation = await ledger.reserve(
                job.id, GUILD, MEMBER, [], job.estimate, job=job, duplicate_since=now - timedelta(seconds=60)
            )
            assert reservation.job is not None
            return reservation.job.id

        winners = set(await asyncio.gather(*(request(number) for number in range(20))))
        assert len(winners) == 1
        assert await held_in_ledger(handles[0]) == (1, 11_000)
        jobs = await handles[1].run(lambda conn: conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        assert jobs == 1
        # Reserving the stored job again is a repeat of its reservation, not a duplicate of itself.
        stored = repeated_request(winners.pop())
        again = await ledgers[1].reserve(
            stored.id, GUILD, MEMBER, [], stored.estimate, job=stored, duplicate_since=now - timedelta(seconds=60)
        )
        assert not again.created and not again.duplicate and again.job_id == stored.id
        # Outside the window the same request is a new job.
        later = replace(repeated_request("dup-later"))
        fresh = await ledgers[0].reserve(
            later.id, GUILD, MEMBER, [], later.estimate, job=later, duplicate_since=now + timedelta(seconds=1)
        )
        assert fresh.created and not fresh.duplicate
    finally:
        for db in handles:
            await db.close()


async def fits(call: Awaitable[object]) -> bool:
    """Whether the reservation (or refit) was held rather than refused for the budget."""
    try:
        await call
    except BudgetExceededError:
        return False
    return True


async def test_a_refit_and_new_reservations_at_other_handles_never_pass_an_allowance(
    pg_url: str, config: AppConfig
) -> None:
    """A failover's larger re-reservation at one handle races new requests at another: together they fit.

    The member holds 3 of 4 slots; handle B moves a job to a dearer provider (one more slot) while handle C asks for
    five new slots: exactly one of them gets the last slot, in every round.
    """
    handles = await open_handles(pg_url, 3)
    now = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
    try:
        first, second, third = (Ledger(db, Budgets(db, config, clock=lambda: now), clock=lambda: now) for db in handles)
        await Budgets(handles[0], config).set_default(GUILD, ROOM * ESTIMATE)
        for round_ in range(8):
            member = MEMBER + 100 + round_
            for slot in range(ROOM - 1):
                job = replace(repeated_request(f"r{round_}-{slot}"), member_id=member, estimate=ESTIMATE, extras={})
                await first.reserve(job.id, GUILD, member, [], ESTIMATE, job=job)

            won = await asyncio.gather(
                fits(second.refit(f"r{round_}-0", [], [], 2 * ESTIMATE, "runbase")),
                *(fits(third.reserve(f"r{round_}-new{n}", GUILD, member, [], ESTIMATE)) for n in range(5)),
            )
            assert sum(won) == 1, (round_, won)
            status = await first.status(GUILD, member, [])
            assert status.reserved == ROOM * ESTIMATE
    finally:
        for db in handles:
            await db.close()
