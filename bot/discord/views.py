"""Buttons and the modal of Atelier's messages: results, job status, confirmations and `/queue`.

Every button is a `discord.ui.DynamicItem` whose `custom_id` carries what it acts on (`atelier:reroll:<job id>`,
`atelier:confirm:<nonce>`, …), so buttons keep working after a restart without remembering any message: discord.py
matches the id against each template and rebuilds the button from it. The buttons only parse their id; the work is
done by the cog registered as `JOB_ACTIONS_COG` (see `JobActions`), which each callback looks up on the bot.

A confirmation is the one thing kept in memory (`Confirmations`): a request above the server's threshold waits for
its requester's click for `CONFIRM_TIMEOUT_SECONDS`. After a restart its buttons answer that it expired.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import discord
from discord.ext import commands

from bot.discord.tree import accept_interaction, report_error
from bot.jobs.requests import DeliveryTarget
from bot.jobs.service import Admission

log = logging.getLogger(__name__)

JOB_ACTIONS_COG = "Generate"
"""Name of the cog that carries out what the buttons ask for."""

CONFIRM_TIMEOUT_SECONDS = 10 * 60.0
"""How long a confirmation waits for its click; well inside the 15 minutes its interaction token lives."""

MODAL_TIMEOUT_SECONDS = 15 * 60.0
"""How long an opened "describe the change" modal is kept for its submission."""

MAX_CHANGE_CHARS = 4000
"""Discord's limit on a modal text input."""

MAX_QUEUE_BUTTONS = 20
"""Cancel buttons on one `/queue` answer (4 rows of 5; Discord allows 5 rows and 40 components)."""

_JOB_ID = r"(?P<job_id>[0-9a-z]{1,64})"
_NONCE = r"(?P<nonce>[0-9a-f]{16})"


