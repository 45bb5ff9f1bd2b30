"""The words of a job's status message: queued, running, being posted, handed over, cancelled, failed.

Plain functions of plain values, so a cog and the delivery show the same text (and tests can assert it).
"""

from __future__ import annotations

from bot.money import format_usd

HANDED_OVER = (
    "⌛ Job `{job_id}` is still on its way. Discord lets me update this message for 15 minutes only, so the result "
    "will be posted as a reply in this channel when it is ready. The member who asked can still cancel it with "
    "`/queue`."
)
"""The last edit of a status whose token is about to stop being used (its Cancel button goes with it)."""

CANCELLED_IN_CHANNEL = "✖️ Job `{job_id}` was cancelled by {who}; nothing was charged, and no result will be posted."
"""The reply in the channel for a cancelled job whose status can no longer be edited (mentions no one)."""


def queued_text(job_id: str, estimate: int, position: int) -> str:
    """Status of a waiting job."""
    return f"⏳ Queued: position {position} · estimate ~{format_usd(estimate)} · job `{job_id}`"


def held_text(job_id: str, estimate: int) -> str:
    """Status of a request that waits for a moderator's approval (its estimate is reserved meanwhile)."""
    return (
        f"🛡️ Waiting for a moderator's approval · estimate ~{format_usd(estimate)} reserved · job `{job_id}`. "
        "You'll see it move on here once it is approved."
    )


def posting_text(job_id: str, provider: str = "runware") -> str:
    """Status of a job whose images are made and are being posted (it can no longer be cancelled)."""
    return f"📤 Done on {provider.capitalize()}; posting the images… · job `{job_id}`"


def running_text(job_id: str, estimate: int, elapsed_seconds: float | None = None) -> str:
    """Status of a running job."""
    elapsed = f" ({elapsed_seconds:.0f} s)" if elapsed_seconds is not None else ""
    return f"🎨 Generating…{elapsed} · estimate ~{format_usd(estimate)} · job `{job_id}`"


def canceller(by_member_id: int, requester_id: int) -> str:
    """Who cancelled a job, as a status says it: "its requester", or a mention of the member who did."""
    return "its requester" if by_member_id == requester_id else f"<@{by_member_id}>"


def cancelled_text(job_id: str, who: str) -> str:
    """Status of a cancelled job (`who` from `canceller`)."""
    return f"✖️ Cancelled by {who}; nothing was charged · job `{job_id}`"


def failed_text(member_id: int, reason: str) -> str:
    """Status (or channel reply) of a failed job: the requester's mention and why; nothing was charged."""
    return f"❌ <@{member_id}> {reason}"
