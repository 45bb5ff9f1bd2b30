"""How the member who made a request hears about it while it is admitted: the words, and where they go.

`Answer` is what the request flow needs (`RequestFlow.submit`): ask whether to go ahead, say the question expired,
explain a duplicate, show that the job started. `InteractionAnswer` answers in the interaction, whose public
placeholder becomes the question or the job's status; `cogs.generation.edit.ReplyAnswer` answers a reply edit in
the channel.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

import discord

from bot.billing.outcomes import AllowanceWarning
from bot.clock import utc_now
from bot.discord.delivery import DiscordDelivery
from bot.discord.statuses import held_text, queued_text, running_text
from bot.discord.tree import mark_answered, send_ephemeral
from bot.discord.views import CONFIRM_TIMEOUT_SECONDS
from bot.jobs.requests import DeliveryTarget
from bot.jobs.service import Admission
from bot.money import format_usd

DUPLICATE = (
    "You asked for exactly this a moment ago (job `{job_id}`), so it is not run or charged a second time; "
    "its images appear with that request."
)
EXPIRED = "⌛ This confirmation has expired; nothing was charged. Run the command again if you still want it."
ABORTED = "✖️ Cancelled; nothing was charged."


def confirm_text(requester_id: int, admission: Admission) -> str:
    """Word the question shown before an expensive request starts (`admission` needs confirmation)."""
    estimate, threshold = admission.estimate, admission.threshold or 0
    expires = discord.utils.format_dt(utc_now() + timedelta(seconds=CONFIRM_TIMEOUT_SECONDS), "R")
    return (
        f"💸 <@{requester_id}>, this will cost about **{format_usd(estimate)}**, more than this server's "
        f"confirmation threshold of {format_usd(threshold)}. Nothing is reserved until you confirm "
        f"(this question expires {expires})."
    )


def warning_text(warning: AllowanceWarning) -> str:
    """Word the once-per-period notice that a member has used most of their allowance."""
    percent = warning.used * 100 // warning.allowance if warning.allowance else 100
    resets = discord.utils.format_dt(warning.resets_at, "R")
    return (
        f"⚠️ Heads-up: with this request you have used {format_usd(warning.used)} of your "
        f"{format_usd(warning.allowance)} allowance ({percent}%); it resets {resets}. "
        "You will not be told again this period."
    )


def status_text(admission: Admission) -> str:
    """Word a job's status message right after admission."""
    assert admission.job_id is not None
    if admission.held:
        return held_text(admission.job_id, admission.estimate)
    if admission.position is not None:
        return queued_text(admission.job_id, admission.estimate, admission.position)
    return running_text(admission.job_id, admission.estimate)


class Answer(Protocol):
    """How the member who made a request is answered while it is admitted."""

    requester_id: int

    async def ask(self, text: str, view: discord.ui.View) -> None:
        """Show the question whether to go ahead, with Confirm and Cancel."""
        ...

    async def expired(self) -> None:
        """Say that the question was not answered in time."""
        ...

    async def duplicate(self, text: str) -> None:
        """Explain that the same request was made a moment ago."""
        ...

    async def started(self, admission: Admission) -> None:
        """Show that the job is queued or running."""
        ...


class InteractionAnswer:
    """Answers in the interaction: its public placeholder becomes the question or the job's status."""

    def __init__(
        self, interaction: discord.Interaction[Any], delivery: DiscordDelivery, target: DeliveryTarget
    ) -> None:
        self._interaction = interaction
        self._delivery = delivery
        self._target = target
        self.requester_id = interaction.user.id

    async def ask(self, text: str, view: discord.ui.View) -> None:
        """Turn the placeholder into the question."""
        mark_answered(self._interaction)
        await self._interaction.edit_original_response(
            content=text, view=view, allowed_mentions=discord.AllowedMentions.none()
        )

    async def expired(self) -> None:
        """Replace the question with the expiry notice."""
        await self._delivery.show_text(self._target, EXPIRED)

    async def duplicate(self, text: str) -> None:
        """Tell only the member (the public placeholder is removed)."""
        await send_ephemeral(self._interaction, text)

    async def started(self, admission: Admission) -> None:
        """Turn the placeholder into the job's status if it is due now; a first pass of 80% is told privately.

        Otherwise "thinking…" stays and the progress loop shows the status after `limits.status_after_seconds`.
        """
        assert admission.job_id is not None
        mark_answered(self._interaction)
        if admission.status_now:
            await self._delivery.show_status(admission.job_id, self._target, status_text(admission))
        if admission.warning is not None:
            await send_ephemeral(self._interaction, warning_text(admission.warning))
