"""`/imagine` and `/edit`, and what the buttons on Atelier's messages do: Reroll, Edit, Delete, Cancel, Confirm.

Every handler acknowledges first (a public "thinking…" message that the status and then the result replace, see
`bot.discord.delivery`), then turns the interaction into a `GenerationRequest` of plain values and hands it to the job
service. The service refuses bad input, an empty budget or an unaffordable request before any money moves; such a
refusal reaches only the requester (the public placeholder is removed). A request whose estimate is above the
confirmation threshold first shows the estimate with Confirm and Cancel.

Options a member leaves out come from the server's defaults (`/settings defaults`), else the config file's
`[defaults]` (`bot.jobs.options.ServerOptions.resolve`). Statuses are shown through the Discord delivery the
composition root built and gave the job service (`Services.delivery`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.clock import utc_now
from bot.discord.client import AtelierBot
from bot.discord.delivery import DiscordDelivery
from bot.discord.embeds import queue_embed
from bot.discord.posting import permission_problem
from bot.discord.statuses import queued_text, running_text
from bot.discord.tokens import TOKEN_LIFETIME, delivery_target
from bot.discord.tree import defer_public, mark_answered, send_ephemeral
from bot.discord.views import (
    CONFIRM_TIMEOUT_SECONDS,
    DYNAMIC_ITEMS,
    JOB_ACTIONS_COG,
    ChangeModal,
    Confirmations,
    PendingConfirmation,
    confirm_view,
    queue_view,
)
from bot.errors import InvalidRequestError
from bot.jobs.delivery import DeliveryError
from bot.jobs.options import ResolvedOptions, ServerOptions
from bot.jobs.requests import DeliveryTarget, GenerationRequest, ReferenceSource, RequestKind
from bot.jobs.service import Admission, GenerationService
from bot.money import format_usd
from bot.storage.rows import Job
from cogs._checks import require_guild, role_ids, services_of
from cogs._options import (
    BACKGROUND_CHOICES,
    FORMAT_CHOICES,
    MODEL_CHOICES,
    QUALITY_CHOICES,
    SIZE_CHOICES,
    Count,
)

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])

MAX_OPTION_CHARS = 6000
"""Discord's limit on a slash command's string option; longer prompts cannot be typed into a command at all."""

Prompt = app_commands.Range[str, 1, MAX_OPTION_CHARS]

OPTION_DESCRIPTIONS = {
    "model": "GPT Image model (default: this server's default model)",
    "size": "Output size in pixels",
    "quality": "Rendering quality; higher costs more (auto is priced as high)",
    "background": "Background; transparent needs png or webp",
    "count": "How many images (1-4; this server may allow fewer)",
    "output_format": "File format of the images",
}


def generation_options(func: _F) -> _F:
    """Declare what `/imagine` and `/edit` share: server only, the `format` option's name, descriptions, choices."""
    func = app_commands.guild_only()(func)
    func = app_commands.rename(output_format="format")(func)
    func = app_commands.describe(**OPTION_DESCRIPTIONS)(func)
    # A new `choices(...)` per command: discord.py keeps the given dict on the function and may update it in place.
    return app_commands.choices(
        model=MODEL_CHOICES,
        size=SIZE_CHOICES,
        quality=QUALITY_CHOICES,
        background=BACKGROUND_CHOICES,
        output_format=FORMAT_CHOICES,
    )(func)


EMPTY_PROMPT = "The prompt is empty; describe what you want to see."
DUPLICATE = (
    "You asked for exactly this a moment ago (job `{job_id}`), so it is not run or charged a second time; "
    "its images appear with that request."
)
EXPIRED = "⌛ This confirmation has expired; nothing was charged. Run the command again if you still want it."
ABORTED = "✖️ Cancelled; nothing was charged."
DELETE_REFUSED = "Only the member who asked for these images, or someone with Manage Messages, can delete them."

Admit = Callable[[DeliveryTarget, bool], Awaitable[Admission]]
"""Admits one prepared request for a delivery target; the flag says whether the member has confirmed it."""


def reference_from_attachment(attachment: discord.Attachment) -> ReferenceSource:
    """Turn an uploaded file into a reference to download (its declared size lets an oversized one be refused early)."""
    return ReferenceSource.from_url(
        attachment.url, filename=attachment.filename, size=attachment.size, content_type=attachment.content_type
    )


