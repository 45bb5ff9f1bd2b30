"""The request flow: one way from a member's request to a job, whichever way the request entered.

`/imagine`, `/edit`, **Edit image**, a reply that mentions the bot, the result buttons (Reroll, Edit, Delete, Cancel)
and Confirm/Cancel of a confirmation all come through `RequestFlow`, built once by the extension's `setup()`:

1. acknowledge first (a public "thinking…" message that the status and then the result replace, see
   `bot.discord.delivery`), then check the server and that the bot could post the result in the channel (`begin`);
2. turn what Discord told us into a `GenerationRequest` of plain values (`new_request`), or ask the service for a
   reroll or an edit of a stored result (`result_edit`);
3. admit it (`submit`): the service refuses bad input, an empty budget or an unaffordable request before any money
   moves; a request above the confirmation threshold first shows its estimate with Confirm and Cancel; a duplicate
   is explained; otherwise the job's status is shown. Where the member hears about it is an `Answer`
   (`cogs.generation.answers`): in the interaction, or in reply to their message.

Refusals propagate to the caller's error handling, which tells only the requester. Options a member leaves out come
from the server's defaults (`/settings defaults`), else the config file's `[defaults]` (`ServerOptions.resolve`).

The flow is a cog without commands so that the bot loads and unloads it with the extension: it handles the clicks on
Atelier's buttons while it is loaded, and drops waiting confirmations when it is unloaded. The delivery belongs to
the bot (built by the composition root), which closes it at shutdown after the job service has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import discord
from discord.ext import commands

from bot.catalog import Resolution
from bot.discord.delivery import DiscordDelivery
from bot.discord.embeds import queue_embed
from bot.discord.posting import permission_problem
from bot.discord.tokens import TOKEN_LIFETIME, delivery_target
from bot.discord.tree import defer_public, send_ephemeral
from bot.discord.views import ChangeModal, Confirmations, PendingConfirmation, bind_buttons, confirm_view, queue_view
from bot.errors import InvalidRequestError
from bot.jobs.admission import EMPTY_PROMPT
from bot.jobs.delivery import DeliveryError
from bot.jobs.options import ResolvedOptions, ServerOptions
from bot.jobs.requests import DeliveryTarget, GenerationRequest, ReferenceSource, RequestKind
from bot.jobs.service import Admission, GenerationService
from bot.money import format_usd
from bot.storage.rows import Job
from cogs._checks import require_guild
from cogs._context import role_ids
from cogs.generation.answers import (
    ABORTED,
    DUPLICATE,
    EXPIRED,
    Answer,
    InteractionAnswer,
    confirm_text,
    status_text,
)
from cogs.generation.references import reference_from_attachment

log = logging.getLogger(__name__)

DELETE_REFUSED = "Only the member who asked for these images, or someone with Manage Messages, can delete them."

Admit = Callable[[DeliveryTarget, bool], Awaitable[Admission]]
"""Admits one prepared request for a delivery target; the flag says whether the member has confirmed it."""

Member = discord.Member | discord.User


def new_request(
    *,
    guild_id: int,
    channel_id: int | None,
    member: Member,
    prompt: str,
    options: ResolvedOptions,
    references: Sequence[ReferenceSource],
    kind: RequestKind,
    target: DeliveryTarget,
    resolution: Resolution | None = None,
) -> GenerationRequest:
    """Build the plain-value request from what Discord told us (the domain never sees a discord object)."""
    text = prompt.strip()
    if not text:
        raise InvalidRequestError(EMPTY_PROMPT)
    return GenerationRequest(
        guild_id=guild_id,
        channel_id=channel_id,
        member_id=member.id,
        role_ids=tuple(role_ids(member)),
        prompt=text,
        model=options.model,
        size=options.size,
        quality=options.quality,
        background=options.background,
        count=options.count,
        format=options.format,
        delivery=target,
        references=tuple(references),
        kind=kind,
        resolution=resolution,
    )


def parse_resolution(value: str | None) -> Resolution | None:
    """Read the `resolution` option (`1K`, `2k`, ...); None when the member left it out."""
    if value is None:
        return None
    try:
        return Resolution(value.strip().upper())
    except ValueError:
        offered = ", ".join(resolution.value for resolution in Resolution)
        raise InvalidRequestError(f"resolution {value!r} is not offered; choose one of {offered}.") from None


def check_channel(interaction: discord.Interaction[Any]) -> None:
    """Refuse, before anything is spent, in a channel where the bot could not post the result."""
    problem = permission_problem(interaction.app_permissions)
    if problem is not None:
        raise DeliveryError(problem)


def confirmed(admit: Admit) -> Callable[[DeliveryTarget], Awaitable[Admission]]:
    """Return `admit` for a request the member has confirmed."""

    async def admit_confirmed(target: DeliveryTarget) -> Admission:
        return await admit(target, True)

    return admit_confirmed


class RequestFlow(commands.Cog):
    """Takes every request from Discord to the job service, and carries out what the buttons ask for."""

    def __init__(
        self,
        bot: commands.Bot,
        service: GenerationService,
        server_options: ServerOptions,
        delivery: DiscordDelivery,
    ) -> None:
        self.service = service
        self.delivery = delivery
        self.confirmations = Confirmations()
        self._bot = bot
        self._server_options = server_options
        self._buttons = bind_buttons(self)

    async def cog_load(self) -> None:
        """Handle the clicks on Atelier's buttons, also on messages posted before a restart."""
        self._bot.add_dynamic_items(*self._buttons)

    async def cog_unload(self) -> None:
        """Stop handling clicks and drop requests still waiting for confirmation (the delivery is the bot's)."""
        self._bot.remove_dynamic_items(*self._buttons)
        self.confirmations.close()

    # ------------------------------------------------------------------------------------------------ the prelude

    async def options(
        self,
        guild_id: int,
        *,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        output_format: str | None = None,
        count: int | None = None,
    ) -> ResolvedOptions:
        """Fill in the options a member left out: the server's defaults, else the config file's `[defaults]`.

        A default model that no configured provider serves (GPT Image 1 Mini with only a Runbase key) gives way to
        the first model that is served; a model the member chose is kept, so admission names what is possible.
        """
        resolved = await self._server_options.resolve(
            guild_id,
            model=model,
            size=size,
            quality=quality,
            background=background,
            format=output_format,
            count=count,
        )
        routing = self.service.routing
        if model is None and not routing.serves(resolved.model):
            resolved = replace(resolved, model=routing.default_model(resolved.model))
        return resolved

    async def begin(
        self, interaction: discord.Interaction[Any], *, source_message_id: int | None = None
    ) -> tuple[int, DeliveryTarget]:
        """Acknowledge within Discord's 3 s before any other work, then `target` (the server and the target)."""
        response_id = await defer_public(interaction)
        return self.target(interaction, response_id, source_message_id=source_message_id)

    def target(
        self,
        interaction: discord.Interaction[Any],
        response_id: int | None,
        *,
        source_message_id: int | None = None,
    ) -> tuple[int, DeliveryTarget]:
        """Return the server and where the job is delivered; refuse where the bot could not post the result.

        `response_id` is the public placeholder from `defer_public`, which a late result replies to.
        """
        guild_id = require_guild(interaction)
        check_channel(interaction)
        target = delivery_target(interaction, reply_to_message_id=response_id, source_message_id=source_message_id)
        return guild_id, target

    # --------------------------------------------------------------------------------------------- admitting

    def admit_new(self, request: GenerationRequest) -> Admit:
        """Admit a new request for a delivery target, confirmed or not."""

        async def admit(target: DeliveryTarget, confirmed: bool) -> Admission:
            return await self.service.admit(replace(request, delivery=target, confirmed=confirmed))

        return admit

    async def command(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        attachments: Sequence[discord.Attachment | None],
        kind: RequestKind,
        *,
        model: str | None,
        size: str | None,
        quality: str | None,
        background: str | None,
        output_format: str | None,
        count: int | None,
        resolution: str | None = None,
    ) -> None:
        """Start a slash command's request (`/imagine`, `/edit`) from acknowledging it to submitting it.

        The options a member left out are filled in, and the attached images become the references.
        """
        response_id = await defer_public(interaction)  # acknowledge within Discord's 3 s before any other work
        options = await self.options(
            require_guild(interaction),
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            count=count,
        )
        references = [reference_from_attachment(attachment) for attachment in attachments if attachment is not None]
        guild_id, target = self.target(interaction, response_id)
        request = new_request(
            guild_id=guild_id,
            channel_id=interaction.channel_id,
            member=interaction.user,
            prompt=prompt,
            options=options,
            references=references,
            kind=kind,
            target=target,
            resolution=parse_resolution(resolution),
        )
        await self.submit(self.answer_in(interaction, target), self.admit_new(request), target)

    async def own_result(self, message_id: int, guild_id: int) -> Job | None:
        """Return the job whose result the bot posted as `message_id` in this server, if there is one."""
        job = await self.service.job_for_message(message_id)
        return job if job is not None and job.guild_id == guild_id else None

    async def result_edit(self, job: Job, member: Member, prompt: str, target: DeliveryTarget) -> Admit:
        """Admit an edit of a result's images (by their Runware ids: nothing is downloaded), paid by `member`.

        The service keeps the result's model and size and takes the other options from the server's defaults, else
        the config's, now: a confirmation later admits exactly the edit whose estimate it showed.
        """
        return self.admit_new(await self.service.edit_request(job, member.id, role_ids(member), prompt, target))

    async def edit(
        self,
        *,
        own_result: Job | None,
        guild_id: int,
        channel_id: int | None,
        member: Member,
        prompt: str,
        references: Sequence[ReferenceSource],
        target: DeliveryTarget,
    ) -> Admit:
        """Admit an edit: of the bot's own result (`result_edit`) if there is one, else of `references`."""
        if own_result is not None:
            return await self.result_edit(own_result, member, prompt, target)
        request = new_request(
            guild_id=guild_id,
            channel_id=channel_id,
            member=member,
            prompt=prompt,
            options=await self.options(guild_id),
            references=references,
            kind=RequestKind.EDIT,
            target=target,
        )
        return self.admit_new(request)

    def answer_in(self, interaction: discord.Interaction[Any], target: DeliveryTarget) -> InteractionAnswer:
        """Answer the member in `interaction` (after `begin`)."""
        return InteractionAnswer(interaction, self.delivery, target)

    async def submit(self, answer: Answer, admit: Admit, target: DeliveryTarget) -> None:
        """Admit a request: show its status, ask for confirmation, or explain a duplicate (refusals propagate)."""
        admission = await admit(target, False)
        if admission.needs_confirmation:
            pending = PendingConfirmation(
                requester_id=answer.requester_id,
                estimate=admission.estimate,
                target=target,
                admit=confirmed(admit),
                on_expiry=answer.expired,
            )
            nonce = self.confirmations.add(pending)
            await answer.ask(confirm_text(answer.requester_id, admission), confirm_view(nonce))
            return
        if admission.duplicate or admission.job_id is None:
            await answer.duplicate(DUPLICATE.format(job_id=admission.job_id))
            return
        await answer.started(admission)

    # ------------------------------------------------------------------------------------------ button actions

    async def reroll(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Reroll: the same request again, as a new message, paid by the member who clicked."""
        _, target = await self.begin(interaction)
        member_id = interaction.user.id
        roles = role_ids(interaction.user)

        async def admit(delivery: DeliveryTarget, confirmed: bool) -> Admission:
            return await self.service.reroll(job_id, member_id, roles, delivery, confirmed=confirmed)

        await self.submit(self.answer_in(interaction, target), admit, target)

    async def open_edit(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Edit: ask for the change in a modal (sending it is the acknowledgement, so it goes first)."""
        source = interaction.message.id if interaction.message is not None else None
        modal = ChangeModal(title="Edit these images", on_change=partial(self._edit_job, job_id=job_id, source=source))
        await interaction.response.send_modal(modal)

    async def _edit_job(
        self, interaction: discord.Interaction[Any], prompt: str, *, job_id: str, source: int | None
    ) -> None:
        _, target = await self.begin(interaction, source_message_id=source)
        job = await self.service.require_job(job_id)
        await self.submit(
            self.answer_in(interaction, target), await self.result_edit(job, interaction.user, prompt, target), target
        )

    async def delete_result(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Delete: remove the result message, for its requester or a member with Manage Messages."""
        await interaction.response.defer()  # acknowledge within Discord's 3 s before any other work
        if not interaction.permissions.manage_messages:
            job = await self.service.get_job(job_id)
            if job is None or job.member_id != interaction.user.id:
                await send_ephemeral(interaction, DELETE_REFUSED)
                return
        await interaction.delete_original_response()
        log.info("result of job %s deleted by %s", job_id, interaction.user.id)

    async def cancel_job(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Cancel: stop a queued or running job and release its hold (on its status message or in `/queue`)."""
        await interaction.response.defer()  # acknowledge within Discord's 3 s before any other work
        guild_id = require_guild(interaction)
        result = await self.service.cancel(
            job_id, interaction.user.id, is_moderator=interaction.permissions.manage_messages
        )
        message = interaction.message
        from_queue = message is not None and message.flags.ephemeral
        # A click on the status itself can show the cancellation there with its own token (below), so no reply then.
        shown = await self.delivery.show_cancelled(result.job, interaction.user.id, reply_if_not_shown=from_queue)
        note = f"✖️ Cancelled job `{job_id}`; {format_usd(result.released)} went back to the budget."
        if from_queue:
            entries = await self.service.queue_for_member(guild_id, interaction.user.id)
            await interaction.edit_original_response(
                content=note, embed=queue_embed(entries), view=queue_view([entry.job.id for entry in entries])
            )
        elif not shown:
            await interaction.edit_original_response(content=note, view=None)

    async def confirm(self, interaction: discord.Interaction[Any], nonce: str) -> None:
        """Confirm: start the waiting request; its message becomes the job's status, then its result."""
        pending = self.confirmations.peek(nonce)
        if pending is None:
            await interaction.response.edit_message(content=EXPIRED, view=None)
            return
        if interaction.user.id != pending.requester_id:
            await interaction.response.send_message(
                f"Only <@{pending.requester_id}> can confirm this request.",
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        self.confirmations.take(nonce)
        await interaction.response.edit_message(
            content=f"✅ Confirmed (estimate ~{format_usd(pending.estimate)}); starting…", view=None
        )
        # The click's own token is the fresher one; its original response is this very message.
        target = replace(
            pending.target,
            application_id=interaction.application_id,
            interaction_token=interaction.token,
            token_expires_at=interaction.created_at + TOKEN_LIFETIME,
        )
        try:
            admission = await pending.admit(target)
            if admission.duplicate or admission.job_id is None:
                raise InvalidRequestError(DUPLICATE.format(job_id=admission.job_id))
        except Exception:
            await self.delivery.delete_original(target)
            raise
        if admission.status_now:
            await self.delivery.show_status(admission.job_id, target, status_text(admission))

    async def abort(self, interaction: discord.Interaction[Any], nonce: str) -> None:
        """Cancel a waiting request: nothing was reserved, so nothing is released."""
        pending = self.confirmations.peek(nonce)
        if pending is not None and interaction.user.id != pending.requester_id:
            await interaction.response.send_message(
                f"Only <@{pending.requester_id}> can cancel this request.",
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        self.confirmations.take(nonce)
        await interaction.response.edit_message(content=ABORTED if pending is not None else EXPIRED, view=None)
