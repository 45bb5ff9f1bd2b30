"""Editing images: `/edit` with uploaded images, the **Edit image** message command, and replies that mention the bot.

- `/edit image prompt [image2…4] [options]`: the uploaded images are the starting point.
- **Edit image** (right-click a message → Apps): a modal asks for the change; the message's image attachments and
  embed images are the references. Discord sends a context-menu target with its content and attachments, so this
  needs no privileged intent.
- **Reply editing**: a reply that mentions the bot (`@Atelier make the sky stormy`) to a message with images is an
  edit of those images. The reply itself carries its text because it mentions the bot, and a reply to one of the
  bot's own results always works (the bot sees its own messages). The images of *other* members' messages reach the
  bot only with the privileged Message Content intent, which is requested when the developer portal allows it
  (`[discord] reply_editing = "auto"`, the default; `bot.discord.intents`); without it such a reply is answered with
  how to switch it on. Only an explicit mention counts: a plain reply that pings the bot (Discord's default for
  replies) never starts a paid generation.

An edit of one of the bot's own results (by Edit image or a reply) reuses its images by their Runware ids and keeps
its model and size (`RequestFlow.edit`); the Edit button on a result is handled by the flow itself.

A reply has no interaction (`ReplyAnswer`): the member's message gets a typing indicator while the request is checked
and a ⏳ reaction once it is queued (when the bot may add reactions); errors are replies to it, and the result is
posted as a reply to it that mentions the member. A request above the confirmation threshold is answered with
Confirm/Cancel; a Confirm click's token then carries the job's status and result.
"""

from __future__ import annotations

import contextlib
import logging
import re
from functools import partial
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.client import AtelierBot
from bot.discord.posting import permission_problem, reply_reference
from bot.discord.tokens import channel_parents
from bot.discord.tree import new_error_id, user_sentence
from bot.discord.views import ChangeModal
from bot.errors import AtelierError, InvalidRequestError
from bot.jobs.delivery import DeliveryError
from bot.jobs.requests import DeliveryTarget, ReferenceSource, RequestKind
from bot.jobs.service import Admission
from cogs._options import Count, Prompt, generation_options
from cogs.generation.answers import EXPIRED, warning_text
from cogs.generation.flow import RequestFlow
from cogs.generation.references import message_images

log = logging.getLogger(__name__)

MENU_NAME = "Edit image"

NO_IMAGES = "That message has no images to edit (attachments or embed images)."
EMPTY_REPLY = "Write the change after the mention, for example: `@Atelier make the sky stormy`."
REFERENCE_GONE = "I can't find the message you replied to; it may have been deleted."
HISTORY_MISSING = (
    "I can't read the message history here, so I can't see the message you replied to. "
    "Ask an admin to give me the Read Message History permission."
)
NEEDS_MESSAGE_CONTENT = (
    "I can't see the images of messages I'm replying to: reply editing needs Discord's Message Content intent, "
    "which this bot does not use. {how} Meanwhile, use **Edit image** (right-click the message → Apps → Edit "
    "image), or `/edit` with the image. Replies to my own results always work."
)
SWITCH_ON_IN_PORTAL = (
    "The bot owner can switch it on in the Discord developer portal (Bot tab → Privileged Gateway Intents → "
    "Message Content Intent) and restart the bot."
)
SWITCHED_OFF_IN_CONFIG = (
    "The bot owner turned reply editing off (`reply_editing = false` under `[discord]` in the config); "
    '`reply_editing = "auto"` uses it whenever the developer portal allows it.'
)
QUEUED_REACTION = "⏳"


class ReplyEditingUnavailableError(AtelierError):
    """The replied-to message's images are hidden from the bot (no Message Content intent)."""


def _mention_pattern(user_id: int) -> re.Pattern[str]:
    return re.compile(rf"<@!?{user_id}>")


def mentions(content: str, user_id: int) -> bool:
    """Whether the text itself mentions `user_id` (a reply's automatic ping does not count)."""
    return _mention_pattern(user_id).search(content) is not None