@runtime_checkable
class JobActions(Protocol):
    """What the buttons ask for; implemented by the generation cog (`JOB_ACTIONS_COG`)."""

    async def reroll(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Run the job's request again for the member who clicked."""
        ...

    async def open_edit(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Open the modal that asks how to change the job's images (sending the modal is the acknowledgement)."""
        ...

    async def delete_result(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Delete the result message, for its requester or a member with Manage Messages."""
        ...

    async def cancel_job(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Cancel a queued or running job and release its hold."""
        ...

    async def confirm(self, interaction: discord.Interaction[Any], nonce: str) -> None:
        """Start the request waiting for confirmation under `nonce`."""
        ...

    async def abort(self, interaction: discord.Interaction[Any], nonce: str) -> None:
        """Drop the request waiting for confirmation under `nonce`."""
        ...


def actions_of(interaction: discord.Interaction[Any]) -> JobActions:
    """Return the cog that handles the buttons; it is loaded whenever these buttons exist."""
    client = interaction.client
    cog = client.get_cog(JOB_ACTIONS_COG) if isinstance(client, commands.Bot) else None
    if not isinstance(cog, JobActions):
        raise RuntimeError(f"the {JOB_ACTIONS_COG} cog is not loaded; its buttons cannot be handled")
    return cog


async def guarded(interaction: discord.Interaction[Any], action: Coroutine[Any, Any, None]) -> None:
    """Run a button's action unless the bot is shutting down; report any error the way the command tree does.

    discord.py only logs exceptions from dynamic items and modals, so without this the user would see nothing.
    """
    if not await accept_interaction(interaction):
        action.close()  # never started: the user was told to try again
        return
    try:
        await action
    except Exception as exc:
        await report_error(interaction, exc)


class _JobButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"atelier:job:" + _JOB_ID):
    """Common parts of the buttons that act on a job; subclasses set their own template, label and style."""

    action: str = "job"
    label: str = "Job"
    emoji: str | None = None
    style: discord.ButtonStyle = discord.ButtonStyle.secondary

    def __init__(self, job_id: str, *, label: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or self.label,
                emoji=self.emoji,
                style=self.style,
                custom_id=f"atelier:{self.action}:{job_id}",
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> _JobButton:
        """Rebuild the button from its custom id (no I/O: the 3-second acknowledgement clock is running)."""
        button = item if isinstance(item, discord.ui.Button) else None
        return cls(match["job_id"], label=button.label if button is not None else None)


class RerollButton(_JobButton, template=r"atelier:reroll:" + _JOB_ID):
    """Reroll: the same request again, paid by whoever clicks."""

    action = "reroll"
    label = "Reroll"
    emoji = "🎲"

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog."""
        await guarded(interaction, actions_of(interaction).reroll(interaction, self.job_id))


class EditButton(_JobButton, template=r"atelier:edit:" + _JOB_ID):
    """Edit: a modal asks for the change; this result becomes the reference."""

    action = "edit"
    label = "Edit"
    emoji = "✏️"

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog (which answers with the modal at once)."""
        await guarded(interaction, actions_of(interaction).open_edit(interaction, self.job_id))


class DeleteButton(_JobButton, template=r"atelier:delete:" + _JOB_ID):
    """Delete: removes the result, for its requester or anyone with Manage Messages."""

    action = "delete"
    label = "Delete"
    emoji = "🗑️"
    style = discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog."""
        await guarded(interaction, actions_of(interaction).delete_result(interaction, self.job_id))


class CancelJobButton(_JobButton, template=r"atelier:cancel:" + _JOB_ID):
    """Cancel a queued or running job (on its status message and in `/queue`); its hold is released."""

    action = "cancel"
    label = "Cancel"
    emoji = "✖️"
    style = discord.ButtonStyle.danger

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog."""
        await guarded(interaction, actions_of(interaction).cancel_job(interaction, self.job_id))


class _NonceButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"atelier:nonce:" + _NONCE):
    """Common parts of Confirm and Cancel on a confirmation; the nonce names the waiting request."""

    action: str = "nonce"
    label: str = "Nonce"
    style: discord.ButtonStyle = discord.ButtonStyle.secondary

    def __init__(self, nonce: str) -> None:
        super().__init__(
            discord.ui.Button(label=self.label, style=self.style, custom_id=f"atelier:{self.action}:{nonce}")
        )
        self.nonce = nonce

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> _NonceButton:
        """Rebuild the button from its custom id."""
        return cls(match["nonce"])


class ConfirmButton(_NonceButton, template=r"atelier:confirm:" + _NONCE):
    """Confirm: start the request and reserve its estimate."""

    action = "confirm"
    label = "Confirm"
    style = discord.ButtonStyle.success

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog."""
        await guarded(interaction, actions_of(interaction).confirm(interaction, self.nonce))


class AbortButton(_NonceButton, template=r"atelier:abort:" + _NONCE):
    """Cancel a request that waits for confirmation; nothing was reserved."""

    action = "abort"
    label = "Cancel"
    style = discord.ButtonStyle.secondary

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the generation cog."""
        await guarded(interaction, actions_of(interaction).abort(interaction, self.nonce))


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    RerollButton,
    EditButton,
    DeleteButton,
    CancelJobButton,
    ConfirmButton,
    AbortButton,
)
"""Every button template; `discord.Client.add_dynamic_items(*DYNAMIC_ITEMS)` makes old buttons work after a restart."""


def _view(*items: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def result_view(job_id: str) -> discord.ui.View:
    """Reroll, Edit and Delete for a posted result."""
    return _view(RerollButton(job_id), EditButton(job_id), DeleteButton(job_id))


def status_view(job_id: str) -> discord.ui.View:
    """Cancel, for a job's status message while it waits or runs."""
    return _view(CancelJobButton(job_id))


def confirm_view(nonce: str) -> discord.ui.View:
    """Confirm and Cancel for a request above the confirmation threshold."""
    return _view(ConfirmButton(nonce), AbortButton(nonce))


def queue_view(job_ids: Sequence[str]) -> discord.ui.View | None:
    """One Cancel button per listed job (at most `MAX_QUEUE_BUTTONS`), or None when there is nothing to cancel."""
    if not job_ids:
        return None
    return _view(*(CancelJobButton(job_id, label=f"Cancel {job_id}") for job_id in job_ids[:MAX_QUEUE_BUTTONS]))


OnChange = Callable[[discord.Interaction[Any], str], Awaitable[None]]


class ChangeModal(discord.ui.Modal):
    """Asks what should change in the images (one labelled text input); `on_change` gets the submission."""

    def __init__(self, *, title: str, on_change: OnChange) -> None:
        super().__init__(title=title[:45], timeout=MODAL_TIMEOUT_SECONDS)
        self._on_change = on_change
        self.change: discord.ui.TextInput[ChangeModal] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph,
            min_length=1,
            max_length=MAX_CHANGE_CHARS,
            placeholder="e.g. make the sky stormy and add a lighthouse on the cliff",
        )
        self.add_item(
            discord.ui.Label(
                text="What should change?",
                description="Describe the edit; the images are the starting point.",
                component=self.change,
            )
        )

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        """Pass the text to the handler, which acknowledges first (unless the bot is shutting down)."""
        if await accept_interaction(interaction):
            await self._on_change(interaction, self.change.value)

    # discord.py's own Modal.on_error has this signature; its base class declares one more argument.
    async def on_error(self, interaction: discord.Interaction[Any], error: Exception, /) -> None:  # type: ignore[override]
        """Tell the user what went wrong, as the command tree would."""
        await report_error(interaction, error)


# ------------------------------------------------------------------------------------------------ confirmations


@dataclass(slots=True)
class PendingConfirmation:
    """A request that waits for its requester to confirm the estimate; nothing is reserved meanwhile."""

    requester_id: int
    estimate: int
    target: DeliveryTarget
    """Where the request would be delivered; a Confirm click replaces its token with the click's own."""
    admit: Callable[[DeliveryTarget], Awaitable[Admission]]
    """Admits the request as confirmed, delivering to the given target."""
    on_expiry: Callable[[], Coroutine[Any, Any, None]]
    """Tells the channel the request was not confirmed in time."""
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Confirmations:
    """Requests waiting for a Confirm click, by nonce; each expires after `timeout` seconds."""

    def __init__(self, timeout: float = CONFIRM_TIMEOUT_SECONDS) -> None:
        self._timeout = timeout
        self._pending: dict[str, PendingConfirmation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, pending: PendingConfirmation) -> str:
        """Keep a request until it is confirmed, aborted or expired; return its nonce for the buttons."""
        nonce = secrets.token_hex(8)
        pending.timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, nonce)
        self._pending[nonce] = pending
        return nonce

    def peek(self, nonce: str) -> PendingConfirmation | None:
        """Return the waiting request, leaving it in place."""
        return self._pending.get(nonce)

    def take(self, nonce: str) -> PendingConfirmation | None:
        """Remove and return the waiting request (None if it expired, was taken, or the bot restarted)."""
        pending = self._pending.pop(nonce, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()
        return pending

    def _expire(self, nonce: str) -> None:
        pending = self._pending.pop(nonce, None)
        if pending is None:
            return
        task = asyncio.get_running_loop().create_task(pending.on_expiry(), name=f"confirmation-expired-{nonce}")
        self._tasks.add(task)
        task.add_done_callback(self._expired)

    def _expired(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not mark a confirmation as expired", exc_info=task.exception())

    def close(self) -> None:
        """Forget every waiting request and stop their timers (the cog is unloading)."""
        for pending in self._pending.values():
            if pending.timer is not None:
                pending.timer.cancel()
        self._pending.clear()
        for task in self._tasks:
            task.cancel()