def _is_image(attachment: discord.Attachment) -> bool:
    return (attachment.content_type or "").startswith("image/") or attachment.width is not None


_PICTURE_EMBED_TYPES = frozenset({"image", "gifv"})
"""Embeds Discord makes of a link to a picture (or an animated GIF): the picture is in `thumbnail`, not `image`."""


def embed_picture_addresses(embed: discord.Embed) -> list[str]:
    """Return the addresses of an embed's picture, where to fetch it first: Discord's copy (`proxy_url`), then `url`.

    A rich embed's picture is its `image`; a link preview of a picture (type `image` or `gifv`) carries it as its
    `thumbnail`. For a picture on another site `url` is that site's address, which is never fetched; `proxy_url` is
    Discord's copy on its media proxy (`images-ext-1.discordapp.net`, …), and for an attachment, on its CDN.
    """
    media = [embed.image]
    if embed.type in _PICTURE_EMBED_TYPES:
        media.append(embed.thumbnail)
    for item in media:
        addresses = [address for address in (item.proxy_url, item.url) if address]
        if addresses:
            return addresses
    return []


def message_images(message: discord.Message) -> list[ReferenceSource]:
    """Return the images of a message as references: image attachments, then embed pictures, each once.

    An embed that shows one of the message's attachments (`attachment://` in a bot's embed) names it by another
    address on the same CDN; each image is known by all its addresses, so it is used once.
    """
    sources: list[ReferenceSource] = []
    seen: set[str] = set()

    def add(source: ReferenceSource, *aliases: str | None) -> None:
        names = {source.identity, *(ReferenceSource.from_url(alias).identity for alias in aliases if alias)}
        if seen.isdisjoint(names):
            sources.append(source)
        seen.update(names)

    for attachment in message.attachments:
        if _is_image(attachment):
            add(reference_from_attachment(attachment), attachment.proxy_url)
    for number, embed in enumerate(message.embeds, start=1):
        addresses = embed_picture_addresses(embed)
        if addresses:
            add(ReferenceSource.from_url(addresses[0], filename=f"embed image {number}"), *addresses[1:])
    return sources


def new_request(
    *,
    guild_id: int,
    channel_id: int | None,
    member: discord.Member | discord.User,
    prompt: str,
    options: ResolvedOptions,
    references: Sequence[ReferenceSource],
    kind: RequestKind,
    target: DeliveryTarget,
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
    )


def admit_request(service: GenerationService, request: GenerationRequest) -> Admit:
    """Admit `request` for a delivery target, confirmed or not."""

    async def admit(target: DeliveryTarget, confirmed: bool) -> Admission:
        return await service.admit(replace(request, delivery=target, confirmed=confirmed))

    return admit


def confirmed(admit: Admit) -> Callable[[DeliveryTarget], Awaitable[Admission]]:
    """Return `admit` for a request the member has confirmed."""

    async def admit_confirmed(target: DeliveryTarget) -> Admission:
        return await admit(target, True)

    return admit_confirmed


def confirm_text(requester_id: int, admission: Admission) -> str:
    """Word the question shown before an expensive request starts (`admission` needs confirmation)."""
    estimate, threshold = admission.estimate, admission.threshold or 0
    expires = discord.utils.format_dt(utc_now() + timedelta(seconds=CONFIRM_TIMEOUT_SECONDS), "R")
    return (
        f"💸 <@{requester_id}>, this will cost about **{format_usd(estimate)}**, more than this server's "
        f"confirmation threshold of {format_usd(threshold)}. Nothing is reserved until you confirm "
        f"(this question expires {expires})."
    )


def status_text(admission: Admission) -> str:
    """Word a job's status message right after admission."""
    assert admission.job_id is not None
    if admission.position is not None:
        return queued_text(admission.job_id, admission.estimate, admission.position)
    return running_text(admission.job_id, admission.estimate)


def check_channel(interaction: discord.Interaction[Any]) -> None:
    """Refuse, before anything is spent, in a channel where the bot could not post the result."""
    problem = permission_problem(interaction.app_permissions)
    if problem is not None:
        raise DeliveryError(problem)