def strip_mention(content: str, user_id: int) -> str:
    """Remove every mention of `user_id` from a message's text, leaving the change the member asked for."""
    return " ".join(_mention_pattern(user_id).sub(" ", content).split())


def _reference_to(message: discord.Message) -> discord.MessageReference:
    return reply_reference(message.id, message.channel.id, message.guild.id if message.guild else None)


async def answer_message(message: discord.Message, text: str) -> None:
    """Reply to the member's message (a reply has no private channel back)."""
    try:
        await message.channel.send(
            text, reference=_reference_to(message), allowed_mentions=discord.AllowedMentions.none()
        )
    except discord.HTTPException:
        log.warning("could not answer message %s: %r", message.id, text, exc_info=True)


class ReplyAnswer:
    """Answers a reply edit in the channel: the question and notices are replies, a queued job gets a reaction."""

    def __init__(self, message: discord.Message) -> None:
        self._message = message
        self._question: discord.Message | None = None
        self.requester_id = message.author.id

    async def ask(self, text: str, view: discord.ui.View) -> None:
        """Post the question as a reply to the member's message."""
        self._question = await self._message.channel.send(
            text, view=view, reference=_reference_to(self._message), allowed_mentions=discord.AllowedMentions.none()
        )

    async def expired(self) -> None:
        """Turn the question into the expiry notice (nothing to do until it has been posted)."""
        if self._question is not None:
            with contextlib.suppress(discord.HTTPException):
                await self._question.edit(content=EXPIRED, view=None)

    async def duplicate(self, text: str) -> None:
        """Explain the duplicate in a reply."""
        await answer_message(self._message, text)

    async def started(self, admission: Admission) -> None:
        """Mark the member's message as queued with a reaction; the result comes as a reply when it is ready."""
        message = self._message
        log.info("reply edit by %s admitted as job %s", message.author.id, admission.job_id)
        channel, guild = message.channel, message.guild
        if guild is not None and isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            permissions = channel.permissions_for(guild.me)
            if permissions.add_reactions and permissions.read_message_history:
                # The result comes as a reply when it is ready; the reaction says at once that it is on its way.
                with contextlib.suppress(discord.HTTPException):
                    await message.add_reaction(QUEUED_REACTION)
        if admission.warning is not None:
            await answer_message(message, warning_text(admission.warning))


