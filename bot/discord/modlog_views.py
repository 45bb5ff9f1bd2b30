"""The mod-log's buttons and the reject modal, and what a click does.

`atelier:mod:<action>:<job id>`: `approve` / `reject` on a held request, `publish` / `discard` on a quarantined
result, `delete` on a logged generation. The custom id carries everything, so the buttons work after a restart
(`bind_modlog_buttons` returns the dynamic item the settings extension registers). Every click is acknowledged first
(a deferred ephemeral answer, or the reason modal for a rejection), then the clicker's right to decide is checked
again: Manage Server, Manage Messages, or the server's moderator role (`/settings moderators`). Anyone else gets an
ephemeral refusal and nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any, ClassVar

import discord

from bot.discord.tree import report_error, send_ephemeral
from bot.discord.views import guarded
from bot.jobs.service import GenerationService
from bot.moderation.approvals import ModerationRules

log = logging.getLogger(__name__)

MODLOG_CLICK = r"atelier:mod:(?P<action>approve|reject|publish|discard|delete):(?P<key>[0-9a-z]{1,64})"
"""The custom id of a mod-log button."""

NOT_A_MODERATOR = "Only moderators (the moderator role or Manage Messages) and Manage Server can decide this."
REASON_CHARS = 500


class _Button(discord.ui.Button[Any]):
    """A posted mod-log button; its clicks are matched by the dynamic item from `bind_modlog_buttons`."""

    def is_dispatchable(self) -> bool:
        """Never dispatched through its view."""
        return False


def _view(*buttons: tuple[str, str, discord.ButtonStyle]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for custom_id, label, style in buttons:
        view.add_item(_Button(custom_id=custom_id, label=label, style=style))
    return view


def held_view(job_id: str) -> discord.ui.View:
    """Approve (queue it) and Reject (release it) for a held request."""
    return _view(
        (f"atelier:mod:approve:{job_id}", "Approve", discord.ButtonStyle.success),
        (f"atelier:mod:reject:{job_id}", "Reject", discord.ButtonStyle.danger),
    )


def quarantine_view(job_id: str) -> discord.ui.View:
    """Approve (post it in the channel) and Reject (discard it) for a quarantined result."""
    return _view(
        (f"atelier:mod:publish:{job_id}", "Approve", discord.ButtonStyle.success),
        (f"atelier:mod:discard:{job_id}", "Reject", discord.ButtonStyle.danger),
    )


def logged_view(job_id: str) -> discord.ui.View:
    """Delete, which removes a logged generation's result message."""
    return _view((f"atelier:mod:delete:{job_id}", "Delete", discord.ButtonStyle.danger))


class ReasonModal(discord.ui.Modal):
    """Asks for an optional reason for a rejection; the submission carries out the rejection."""

    def __init__(self, clicks: ModLogClicks, action: str, job_id: str) -> None:
        super().__init__(title="Reject", timeout=15 * 60)
        self._clicks, self._action, self._job_id = clicks, action, job_id
        self.reason: discord.ui.TextInput[ReasonModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, required=False, max_length=REASON_CHARS
        )
        self.add_item(
            discord.ui.Label(text="Reason (optional)", description="Shown to the requester.", component=self.reason)
        )

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        """Reject with the reason (acknowledged first inside)."""
        await guarded(interaction, self._clicks.decide(interaction, self._action, self._job_id, self.reason.value))

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:  # type: ignore[override]
        """Tell the moderator what went wrong."""
        await report_error(interaction, error)


