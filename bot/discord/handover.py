"""Handing a job's status over to the channel before its interaction token stops being used.

While a token is fresh a job's status (queue position or elapsed time, with a Cancel button) is its interaction's
original response. Shortly before the token stops being used (`HANDOVER_LEAD` before `TOKEN_MARGIN`), the status gets
one last edit: its Cancel button goes (it could not be edited away later) and it says the result will come as a reply
in the channel and that `/queue` can still cancel the job. From then on the job's result, failure or cancellation is
a reply in the channel. Each status is handed over in its own task (at most `HANDOVER_CONCURRENCY` edits at once), so
one job's busy message does not hold up the others; a job counts as handed over only once that edit was made.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

import discord

from bot.discord.locks import JobLocks
from bot.discord.statuses import HANDED_OVER
from bot.discord.tokens import OriginalResponses, token_fresh
from bot.jobs.requests import DeliveryTarget

log = logging.getLogger(__name__)

HANDOVER_LEAD = timedelta(seconds=60)
"""How long before the token stops being used (a minute before it expires) a status is handed over to the channel:
room for a round of checks, a wait for the job's lock (a progress edit held up by a rate limit) and the edit."""

HANDOVER_CONCURRENCY = 8
"""Most handover edits in flight at once (each job's has its own task; the others wait for a turn)."""

HANDOVER_CHECK_SECONDS = 5.0
"""How often the statuses on show are checked for a token that is about to stop being used (well inside the lead)."""


class Handover:
    """Watches the statuses on show (with their Cancel button) and hands each over before its token stops working."""

    def __init__(self, responses: OriginalResponses, locks: JobLocks) -> None:
        self._responses = responses
        self._locks = locks
        self._statuses: dict[str, DeliveryTarget] = {}
        """Jobs whose status (with its Cancel button) is on show, to hand over before their token stops working."""
        self._handed_over: set[str] = set()
        """Jobs whose status was handed over: their result or failure is a reply in the channel."""
        self._watch: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        """Handovers under way, one task per job."""
        self._slots = asyncio.Semaphore(HANDOVER_CONCURRENCY)
        self.check_seconds = HANDOVER_CHECK_SECONDS
        """How often the statuses on show are checked (tests shorten it)."""

    def handed_over(self, job_id: str) -> bool:
        """Return True if the job's status was handed over (its last word is a reply in the channel)."""
        return job_id in self._handed_over

    def watch(self, job_id: str, target: DeliveryTarget) -> None:
        """Keep an eye on a status with a Cancel button, now on show; the caller holds the job's lock."""
        self._statuses[job_id] = target
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_statuses(), name="job-handover")

    def unwatch(self, job_id: str) -> None:
        """Stop watching a status that has no Cancel button left to take off before the token runs out."""
        self._statuses.pop(job_id, None)

    def finish(self, job_id: str) -> bool:
        """Forget a job whose last word is being posted; return whether its status had been handed over."""
        self._statuses.pop(job_id, None)
        handed_over = job_id in self._handed_over
        self._handed_over.discard(job_id)
        return handed_over

    def close(self) -> None:
        """Stop watching and cancel the handovers under way (when the bot shuts down)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()

    async def _watch_statuses(self) -> None:
        """Hand each status on show over to the channel shortly before its token stops being used.

        Each job is handed over in its own task: waiting for one job's lock (an upload, a progress edit held up by a
        rate limit) or for its edit never delays another job's handover.
        """
        while self._statuses or self._tasks:
            await asyncio.sleep(self.check_seconds)
            soon = self._responses.clock() + HANDOVER_LEAD
            for job_id, target in list(self._statuses.items()):
                if job_id in self._tasks or token_fresh(target, soon):
                    continue
                task = asyncio.get_running_loop().create_task(self._hand_over(job_id, target), name="job-handover")
                self._tasks[job_id] = task
                task.add_done_callback(partial(self._done, job_id))

    def _done(self, job_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(job_id) is task:
            del self._tasks[job_id]

    async def _hand_over(self, job_id: str, target: DeliveryTarget) -> None:
        """Take the Cancel button off a status whose token is about to stop working, and say where the result goes."""
        async with self._locks.lock(job_id):
            if job_id not in self._statuses or self._locks.is_final(job_id):
                return
            async with self._slots:
                try:
                    edited = await self._responses.edit(
                        target,
                        content=HANDED_OVER.format(job_id=job_id),
                        view=None,
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
                except Exception:
                    # Only a status: it stays on the watch list, so the next round tries again while the token lasts.
                    log.warning("status of job %s not handed over; trying again", job_id, exc_info=True)
                    return
            self._statuses.pop(job_id, None)
            if edited is None:
                # The token can no longer be used: the result or failure is a reply anyway, but the Cancel button stays.
                log.info("status of job %s not handed over: its interaction token can no longer be used", job_id)
                return
            self._handed_over.add(job_id)
