"""The mod-log port: what the job service posts to a server's mod-log channel, implemented by the Discord wing.

`bot.discord.modlog.DiscordModLog` implements `ModLog` with discord.py and is handed to the job service by the
composition root (as `Delivery` is); the service decides *when* and with which plain values, the wing writes the words
and the buttons (Approve / Reject on a held request or a quarantined result, Delete on a logged generation).

Contract for implementations:
- `problem` says, without posting, why the server's mod-log cannot take a held request or a flagged result (not
  set, channel gone, a permission missing), or None when it can; a request in an approval or safety channel is
  refused with that sentence before anything is reserved.
- `held` and `quarantined` post the message with its buttons and return (channel id, message id); they raise
  `DeliveryError` when it cannot be posted. `quarantined` posts the images as spoilers and tells the requester that
  the result is held for review.
- `images` returns the image files of a quarantined result's mod-log message (empty if it is gone), the copy
  `publish` falls back to when Runware no longer serves them.
- `generated`, `refused`, `unsure` and `decided` are log lines: they must not raise for ordinary Discord failures,
  and do nothing when the server has no mod-log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from bot.images import FittedImage
from bot.jobs.delivery import DeliveryError, ResultSummary
from bot.moderation.errors import PromptBlockedError
from bot.storage.moderation import HoldRow
from bot.storage.rows import Job


class ModLog(Protocol):
    """Posts to a server's mod-log channel; implemented by the Discord wing."""

    async def problem(self, guild_id: int) -> str | None:
        """Why a held request could not be shown to moderators now; None when the mod-log can take it."""
        ...

    def serves(self, guild_id: int) -> bool:
        """Whether this process receives the server's events (its shard is among this process's, the server known).

        Only then can it tell whether the mod-log can take a post, so only then does it post one left over at start.
        """
        ...

    async def held(self, job: Job, expires_at: datetime) -> tuple[int, int]:
        """Post a held request with Approve / Reject; return (channel id, message id). `DeliveryError` if it cannot."""
        ...

    async def quarantined(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> tuple[int, int]:
        """Post a flagged result as spoilers with Approve / Reject and tell the requester it is held for review."""
        ...

    async def images(self, hold: HoldRow) -> Sequence[bytes]:
        """Return the image files attached to a quarantined result's mod-log message (empty if it is gone)."""
        ...

    async def generated(self, job: Job, summary: ResultSummary, message_id: int | None) -> None:
        """Log a delivered generation (with Delete, which removes the result message)."""
        ...

    async def refused(self, error: PromptBlockedError) -> None:
        """Log a request the blocklist refused."""
        ...

    async def decided(self, job: Job, hold: HoldRow) -> None:
        """Show on the hold's mod-log message how it was decided (approved, rejected, expired, cancelled)."""
        ...

    async def unsure(self, job: Job, charge: int, reason: str) -> None:
        """Log a job that made no image but was charged `charge`, as the provider may have been paid (`reason`)."""
        ...


class NoModLog:
    """A mod-log that is never set: holds are refused, log lines go nowhere (the job service's default)."""

    NOT_SET = "This channel's requests go past a moderator, but this server has no mod-log channel to show them in."

    async def problem(self, guild_id: int) -> str | None:
        """Return the sentence that the mod-log is not set."""
        return self.NOT_SET

    def serves(self, guild_id: int) -> bool:
        """One process serves every server (the refusal comes from `held`)."""
        return True

    async def held(self, job: Job, expires_at: datetime) -> tuple[int, int]:
        """Nowhere to post (admission refuses first, on `problem`): `DeliveryError`, as the contract says."""
        raise DeliveryError(self.NOT_SET)

    async def quarantined(self, job: Job, images: Sequence[FittedImage], summary: ResultSummary) -> tuple[int, int]:
        """Nowhere to post (admission refuses first, on `problem`): `DeliveryError`, as the contract says."""
        raise DeliveryError(self.NOT_SET)

    async def images(self, hold: HoldRow) -> Sequence[bytes]:
        """Nothing was posted: no images."""
        return []

    async def generated(self, job: Job, summary: ResultSummary, message_id: int | None) -> None:
        """Nothing to log to."""

    async def refused(self, error: PromptBlockedError) -> None:
        """Nothing to log to."""

    async def decided(self, job: Job, hold: HoldRow) -> None:
        """Nothing to log to."""

    async def unsure(self, job: Job, charge: int, reason: str) -> None:
        """Nothing to log to."""