class ModLogClicks:
    """What the mod-log's buttons do, for moderators only."""

    def __init__(self, service: GenerationService, rules: ModerationRules, client: discord.Client) -> None:
        self._service = service
        self._rules = rules
        self._client = client

    async def may_decide(self, interaction: discord.Interaction[Any]) -> bool:
        """Manage Server, Manage Messages, or the moderator role (checked on every click)."""
        permissions = interaction.permissions
        if permissions.manage_guild or permissions.manage_messages or permissions.administrator:
            return True
        if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
            return False
        role_id = (await self._rules.settings(interaction.guild_id)).moderator_role_id
        return role_id is not None and any(role.id == role_id for role in interaction.user.roles)

    async def click(self, interaction: discord.Interaction[Any], action: str, job_id: str) -> None:
        """Handle a click: Reject opens the reason modal; the others are carried out at once."""
        if action in ("reject", "discard"):
            await interaction.response.send_modal(ReasonModal(self, action, job_id))  # the acknowledgement
            return
        await self.decide(interaction, action, job_id, None)

    async def decide(self, interaction: discord.Interaction[Any], action: str, job_id: str, reason: str | None) -> None:
        """Acknowledge, check the clicker, then approve, reject, publish, discard or delete."""
        await interaction.response.defer(ephemeral=True, thinking=True)  # acknowledge before any database work
        if not await self.may_decide(interaction):
            await send_ephemeral(interaction, NOT_A_MODERATOR)
            return
        approvals = self._service.approvals
        moderator = interaction.user.id
        if action == "approve":
            await approvals.approve(job_id, moderator)
            answer = f"✅ Approved job `{job_id}`; it is queued."
        elif action == "reject":
            await approvals.reject(job_id, moderator, reason)
            answer = f"✖️ Rejected job `{job_id}`; its hold was released and the requester told."
        elif action == "publish":
            await approvals.publish(job_id, moderator)
            answer = f"✅ Posted the result of job `{job_id}` in its channel."
        elif action == "discard":
            await approvals.discard(job_id, moderator, reason)
            answer = f"✖️ The result of job `{job_id}` will not be posted."
        else:
            answer = await self._delete(interaction, job_id)
        await send_ephemeral(interaction, answer)

    async def _delete(self, interaction: discord.Interaction[Any], job_id: str) -> str:
        job = await self._service.get_job(job_id)
        if job is None or job.result_message_id is None or job.channel_id is None:
            return "That result is not posted anywhere I know of."
        message = self._client.get_partial_messageable(job.channel_id, guild_id=job.guild_id).get_partial_message(
            job.result_message_id
        )
        with contextlib.suppress(discord.NotFound):  # already gone
            await message.delete()
        log.info("result of job %s deleted from the mod-log by %s", job_id, interaction.user.id)
        if interaction.message is not None:
            try:
                await interaction.message.edit(
                    content=f"🗑️ Result deleted by <@{interaction.user.id}>.",
                    view=None,
                    allowed_mentions=discord.AllowedMentions.none(),
                )
            except discord.HTTPException as exc:
                log.info("mod-log entry of job %s not updated: %s", job_id, exc)
        return f"🗑️ Deleted the result of job `{job_id}`."


class _ModLogClick(discord.ui.DynamicItem[discord.ui.Button[Any]], template=MODLOG_CLICK):
    """A click on a mod-log button, rebuilt from its custom id."""

    clicks: ClassVar[ModLogClicks]

    def __init__(self, item: discord.ui.Button[Any], action: str, key: str) -> None:
        super().__init__(item)
        self.action = action
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> _ModLogClick:
        """Rebuild the click from the custom id (no I/O)."""
        assert isinstance(item, discord.ui.Button)
        return cls(item, match["action"], match["key"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to `ModLogClicks`."""
        await guarded(interaction, self.clicks.click(interaction, self.action, self.key))


def bind_modlog_buttons(clicks: ModLogClicks) -> type[discord.ui.DynamicItem[discord.ui.Button[Any]]]:
    """Return the dynamic item that hands every mod-log click to `clicks` (also on messages from before a restart)."""

    class ModLogClick(_ModLogClick, template=MODLOG_CLICK):
        """Approve, Reject or Delete in the mod-log."""

    ModLogClick.clicks = clicks
    return ModLogClick
