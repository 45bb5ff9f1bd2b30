"""Progress edits: throttled per job, showing the running state."""

from __future__ import annotations

import asyncio
import itertools

from bot.storage.rows import JobState
from tests.jobs.conftest import (
    HarnessFactory,
    make_config,
    make_request,
)


async def test_progress_is_shown_at_most_once_per_interval_per_job(harnesses: HarnessFactory) -> None:
    """Progress edits for one job are at least `progress_edit_seconds` apart, and show the running state."""
    harness = await harnesses.open(make_config(progress_edit_seconds=1.0))
    harness.fake.latency = 2.6
    admission = await harness.service.admit(make_request())
    await asyncio.wait_for(harness.service.wait_idle(), 10)

    calls = [call for call in harness.delivery.progress_calls if call[0] == admission.job_id]
    assert 1 <= len(calls) <= 3
    assert all(state is JobState.SUBMITTED and position is None for _, position, _, state, _ in calls)
    times = [call[4] for call in calls]
    assert all(later - earlier >= 0.99 for earlier, later in itertools.pairwise(times))
