"""`ATELIER_METRICS_PORT`: `/healthz` follows the gateway, `/metrics` counts what the bot did (prometheus-client's
own parser reads it), against the fake Discord and the fake Runware."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.billing.budgets import MemberOverride
from fakes.runware import Fault
from tests.discord.conftest import Atelier
from tests.discord.helpers import result_of


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        body = await response.json() if path == "/healthz" else await response.text()
        return response.status, body


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_healthz_is_503_while_the_gateway_is_down_and_200_after_resume(atelier: Atelier) -> None:
    """The gateway drops and stays out: 503 naming the gateway; it comes back with RESUME: 200."""
    port = _free_port()
    await atelier.stop()
    await atelier.start(ATELIER_METRICS_PORT=str(port))
    fake = atelier.fake
    identified = len(fake.identifies)

    assert await _get(port, "/healthz") == (
        200,
        {"status": "ok", "checks": {"gateway": "ok", "database": "ok", "provider": "ok"}, "failed": []},
    )

    fake.gateway_open.clear()
    await fake.kill_gateway(4000)
    _, body = await _wait_status(port, 503)
    assert body["failed"] == ["gateway"] and body["checks"]["gateway"] == "disconnected"

    fake.gateway_open.set()
    await fake.wait_until(lambda: fake.resumes, timeout=10.0, what="a RESUME")
    _, body = await _wait_status(port, 200)
    assert body["status"] == "ok"
    assert len(fake.identifies) == identified and len(fake.resumes) == 1


async def test_healthz_with_two_shards_is_503_while_either_shard_is_down(atelier: Atelier) -> None:
    """`ATELIER_SHARDS=0-1/2` in one process: 200 with both shards connected; shard 1 drops and stays out: 503
    naming the gateway although shard 0 is still connected; shard 1 RESUMEs: 200 again."""
    port = _free_port()
    await atelier.stop()
    fake = atelier.fake
    fake.shard_count = 2
    await atelier.start(ATELIER_METRICS_PORT=str(port), ATELIER_SHARDS="0-1/2")
    await fake.wait_ready(shard=0)
    await fake.wait_ready(shard=1)
    assert [identify.get("shard") for identify in fake.identifies[-2:]] == [[0, 2], [1, 2]]
    await _wait_status(port, 200)

    fake.gateway_open.clear()
    await fake.kill_gateway(4000, shard=1)
    _, body = await _wait_status(port, 503)
    assert body["failed"] == ["gateway"] and body["checks"]["gateway"] == "disconnected"
    assert [s.shard for s in fake.sessions if s.connected] == [[0, 2]]

    fake.gateway_open.set()
    await fake.wait_until(lambda: fake.resumes, timeout=10.0, what="shard 1 to RESUME")
    _, body = await _wait_status(port, 200)
    assert body["status"] == "ok"


async def _wait_status(port: int, expected: int, timeout: float = 10.0) -> tuple[int, Any]:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await _get(port, "/healthz")
        if status == expected or asyncio.get_running_loop().time() > deadline:
            assert status == expected, body
            return status, body
        await asyncio.sleep(0.05)


async def test_metrics_count_interactions_jobs_and_the_spend_the_ledger_settled(atelier: Atelier) -> None:
    """N /imagine: N interactions, N jobs queued, submitted and succeeded, spend = the ledger's settled total."""
    port = _free_port()
    await atelier.stop()
    await atelier.start(ATELIER_METRICS_PORT=str(port))
    world = atelier.world
    await atelier.bot.services.budgets.set_member(world.guild_id, world.member_id, MemberOverride.unlimited())
    runs = 3
    for index in range(runs):
        interaction = await atelier.slash("imagine", user_id=world.member_id, prompt=f"metrics {index}: a kite")
        await result_of(interaction)
    await atelier.bot.services.generation.wait_idle()

    status, text = await _get(port, "/metrics")
    assert status == 200
    samples = _samples(text)
    assert samples[("atelier_interactions_total", (("type", "application_command"),))] == runs
    assert samples[("atelier_interaction_ack_seconds_count", ())] == runs
    for state in ("queued", "submitted", "succeeded"):
        assert samples[("atelier_job_transitions_total", (("state", state),))] == runs
    assert ("atelier_job_transitions_total", (("state", "failed"),)) not in samples
    assert samples[("atelier_queue_length", ())] == 0
    assert samples[("atelier_gateway_connected", ())] == 1
    ceiling = atelier.settings().app.limits.global_concurrency
    for provider in ("runware", "runbase"):
        assert samples[("atelier_provider_concurrency_limit", (("provider", provider),))] == ceiling
    assert samples[("atelier_provider_request_seconds_count", (("outcome", "ok"), ("task_type", "imageInference")))]
    with sqlite3.connect(atelier.database) as conn:
        (settled,) = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'").fetchone()
    assert settled > 0
    assert samples[("atelier_spend_microdollars_total", ())] == settled


