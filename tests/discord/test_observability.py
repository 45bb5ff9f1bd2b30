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
    assert samples[("atelier_provider_request_seconds_count", (("outcome", "ok"), ("task_type", "imageInference")))]
    with sqlite3.connect(atelier.database) as conn:
        (settled,) = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'settle'").fetchone()
    assert settled > 0
    assert samples[("atelier_spend_microdollars_total", ())] == settled
