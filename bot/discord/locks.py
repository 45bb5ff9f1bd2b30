"""One job's message is edited by one task at a time, and never again once its last word is shown.

`JobLocks` hands out a lock per job (its status edits, its handover, its result or failure take turns) and remembers
for `FINAL_MEMORY_SECONDS` which jobs already show their result, failure or cancellation, so that no late progress
edit overwrites it.
"""

from __future__ import annotations

import asyncio

FINAL_MEMORY_SECONDS = 20 * 60.0
"""How long a job is remembered as finished (its message must not be overwritten); longer than a token lives."""


class JobLocks:
    """A lock per job's message, and the jobs whose last word is shown (forgotten after `FINAL_MEMORY_SECONDS`)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._final: dict[str, float] = {}
        """Finished jobs, with the event-loop time they finished."""

    def lock(self, job_id: str) -> asyncio.Lock:
        """Return the lock that serialises edits of one job's message."""
        lock = self._locks.get(job_id)
        if lock is None:
            lock = self._locks[job_id] = asyncio.Lock()
        return lock

    def is_final(self, job_id: str) -> bool:
        """Return True once the job's result, failure or cancellation is (being) shown."""
        return job_id in self._final

    def mark_final(self, job_id: str) -> None:
        """Record that the job's last word is being posted; forget finished jobs (and idle locks) of long ago."""
        now = asyncio.get_running_loop().time()
        final = self._final
        final.pop(job_id, None)  # re-inserted last: the dict stays in the order the jobs finished
        final[job_id] = now
        # The oldest come first, so only the stale ones are looked at (not every job finished in the last 20 min).
        while True:
            stale = next(iter(final))
            if now - final[stale] <= FINAL_MEMORY_SECONDS:
                break
            del final[stale]
            lock = self._locks.get(stale)
            if lock is not None and not lock.locked():
                del self._locks[stale]