async def test_metrics_count_429s_failures_and_the_queue_as_they_happen(atelier: Atelier) -> None:
    """Runware answers 429 twice and Discord once; three requests from one member (one slot) queue; one job fails:
    `/metrics` says exactly that: the 429s by service, the queue while it waits, jobs by state, acknowledgements."""
    port = _free_port()
    await atelier.stop()
    atelier.configure(limits__per_member_concurrency="1")
    await atelier.start(ATELIER_METRICS_PORT=str(port))
    world, fake, runware = atelier.world, atelier.fake, atelier.runware
    await atelier.bot.services.budgets.set_member(world.guild_id, world.member_id, MemberOverride.unlimited())

    runware.fail_next(Fault.RATE_LIMITED, times=2, task_type="imageInference", retry_after=0.05)
    fake.plan_429("POST", r"/interactions/\d+/[^/]+/callback$", times=1, retry_after=0.05)
    runware.latency = 1.5  # the first task runs long enough for the other two to wait behind it
    interactions = [
        await atelier.slash("imagine", user_id=world.member_id, prompt=f"queued {index}: a kite") for index in range(3)
    ]
    queued: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    deadline = asyncio.get_running_loop().time() + 10.0
    while asyncio.get_running_loop().time() < deadline:
        queued = _samples((await _get(port, "/metrics"))[1])
        if queued[("atelier_queue_length", ())] == 2:
            break
        await asyncio.sleep(0.02)
    assert (queued[("atelier_queue_length", ())], queued[("atelier_running_jobs", ())]) == (2, 1)
    runware.latency = 0.0
    for interaction in interactions:
        await result_of(interaction, timeout=20.0)

    runware.fail_next(Fault.CONTENT_POLICY)
    refused = await atelier.slash("imagine", user_id=world.member_id, prompt="a kite that fails")
    await refused.wait_message(lambda m: "content policy" in m.content, timeout=10.0)
    await atelier.bot.services.generation.wait_idle()

    samples = _samples((await _get(port, "/metrics"))[1])
    assert samples[("atelier_interactions_total", (("type", "application_command"),))] == 4
    assert samples[("atelier_interaction_ack_seconds_count", ())] == 4
    expected = {"queued": 4, "submitted": 4, "succeeded": 3, "failed": 1}
    for state, count in expected.items():
        assert samples[("atelier_job_transitions_total", (("state", state),))] == count, state
    assert samples[("atelier_rate_limited_total", (("service", "runware"),))] == 2
    assert samples[("atelier_rate_limited_total", (("service", "discord"),))] == 1
    key = (
        "atelier_provider_request_seconds_count",
        (("outcome", "RunwareRateLimitedError"), ("task_type", "imageInference")),
    )
    assert samples[key] == 2
    assert (samples[("atelier_queue_length", ())], samples[("atelier_running_jobs", ())]) == (0, 0)
    with sqlite3.connect(atelier.database) as conn:
        (settled,) = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'").fetchone()
        (charges,) = conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'settle'").fetchone()
    assert charges == 3 and samples[("atelier_spend_microdollars_total", ())] == settled
