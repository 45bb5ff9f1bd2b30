"""Buttons and the modal of Atelier's messages: results, job status, confirmations and `/queue`.

A button's `custom_id` carries what it acts on (`atelier:reroll:<job id>`, `atelier:confirm:<nonce>`, …), so buttons
keep working after a restart without remembering any message. The posting side builds the buttons (`result_view`,
`status_view`, `confirm_view`, `queue_view`); a click is matched by the two dynamic items that `bind_buttons` binds to
the request flow when the generation extension is set up, which hand it to the flow (`ButtonActions`).

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
from typing import Any, ClassVar, Protocol

import discord

from bot.discord.tree import accept_interaction, report_error
from bot.jobs.requests import DeliveryTarget
from bot.jobs.service import Admission

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_SECONDS = 10 * 60.0
"""How long a confirmation waits for its click; well inside the 15 minutes its interaction token lives."""

MODAL_TIMEOUT_SECONDS = 15 * 60.0
"""How long an opened "describe the change" modal is kept for its submission."""

MAX_CHANGE_CHARS = 4000
"""Discord's limit on a modal text input."""

MAX_QUEUE_BUTTONS = 20
"""Cancel buttons on one `/queue` answer (4 rows of 5; Discord allows 5 rows and 40 components)."""

_JOB_ID = r"(?P<key>[0-9a-z]{1,64})"
_NONCE = r"(?P<key>[0-9a-f]{16})"
JOB_CLICK = r"atelier:(?P<action>reroll|edit|delete|cancel):" + _JOB_ID
"""The custom id of a button that acts on a job: `atelier:<action>:<job id>`."""
CONFIRMATION_CLICK = r"atelier:(?P<action>confirm|abort):" + _NONCE
"""The custom id of Confirm or Cancel on a confirmation: `atelier:<confirm|abort>:<nonce>`."""


class ButtonActions(Protocol):
    """What the buttons ask for; the request flow (`cogs.generation.flow.RequestFlow`) carries it out."""

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


Handler = Callable[[discord.Interaction[Any], str], Coroutine[Any, Any, None]]


def _handler(actions: ButtonActions, action: str) -> Handler:
    """Return the method of `actions` that a button's action (the second part of its custom id) asks for."""
    handlers: dict[str, Handler] = {
        "reroll": actions.reroll,
        "edit": actions.open_edit,
        "delete": actions.delete_result,
        "cancel": actions.cancel_job,
        "confirm": actions.confirm,
        "abort": actions.abort,
    }
    return handlers[action]


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


class _Click(discord.ui.DynamicItem[discord.ui.Button[Any]], template=JOB_CLICK):
    """A click on one of Atelier's buttons, rebuilt from its custom id and handed to `actions` (see `bind_buttons`)."""

    actions: ClassVar[ButtonActions]

    def __init__(self, item: discord.ui.Button[Any], action: str, key: str) -> None:
        super().__init__(item)
        self.action = action
        self.key = key

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> _Click:
        """Rebuild the click from the button's custom id (no I/O: the 3-second acknowledgement clock is running)."""
        assert isinstance(item, discord.ui.Button)
        return cls(item, match["action"], match["key"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Hand the click to the request flow (the Edit button's handler answers with its modal at once)."""
        await guarded(interaction, _handler(self.actions, self.action)(interaction, self.key))


def bind_buttons(actions: ButtonActions) -> tuple[type[discord.ui.DynamicItem[discord.ui.Button[Any]]], ...]:
    """Return the dynamic items that hand every click on Atelier's buttons to `actions`.

    `bot.add_dynamic_items(*bind_buttons(flow))` makes the buttons of every message work, also those posted before a
    restart; nothing else needs to know who handles them.
    """

    class JobClick(_Click, template=JOB_CLICK):
        """Reroll, Edit, Delete or Cancel on a job's message."""

    class ConfirmationClick(_Click, template=CONFIRMATION_CLICK):
        """Confirm or Cancel on a confirmation."""

    JobClick.actions = ConfirmationClick.actions = actions
    return JobClick, ConfirmationClick


class _Button(discord.ui.Button[Any]):
    """A button as posted: only its custom id matters, which the items from `bind_buttons` match when it is clicked.

    It is not dispatched through its view, so discord.py keeps nothing in memory for a posted message (as for a view
    of dynamic items alone).
    """

    def is_dispatchable(self) -> bool:
        """Never dispatched through its view (the dynamic items from `bind_buttons` handle its clicks)."""
        return False


def _button(
    custom_id: str, label: str, *, emoji: str | None = None, style: discord.ButtonStyle = discord.ButtonStyle.secondary
) -> _Button:
    return _Button(label=label, emoji=emoji, style=style, custom_id=custom_id)


def _reroll(job_id: str) -> _Button:
    """Reroll: the same request again, paid by whoever clicks."""
    return _button(f"atelier:reroll:{job_id}", "Reroll", emoji="🎲")


def _edit(job_id: str) -> _Button:
    """Edit: a modal asks for the change; this result becomes the reference."""
    return _button(f"atelier:edit:{job_id}", "Edit", emoji="✏️")


def _delete(job_id: str) -> _Button:
    """Delete: removes the result, for its requester or anyone with Manage Messages."""
    return _button(f"atelier:delete:{job_id}", "Delete", emoji="🗑️", style=discord.ButtonStyle.danger)


def _cancel(job_id: str, label: str = "Cancel") -> _Button:
    """Cancel a queued or running job (on its status message and in `/queue`); its hold is released."""
    return _button(f"atelier:cancel:{job_id}", label, emoji="✖️", style=discord.ButtonStyle.danger)


def _view(*items: discord.ui.Item[Any]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def result_view(job_id: str) -> discord.ui.View:
    """Reroll, Edit and Delete for a posted result."""
    return _view(_reroll(job_id), _edit(job_id), _delete(job_id))


def status_view(job_id: str) -> discord.ui.View:
    """Cancel, for a job's status message while it waits or runs."""
    return _view(_cancel(job_id))


def confirm_view(nonce: str) -> discord.ui.View:
    """Confirm (start the request and reserve its estimate) and Cancel (nothing was reserved)."""
    return _view(
        _button(f"atelier:confirm:{nonce}", "Confirm", style=discord.ButtonStyle.success),
        _button(f"atelier:abort:{nonce}", "Cancel"),
    )


def queue_view(job_ids: Sequence[str]) -> discord.ui.View | None:
    """One Cancel button per listed job (at most `MAX_QUEUE_BUTTONS`), or None when there is nothing to cancel."""
    if not job_ids:
        return None
    return _view(*(_cancel(job_id, label=f"Cancel {job_id}") for job_id in job_ids[:MAX_QUEUE_BUTTONS]))


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