class Editing(commands.Cog):
    """`/edit`, the Edit image message command and reply editing."""

    def __init__(self, bot: AtelierBot, flow: RequestFlow) -> None:
        self.flow = flow
        self._bot = bot
        self._menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.edit_image)

    async def cog_load(self) -> None:
        """Register the message command (context menus cannot be declared on a cog)."""
        self._bot.tree.add_command(self._menu)

    async def cog_unload(self) -> None:
        """Remove the message command."""
        self._bot.tree.remove_command(self._menu.name, type=self._menu.type)

    # ----------------------------------------------------------------------------------------------------- /edit

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
        resolution: str | None = None,
    ) -> None:
        """Edit uploaded images: describe the change, and the images are the starting point."""
        await self.flow.command(
            interaction,
            prompt,
            (image, image2, image3, image4),
            RequestKind.EDIT,
            model=model,
            size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            count=count,
            resolution=resolution,
        )

    # ----------------------------------------------------------------------------------------------- Edit image

    @app_commands.guild_only()
    async def edit_image(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        """Ask for the change in a modal; the message's images are the references."""
        sources = message_images(message)
        if not sources:
            await interaction.response.send_message(NO_IMAGES, ephemeral=True)
            return
        me = self._bot.user
        from_bot = me is not None and message.author.id == me.id
        modal = ChangeModal(
            title=MENU_NAME,
            on_change=partial(self._submit_edit, message_id=message.id, from_bot=from_bot, sources=tuple(sources)),
        )
        await interaction.response.send_modal(modal)  # the modal is the acknowledgement, so it goes first

    async def _submit_edit(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        *,
        message_id: int,
        from_bot: bool,
        sources: tuple[ReferenceSource, ...],
    ) -> None:
        flow = self.flow
        guild_id, target = await flow.begin(interaction, source_message_id=message_id)
        admit = await flow.edit(
            own_result=await flow.own_result(message_id, guild_id) if from_bot else None,
            guild_id=guild_id,
            channel_id=interaction.channel_id,
            member=interaction.user,
            prompt=prompt,
            references=sources,
            target=target,
        )
        await flow.submit(flow.answer_in(interaction, target), admit, target)

    # ---------------------------------------------------------------------------------------------- reply editing

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Treat a reply that explicitly mentions the bot as an edit of the replied-to message's images."""
        me = self._bot.user
        if me is None or message.author.bot or message.guild is None or message.reference is None:
            return
        if not mentions(message.content, me.id):
            return
        with contextlib.suppress(discord.HTTPException):
            await message.channel.typing()  # the member sees at once that the request arrived
        try:
            await self._reply_edit(message, me.id)
        except AtelierError as exc:
            log.info("reply edit by %s refused: %s", message.author.id, user_sentence(exc))
            await answer_message(message, user_sentence(exc))
        except Exception:
            error_id = new_error_id()
            log.exception("Unexpected error %s in a reply edit (message %s)", error_id, message.id)
            await answer_message(
                message,
                f"Something went wrong on my side (error id `{error_id}`). Please try again, "
                "and give the error id to the server's admins if it keeps happening.",
            )

    async def _reply_edit(self, message: discord.Message, me_id: int) -> None:
        guild = message.guild
        assert guild is not None
        prompt = strip_mention(message.content, me_id)
        if not prompt:
            raise InvalidRequestError(EMPTY_REPLY)
        channel = message.channel
        if isinstance(channel, discord.abc.GuildChannel | discord.Thread):
            problem = permission_problem(channel.permissions_for(guild.me), channel_post=True)
            if problem is not None:
                raise DeliveryError(problem)
        referenced = await self._referenced(message)
        target = DeliveryTarget(
            channel_id=channel.id,
            reply_to_message_id=message.id,
            attachment_size_limit=guild.filesize_limit,
            source_message_id=referenced.id,
            channel_parents=channel_parents(channel),
        )
        from_bot = referenced.author.id == me_id
        own_result = await self.flow.own_result(referenced.id, guild.id) if from_bot else None
        references: list[ReferenceSource] = []
        if own_result is None:
            if not from_bot and not self._bot.intents.message_content:
                how = SWITCHED_OFF_IN_CONFIG if self._bot.reply_editing.mode is False else SWITCH_ON_IN_PORTAL
                raise ReplyEditingUnavailableError(NEEDS_MESSAGE_CONTENT.format(how=how))
            images = message_images(referenced)
            if not images:
                raise InvalidRequestError(NO_IMAGES)
            references = [*images, *message_images(message)]
        admit = await self.flow.edit(
            own_result=own_result,
            guild_id=guild.id,
            channel_id=channel.id,
            member=message.author,
            prompt=prompt,
            references=references,
            target=target,
        )
        await self.flow.submit(ReplyAnswer(message), admit, target)

    async def _referenced(self, message: discord.Message) -> discord.Message:
        """Return the message a reply points at: carried in the event, else fetched."""
        reference = message.reference
        assert reference is not None
        if isinstance(reference.resolved, discord.Message):
            return reference.resolved
        if isinstance(reference.resolved, discord.DeletedReferencedMessage) or reference.message_id is None:
            raise InvalidRequestError(REFERENCE_GONE)
        try:
            return await message.channel.fetch_message(reference.message_id)
        except discord.NotFound:
            raise InvalidRequestError(REFERENCE_GONE) from None
        except discord.Forbidden:
            raise DeliveryError(HISTORY_MISSING) from None
