"""The port through which jobs reach members: post results, show progress, report failures.

`Delivery` is implemented by the Discord wing (`bot.discord.delivery`, with discord.py) and handed to the job service
by the composition root; the service only calls it. The wing decides *how* to post (edit the original interaction
response while its token may still be used, else a reply in the channel, see `DeliveryTarget`); the service decides
*when*, and what the post must say (`ResultSummary`).

Contract for implementations:
- `deliver` posts every image and returns the message id (or None if it cannot know it). It raises `DeliveryError`
  when the result cannot be posted where it was asked (missing Attach Files / Embed Links permission, channel gone);
  the job then fails, its reservation is released, and `fail` is called with the error's reason. Any other
  exception is treated the same way with a generic reason. Only after `deliver` returns is the member charged.
- `deliver` may be called a second time for the same job after a crash (`ResultSummary.redelivery`): the process
  may have died after posting but before recording it. Editing the original response (same message) keeps that
  idempotent while the interaction token is valid.
- `progress` is called at most once per `limits.progress_edit_seconds` per job; it must be cheap and must not
  raise for ordinary Discord failures (they are logged and ignored anyway).
- `fail` tells the member why nothing was produced; nothing was charged when it is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.catalog import ModelName, Quality, Size
from bot.errors import AtelierError
from bot.images import FittedImage
from bot.jobs.requests import RequestKind
from bot.storage.rows import Job, JobState


class DeliveryError(AtelierError):
    """The result cannot be posted where it was asked; `str()` is the reason shown to the member.

    Example: "I can't attach files in this channel; ask an admin to give me the Attach Files permission."
    """


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What the result's embed shows, in plain values (amounts in micro-dollars)."""

    job_id: str
    kind: RequestKind
    requester_id: int
    prompt: str
    model: ModelName
    size: Size
    quality: Quality
    count: int
    """Images requested."""
    image_count: int
    """Images delivered (fewer than `count` when Runware finished only some of them)."""
    cost: int
    """What the member is charged: Runware's reported cost; without one, the estimate's share for the images made."""
    cost_reported: bool
    estimate: int
    remaining: int | None
    """The member's budget left after this charge; None for an unlimited member."""
    resets_at: datetime | None
    parent_job_id: str | None
    redelivery: bool
    """True when the job is being delivered again after a restart (it may already have been posted once)."""
    provider: str = "runware"
    """The provider that made the images (a `bot.catalog.ProviderName` value)."""
    unsure_images: int = 0
    """Images not delivered but charged, as the provider may have made and billed them (a lost Runbase create)."""

    @classmethod
    def of_job(
        cls,
        job: Job,
        *,
        image_count: int,
        cost: int,
        cost_reported: bool,
        remaining: int | None = None,
        resets_at: datetime | None = None,
        redelivery: bool = False,
    ) -> ResultSummary:
        """Describe a stored job's result: its request from the row, the rest as given."""
        kind = job.extras.get("kind", RequestKind.IMAGINE.value)
        return cls(
            job_id=job.id,
            kind=RequestKind(kind) if kind in RequestKind.__members__.values() else RequestKind.IMAGINE,
            requester_id=job.member_id,
            prompt=job.prompt,
            model=job.model,
            size=job.size,
            quality=job.quality,
            count=job.count,
            image_count=image_count,
            cost=cost,
            cost_reported=cost_reported,
            estimate=job.estimate,
            remaining=remaining,
            resets_at=resets_at,
            parent_job_id=job.parent_job_id,
            redelivery=redelivery,
            provider=job.provider,
        )


class Delivery(Protocol):
    """Posts results and progress to members; implemented by the Discord wing."""

    async def deliver(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> int | None:
        """Post the images with the summary; return the message id. Raise `DeliveryError` if it cannot be posted."""
        ...

    async def progress(
        self, job: Job, position: int | None, elapsed_seconds: float, state: JobState, *, posting: bool = False
    ) -> None:
        """Show a queued job's position (1-based) or a running job's elapsed time (`position` None).

        `posting`: the images are made and are being posted; the job can no longer be cancelled.
        """
        ...

    async def fail(self, job: Job, message: str) -> None:
        """Tell the member the job failed and why; nothing was charged."""
        ...
