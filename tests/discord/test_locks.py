"""`JobLocks` remembers finished jobs for a while, and forgets the oldest first without walking the others."""

from __future__ import annotations

import asyncio

import pytest

import bot.discord.locks as locks
from bot.discord.locks import JobLocks


async def test_finished_jobs_are_forgotten_oldest_first_with_their_idle_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the memory, a job is no longer final and its idle lock is dropped; a lock still held is kept."""
    monkeypatch.setattr(locks, "FINAL_MEMORY_SECONDS", 0.05)
    jobs = JobLocks()
    old, held, recent = jobs.lock("old"), jobs.lock("held"), jobs.lock("recent")
    jobs.mark_final("old")
    jobs.mark_final("held")
    await held.acquire()
    await asyncio.sleep(0.1)
    jobs.mark_final("recent")
    assert not jobs.is_final("old")
    assert not jobs.is_final("held")
    assert jobs.is_final("recent")
    assert jobs.lock("old") is not old  # forgotten: a new lock
    assert jobs.lock("held") is held  # in use: kept
    assert jobs.lock("recent") is recent


async def test_a_job_marked_again_counts_from_its_latest_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    """Marking a job again moves it behind the others: one marked before it is forgotten first, it is not."""
    monkeypatch.setattr(locks, "FINAL_MEMORY_SECONDS", 0.15)
    jobs = JobLocks()
    jobs.mark_final("again")
    jobs.mark_final("other")
    await asyncio.sleep(0.1)
    jobs.mark_final("again")
    await asyncio.sleep(0.1)
    jobs.mark_final("trigger")
    assert not jobs.is_final("other")  # marked 0.2 s ago
    assert jobs.is_final("again")  # first marked 0.2 s ago, last 0.1 s ago
