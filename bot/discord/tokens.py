"""Discord's interaction tokens: how long one is used, and editing an interaction's original response with it.

A token lives `TOKEN_LIFETIME` (15 minutes); the bot stops using it `TOKEN_MARGIN` (a minute) before that, so a
slow edit never meets an expired token. A token Discord refused (401, 50027, 10015, 10062) or whose original
response was deleted (10008) is remembered as dead and never tried again: invalid requests count towards Discord's
Cloudflare ban. `OriginalResponses` owns that rule; `delivery_target` records a new interaction's token for a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final, cast

import discord

from bot.clock import utc_now
from bot.discord.posting import ATTACH_FILES_MISSING, SEND_MISSING
from bot.jobs.delivery import DeliveryError
from bot.jobs.requests import DeliveryTarget

log = logging.getLogger(__name__)

TOKEN_LIFETIME = timedelta(minutes=15)
"""How long Discord accepts an interaction token for follow-ups and edits."""

TOKEN_MARGIN = timedelta(minutes=1)
"""How long before its expiry a token stops being used (then a job's messages are replies in the channel)."""

ORIGINAL: Final = cast(int, "@original")
"""Discord's path segment for an interaction's original response. discord.py's `Webhook.edit_message` puts the id
into the route as text, so the documented `…/messages/@original` endpoint is reached through the public API; it is
the one route that works for every kind of original response (a deferred reply, or the message a button is on)."""

TOKEN_GONE_CODES = frozenset({50027, 10015, 10062, 10008})
"""Invalid webhook token, unknown webhook, unknown interaction, unknown message (the original was deleted)."""
MISSING_PERMISSIONS = 50013


def token_fresh(target: DeliveryTarget, at: datetime) -> bool:
    """Return True if the target's token may still be used at `at`: more than `TOKEN_MARGIN` left of its life."""
    if target.interaction_token is None or target.token_expires_at is None:
        return False
    return target.token_expires_at - at > TOKEN_MARGIN


def delivery_target(
    interaction: discord.Interaction[Any],
    *,
    reply_to_message_id: int | None = None,
    source_message_id: int | None = None,
) -> DeliveryTarget:
    """Describe where an interaction's job is delivered: its original response while the token lives, else a reply.

    `reply_to_message_id` is what a late result replies to (the request's response message, or a member's message);
    `source_message_id` is the message whose images are edited.
    """
    return DeliveryTarget(
        channel_id=interaction.channel_id,
        application_id=interaction.application_id,
        interaction_token=interaction.token,
        token_expires_at=interaction.created_at + TOKEN_LIFETIME,
        reply_to_message_id=reply_to_message_id,
        attachment_size_limit=interaction.filesize_limit,
        source_message_id=source_message_id,
        channel_parents=channel_parents(interaction.channel),
    )


def channel_parents(channel: object) -> tuple[int, ...]:
    """Return what encloses a channel, innermost first: a thread's parent channel and its category, or the category.

    Unknown parents (a thread whose parent is not cached has no known category) are left out.
    """
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        category_id = getattr(parent, "category_id", None) if parent is not None else None
        return tuple(place for place in (channel.parent_id, category_id) if place is not None)
    category_id = getattr(channel, "category_id", None)
    return (category_id,) if isinstance(category_id, int) else ()


class OriginalResponses:
    """Edits and deletes interactions' original responses through their tokens, while a token may be used."""

    def __init__(self, client: discord.Client, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._client = client
        self.clock = clock
        """Decides whether a token is still fresh enough to use (`TOKEN_MARGIN` before its `TOKEN_LIFETIME`)."""
        self._dead: dict[str, datetime | None] = {}
        """Tokens Discord refused, with when they would have expired anyway (then they are forgotten)."""

    def usable(self, target: DeliveryTarget) -> bool:
        """Return True if the target's original response can be edited now: a token, fresh, not refused before."""
        return (
            target.application_id is not None
            and target.interaction_token is not None
            and target.interaction_token not in self._dead
            and token_fresh(target, self.clock())
        )

    async def edit(self, target: DeliveryTarget, **fields: Any) -> discord.WebhookMessage | None:
        """Edit the original response; None when the token can no longer be used (then nothing was changed).

        `DeliveryError` if Discord says the bot lacks a permission; other `HTTPException`s propagate.
        """
        if not self.usable(target):
            return None
        assert target.application_id is not None and target.interaction_token is not None
        webhook = discord.Webhook.partial(target.application_id, target.interaction_token, client=self._client)
        try:
            return await webhook.edit_message(ORIGINAL, **fields)
        except discord.HTTPException as exc:
            if exc.status == 401 or exc.code in TOKEN_GONE_CODES:
                self._bury(target)
                log.info("interaction token of channel %s is no longer usable (%s)", target.channel_id, exc.text)
                return None
            if exc.code == MISSING_PERMISSIONS:
                raise DeliveryError(ATTACH_FILES_MISSING if fields.get("attachments") else SEND_MISSING) from exc
            raise

    async def delete(self, target: DeliveryTarget) -> None:
        """Delete the original response (a confirmation that led nowhere), if the token can still be used."""
        if not self.usable(target):
            return
        assert target.application_id is not None and target.interaction_token is not None
        webhook = discord.Webhook.partial(target.application_id, target.interaction_token, client=self._client)
        try:
            await webhook.delete_message(ORIGINAL)
        except discord.HTTPException as exc:
            log.info("could not delete an original response: %s", exc)

    def _bury(self, target: DeliveryTarget) -> None:
        """Remember a refused token until it would have expired anyway; forget those whose time is past."""
        assert target.interaction_token is not None
        now = self.clock()
        for token, expires in list(self._dead.items()):
            if expires is None or expires < now:
                del self._dead[token]
        self._dead[target.interaction_token] = target.token_expires_at
