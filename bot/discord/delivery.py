"""How a job's messages reach Discord: `DiscordDelivery` implements the job service's `Delivery` port.

One job has one place in the channel (contract §2 step 8):

- while its interaction token may be used (`bot.discord.tokens`: more than a minute of its 15 left), the
  interaction's original response is edited: the public "thinking…" placeholder becomes the status (queue position,
  then elapsed time, with a Cancel button), then the result or the failure, always in place. Editing the same message
  also makes a re-delivery after a crash harmless;
- once the token is too old, or Discord refused it, the result is a reply in the channel that mentions the requester
  (`bot.discord.posting`); progress is then not shown. Shortly before that, the status is handed over to the channel
  (`bot.discord.handover`), and from then on the result, the failure, and a cancellation once the status can no
  longer be edited, are that reply (the channel was promised a result).

Before anything is posted the bot's permissions in the channel are checked (`bot.discord.posting`). Edits of one
job's message are serialised, and once the result or the failure is shown no late progress edit can overwrite it
(`bot.discord.locks`). The words are in `bot.discord.statuses`, the result's card in `bot.discord.embeds`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import discord

from bot.clock import utc_now
from bot.discord.embeds import result_embed
from bot.discord.handover import Handover
from bot.discord.locks import JobLocks
from bot.discord.posting import ChannelPosts, message_url, uploads
from bot.discord.statuses import (
    CANCELLED_IN_CHANNEL,
    cancelled_text,
    canceller,
    failed_text,
    posting_text,
    queued_text,
    running_text,
)
from bot.discord.tokens import OriginalResponses
from bot.discord.views import result_view, status_view
from bot.images import FittedImage
from bot.jobs.delivery import DeliveryError, ResultSummary
from bot.jobs.requests import DeliveryTarget
from bot.storage.rows import Job, JobState

log = logging.getLogger(__name__)

FindJob = Callable[[str], Awaitable[Job | None]]
"""Looks a job up by id (the parent of an edit or reroll, for the link on its result's card)."""


class DiscordDelivery:
    """Posts results, progress and failures of jobs with discord.py (the job service's `Delivery`)."""

    def __init__(self, client: discord.Client, find_job: FindJob, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._find_job = find_job
        self._responses = OriginalResponses(client, clock=clock)
        self._channel = ChannelPosts(client)
        self._locks = JobLocks()
        self._handover = Handover(self._responses, self._locks)

    @property
    def clock(self) -> Callable[[], datetime]:
        """Decides whether a token is still fresh enough to use, and when a status is due for handover."""
        return self._responses.clock

    @clock.setter
    def clock(self, clock: Callable[[], datetime]) -> None:
        self._responses.clock = clock

    @property
    def handover_check_seconds(self) -> float:
        """How often the statuses on show are checked for handover."""
        return self._handover.check_seconds

    @handover_check_seconds.setter
    def handover_check_seconds(self, seconds: float) -> None:
        self._handover.check_seconds = seconds

    def close(self) -> None:
        """Stop watching the statuses on show and handing them over (when the bot shuts down)."""
        self._handover.close()

    # ----------------------------------------------------------------------------------------- the Delivery port

    async def deliver(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> int | None:
        """Post the images with their card and buttons; return the message id. `DeliveryError` if it cannot."""
        target = DeliveryTarget.from_job(job)
        embed = result_embed(summary, parent_url=await self._parent_url(job, summary, target))
        async with self._locks.lock(job.id):
            # The route is chosen here, under the lock and after every await before it: a handover or the token's
            # cutoff may have come meanwhile, and the permission check must be the one of the route taken.
            via_token = self._responses.usable(target) and not self._handover.handed_over(job.id)
            channel_id = target.channel_id or job.channel_id
            problem = self._channel.problem(job.guild_id, channel_id, channel_post=not via_token)
            if problem is not None:
                raise DeliveryError(problem)
            self._mark_final(job.id)
            edited = None
            if via_token:
                with uploads(job, images) as files:
                    edited = await self._responses.edit(
                        target,
                        content=None,
                        embed=embed,
                        attachments=files,
                        view=result_view(job.id),
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
            if edited is not None:
                return edited.id
            with uploads(job, images) as files:
                sent = await self._channel.post(job, target, content=f"<@{job.member_id}>", embed=embed, files=files)
            return sent.id

    async def progress(
        self, job: Job, position: int | None, elapsed_seconds: float, state: JobState, *, posting: bool = False
    ) -> None:
        """Show a job's queue position, elapsed time, or that its images are being posted (token path only).

        A job being posted can no longer be cancelled, so its status loses the Cancel button.
        """
        target = DeliveryTarget.from_job(job)
        if not self._responses.usable(target):
            return
        if posting:
            await self.show_status(job.id, target, posting_text(job.id, job.provider), cancellable=False)
            return
        if position is not None:
            text = queued_text(job.id, job.estimate, position)
        else:
            text = running_text(job.id, job.estimate, elapsed_seconds)
        await self.show_status(job.id, target, text)

    async def fail(self, job: Job, message: str) -> None:
        """Replace the job's status with why it failed (nothing was charged), or reply with it in the channel."""
        await self.notice(job, failed_text(job.member_id, message))

    async def notice(self, job: Job, text: str) -> None:
        """Replace the job's status with its last word (`text`), or reply with it in the channel."""
        target = DeliveryTarget.from_job(job)
        async with self._locks.lock(job.id):
            handed_over = self._mark_final(job.id)
            edited = None
            if not handed_over:
                edited = await self._responses.edit(
                    target,
                    content=text,
                    embed=None,
                    attachments=[],
                    view=None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            if edited is None:
                await self._channel.post(job, target, content=text)

    # ------------------------------------------------------------------------------------ status for the cogs

    async def show_status(self, job_id: str, target: DeliveryTarget, text: str, *, cancellable: bool = True) -> None:
        """Show a job's status, with its Cancel button if `cancellable`, unless its result or failure is there.

        Nothing is shown either once the job was handed over to the channel (its token is about to stop working).
        """
        async with self._locks.lock(job_id):
            if self._locks.is_final(job_id) or self._handover.handed_over(job_id):
                return
            try:
                edited = await self._responses.edit(
                    target,
                    content=text,
                    view=status_view(job_id) if cancellable else None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except (discord.HTTPException, DeliveryError) as exc:
                # Only a status: the job runs on, and its result or failure is what the member must see.
                log.info("status of job %s not shown: %s", job_id, exc)
                return
            if edited is None:
                return
            if cancellable:
                self._handover.watch(job_id, target)
            else:
                self._handover.unwatch(job_id)  # no Cancel button left to take off before the token runs out

    async def show_cancelled(self, job: Job, by_member_id: int, *, reply_if_not_shown: bool = True) -> bool:
        """Replace a cancelled job's status message with the cancellation; False if its token no longer works.

        Then (a status handed over to the channel, a reply edit, a deleted status) the cancellation is a reply in the
        channel, mentioning no one, unless `reply_if_not_shown` is False: the caller shows it on the status itself.
        """
        target = DeliveryTarget.from_job(job)
        who = canceller(by_member_id, job.member_id)
        async with self._locks.lock(job.id):
            self._mark_final(job.id)
            try:
                edited = await self._responses.edit(
                    target,
                    content=cancelled_text(job.id, who),
                    view=None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except (discord.HTTPException, DeliveryError) as exc:
                log.info("cancellation of job %s not shown: %s", job.id, exc)
                return False
            if edited is not None:
                return True
            if reply_if_not_shown:
                try:
                    await self._channel.post(
                        job,
                        target,
                        content=CANCELLED_IN_CHANNEL.format(job_id=job.id, who=who),
                        allowed_mentions=discord.AllowedMentions.none(),
                    )
                except (discord.HTTPException, DeliveryError) as exc:
                    log.info("cancellation of job %s not posted in the channel: %s", job.id, exc)
            return False

    async def delete_original(self, target: DeliveryTarget) -> None:
        """Delete an interaction's original response (a confirmation that led nowhere), if its token still works."""
        await self._responses.delete(target)

    async def show_text(self, target: DeliveryTarget, text: str) -> None:
        """Replace an interaction's original response with a line of text (no buttons), if its token still works."""
        try:
            await self._responses.edit(target, content=text, view=None, allowed_mentions=discord.AllowedMentions.none())
        except (discord.HTTPException, DeliveryError) as exc:
            log.info("could not update an original response: %s", exc)

    # ---------------------------------------------------------------------------------------------- internals

    def _mark_final(self, job_id: str) -> bool:
        """Record that the job's last word is being posted; return whether its status had been handed over."""
        handed_over = self._handover.finish(job_id)
        self._locks.mark_final(job_id)
        return handed_over

    async def _parent_url(self, job: Job, summary: ResultSummary, target: DeliveryTarget) -> str | None:
        """Link to what an edit or reroll started from: the parent job's result, else the edited message."""
        if summary.parent_job_id is not None:
            parent = await self._find_job(summary.parent_job_id)
            if parent is not None and parent.result_message_id is not None and parent.channel_id is not None:
                return message_url(parent.guild_id, parent.channel_id, parent.result_message_id)
        channel_id = target.channel_id or job.channel_id
        if target.source_message_id is not None and channel_id is not None:
            return message_url(job.guild_id, channel_id, target.source_message_id)
        return None