class Generate(commands.Cog, name=JOB_ACTIONS_COG):
    """Image generation commands and the buttons of their messages."""

    def __init__(
        self, bot: AtelierBot, service: GenerationService, settings: ServerOptions, delivery: DiscordDelivery
    ) -> None:
        self._bot = bot
        self._service = service
        self._settings = settings
        self.delivery = delivery
        self.confirmations = Confirmations()

    @property
    def service(self) -> GenerationService:
        """The job service requests go to."""
        return self._service

    async def cog_load(self) -> None:
        """Make old buttons work (dynamic items)."""
        self._bot.add_dynamic_items(*DYNAMIC_ITEMS)

    async def cog_unload(self) -> None:
        """Drop requests still waiting for confirmation."""
        self.confirmations.close()

    # -------------------------------------------------------------------------------------------------- options

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
        """Fill in the options a member left out: the server's defaults, else the config file's `[defaults]`."""
        return await self._settings.resolve(
            guild_id,
            model=model,
            size=size,
            quality=quality,
            background=background,
            format=output_format,
            count=count,
        )

    # ------------------------------------------------------------------------------------------------- commands

    @app_commands.command(name="imagine")
    @generation_options
    @app_commands.describe(
        prompt="What to draw (up to 6000 characters)",
        reference="A reference image to guide the result",
        reference2="Another reference image",
        reference3="Another reference image",
        reference4="Another reference image",
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: Prompt,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        count: Count | None = None,
        output_format: str | None = None,
        reference: discord.Attachment | None = None,
        reference2: discord.Attachment | None = None,
        reference3: discord.Attachment | None = None,
        reference4: discord.Attachment | None = None,
    ) -> None:
        """Generate images from a prompt, optionally guided by reference images."""
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
        attachments = [item for item in (reference, reference2, reference3, reference4) if item is not None]
        await self._generate(interaction, response_id, prompt, options, attachments, RequestKind.IMAGINE)

    @app_commands.command(name="edit")
    @generation_options
    @app_commands.describe(
        image="The image to edit",
        prompt="What should change (up to 6000 characters)",
        image2="Another image to edit or combine",
        image3="Another image to edit or combine",
        image4="Another image to edit or combine",
    )
    async def edit(
        self,
        interaction: discord.Interaction[Any],
        image: discord.Attachment,
        prompt: Prompt,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        model: str | None = None,
        size: str | None = None,
        quality: str | None = None,
        background: str | None = None,
        count: Count | None = None,
        output_format: str | None = None,
    ) -> None:
        """Edit uploaded images: describe the change, and the images are the starting point."""
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
        attachments = [item for item in (image, image2, image3, image4) if item is not None]
        await self._generate(interaction, response_id, prompt, options, attachments, RequestKind.EDIT)

    async def _generate(
        self,
        interaction: discord.Interaction[Any],
        response_id: int | None,
        prompt: str,
        options: ResolvedOptions,
        attachments: Sequence[discord.Attachment],
        kind: RequestKind,
    ) -> None:
        guild_id = require_guild(interaction)
        check_channel(interaction)
        target = delivery_target(interaction, reply_to_message_id=response_id)
        request = new_request(
            guild_id=guild_id,
            channel_id=interaction.channel_id,
            member=interaction.user,
            prompt=prompt,
            options=options,
            references=[reference_from_attachment(attachment) for attachment in attachments],
            kind=kind,
            target=target,
        )
        await self.submit(interaction, admit_request(self._service, request), target)

    # ------------------------------------------------------------------------------------- the shared request flow

    async def submit(self, interaction: discord.Interaction[Any], admit: Admit, target: DeliveryTarget) -> None:
        """Admit a request (after `defer_public`): show its status, ask for confirmation, or explain a duplicate.

        Refusals propagate to the caller's error handling, which tells only the requester.
        """
        admission = await admit(target, False)
        if admission.needs_confirmation:
            pending = PendingConfirmation(
                requester_id=interaction.user.id,
                estimate=admission.estimate,
                target=target,
                admit=confirmed(admit),
                on_expiry=partial(self.delivery.show_text, target, EXPIRED),
            )
            nonce = self.confirmations.add(pending)
            mark_answered(interaction)
            await interaction.edit_original_response(
                content=confirm_text(interaction.user.id, admission),
                view=confirm_view(nonce),
                allowed_mentions=discord.AllowedMentions.none(),
            )
            return
        if admission.duplicate or admission.job_id is None:
            await send_ephemeral(interaction, DUPLICATE.format(job_id=admission.job_id))
            return
        mark_answered(interaction)
        await self.delivery.show_status(admission.job_id, target, status_text(admission))

    async def result_edit(self, job: Job, member: discord.Member | discord.User, prompt: str) -> Admit:
        """Admit an edit of a result's images (by their Runware ids: nothing is downloaded), paid by `member`.

        The result's model and size are kept; the other options come from the server's defaults, else the config's.
        """
        text = prompt.strip()
        if not text:
            raise InvalidRequestError(EMPTY_PROMPT)
        if job.guild_id is None:
            raise InvalidRequestError("That job was not made in a server, so it cannot be edited here.")
        member_id, roles = member.id, role_ids(member)
        options = await self.options(job.guild_id, model=job.model.value, size=job.size.value)

        async def admit(delivery: DeliveryTarget, confirmed: bool) -> Admission:
            return await self._service.edit_from(
                job, member_id, roles, text, delivery, options=options, confirmed=confirmed
            )

        return admit

    # ------------------------------------------------------------------------------------------ button actions

    async def reroll(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Reroll: the same request again, as a new message, paid by the member who clicked."""
        response_id = await defer_public(interaction)  # acknowledge within Discord's 3 s before any other work
        require_guild(interaction)
        check_channel(interaction)
        target = delivery_target(interaction, reply_to_message_id=response_id)
        member_id = interaction.user.id
        roles = role_ids(interaction.user)

        async def admit(delivery: DeliveryTarget, confirmed: bool) -> Admission:
            return await self._service.reroll(job_id, member_id, roles, delivery, confirmed=confirmed)

        await self.submit(interaction, admit, target)

    async def open_edit(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Edit: ask for the change in a modal (sending it is the acknowledgement, so it goes first)."""
        source = interaction.message.id if interaction.message is not None else None
        modal = ChangeModal(title="Edit these images", on_change=partial(self._edit_job, job_id=job_id, source=source))
        await interaction.response.send_modal(modal)

    async def _edit_job(
        self, interaction: discord.Interaction[Any], prompt: str, *, job_id: str, source: int | None
    ) -> None:
        response_id = await defer_public(interaction)  # acknowledge within Discord's 3 s before any other work
        require_guild(interaction)
        check_channel(interaction)
        job = await self._service.require_job(job_id)
        target = delivery_target(interaction, reply_to_message_id=response_id, source_message_id=source)
        await self.submit(interaction, await self.result_edit(job, interaction.user, prompt), target)

    async def delete_result(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Delete: remove the result message, for its requester or a member with Manage Messages."""
        await interaction.response.defer()  # acknowledge within Discord's 3 s before any other work
        if not interaction.permissions.manage_messages:
            job = await self._service.get_job(job_id)
            if job is None or job.member_id != interaction.user.id:
                await send_ephemeral(interaction, DELETE_REFUSED)
                return
        await interaction.delete_original_response()
        log.info("result of job %s deleted by %s", job_id, interaction.user.id)

    async def cancel_job(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        """Cancel: stop a queued or running job and release its hold (on its status message or in `/queue`)."""
        await interaction.response.defer()  # acknowledge within Discord's 3 s before any other work
        guild_id = require_guild(interaction)
        result = await self._service.cancel(
            job_id, interaction.user.id, is_moderator=interaction.permissions.manage_messages
        )
        message = interaction.message
        from_queue = message is not None and message.flags.ephemeral
        # A click on the status itself can show the cancellation there with its own token (below), so no reply then.
        shown = await self.delivery.show_cancelled(result.job, interaction.user.id, reply_if_not_shown=from_queue)
        note = f"✖️ Cancelled job `{job_id}`; {format_usd(result.released)} went back to the budget."
        if from_queue:
            entries = await self._service.queue_for_member(guild_id, interaction.user.id)
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


async def setup(bot: commands.Bot) -> None:
    """Add the cog with the job service and the servers' generation settings."""
    services = services_of(bot)
    assert isinstance(bot, AtelierBot)
    await bot.add_cog(Generate(bot, services.generation, services.server_options, services.delivery))
