"""Duplicate collapse across processes: two job services (each with its own database handle, scheduler and in-process
de-duplication map, as two bot processes have) on one PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from fakes.runware import FakeRunware
from tests.jobs.conftest import HarnessFactory, make_request
from tests.postgres_server import PostgresServer


@pytest_asyncio.fixture
async def shared(
    postgres_server: PostgresServer, session: aiohttp.ClientSession, fake_runware: FakeRunware, runware_key: str
) -> AsyncIterator[HarnessFactory]:
    """A factory of harnesses that all use one fresh PostgreSQL database."""
    assert postgres_server.problem is None, postgres_server.problem
    name = postgres_server.create_database()
    factory = HarnessFactory(postgres_server.url(name), session, fake_runware, runware_key)
    try:
        yield factory
    finally:
        await factory.close_all()
        postgres_server.drop_database(name)


async def test_the_same_request_at_two_processes_is_one_job_and_one_reservation(shared: HarnessFactory) -> None:
    """The same member's identical request reaching two processes at once: one job, one hold, one Runware task."""
    first, second = await shared.open(), await shared.open()
    for _ in range(3):  # three rounds, a new prompt each, to give the race its chances
        prompt = f"the same fox {_}"
        admissions = await asyncio.gather(
            first.service.admit(make_request(prompt)), second.service.admit(make_request(prompt))
        )
        assert len({admission.job_id for admission in admissions}) == 1, admissions
        assert sorted(admission.duplicate for admission in admissions) == [False, True]
    await asyncio.wait_for(asyncio.gather(first.service.wait_idle(), second.service.wait_idle()), 20)
    assert await first.job_rows() == 3
    holds = await first.db.run(lambda conn: conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'hold'").fetchone())
    assert holds[0] == 3
    assert len(shared.fake.tasks_submitted()) == 3
