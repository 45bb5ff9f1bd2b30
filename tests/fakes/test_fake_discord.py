"""The fake Discord drives an unmodified discord.py client end to end (a throwaway bot defined here, not Atelier)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands
from PIL import Image

from fakes.discord import (
    FakeDiscord,
    FakeDiscordUsageError,
    FakeHTTPError,
    FakeInteraction,
    FakeMessage,
    Intent,
    Limits,
    Permission,
    World,
    check_message,
    check_modal,
)
from fakes.discord.seam import pointed_at
from fakes.openapi_check import OpenAPIChecker

REPO = Path(__file__).resolve().parents[2]


def png_bytes(width: int = 64, height: int = 48, color: str = "teal") -> bytes:
    """A small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------- the throwaway bot


class DescribeModal(discord.ui.Modal, title="Describe the change"):
    """A one-field modal; the submitted text is recorded on the bot."""

    change: discord.ui.TextInput[DescribeModal] = discord.ui.TextInput(label="Change", custom_id="change")

    def __init__(self, source: str) -> None:
        super().__init__(timeout=30)
        self.source = source

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
        bot.modal_values.append((self.source, self.change.value))
        await interaction.response.send_message(f"Will change: {self.change.value}", ephemeral=True)


class EditModal(discord.ui.Modal, title="Edit image"):
    """The newer modal layout: a Label (type 18) wrapping a text input and a string select."""

    change: discord.ui.Label[EditModal] = discord.ui.Label(
        text="Change", component=discord.ui.TextInput(custom_id="change", style=discord.TextStyle.paragraph)
    )
    strength: discord.ui.Label[EditModal] = discord.ui.Label(
        text="Strength",
        component=discord.ui.Select(
            custom_id="strength",
            options=[
                discord.SelectOption(label="Light", value="light"),
                discord.SelectOption(label="Strong", value="strong"),
            ],
        ),
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
        text = self.change.component
        select = self.strength.component
        assert isinstance(text, discord.ui.TextInput) and isinstance(select, discord.ui.Select)
        bot.modal_values.append(("context", f"{text.value} ({select.values[0]})"))
        await interaction.response.defer()  # a silent type-6 ack closes a command's modal


class ResultView(discord.ui.View):
    """Buttons under a result: one edits the message (type 7), one opens the modal (type 9)."""

    def __init__(self) -> None:
        super().__init__(timeout=60)

    @discord.ui.button(label="Again", custom_id="again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[ResultView]) -> None:
        bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
        bot.clicks.append(interaction.user.id)
        await interaction.response.edit_message(content="Drawing again…")

    @discord.ui.button(label="Describe", custom_id="describe")
    async def describe(self, interaction: discord.Interaction, button: discord.ui.Button[ResultView]) -> None:
        await interaction.response.send_modal(DescribeModal("button"))

    @discord.ui.select(
        custom_id="variant",
        options=[discord.SelectOption(label="A", value="a"), discord.SelectOption(label="B", value="b")],
        row=1,
    )
    async def variant(self, interaction: discord.Interaction, select: discord.ui.Select[ResultView]) -> None:
        await interaction.response.defer()  # type 6: @original is now the message the select sits on
        await interaction.edit_original_response(content=f"variant {select.values[0]}")


@app_commands.command(name="draw", description="Draw a picture")
@app_commands.describe(prompt="What to draw", size="Image size", steps="How many passes", reference="An image")
@app_commands.choices(
    size=[
        app_commands.Choice(name="square", value="1024x1024"),
        app_commands.Choice(name="landscape", value="1536x1024"),
    ]
)
async def draw(
    interaction: discord.Interaction,
    prompt: str,
    size: str = "1024x1024",
    steps: app_commands.Range[int, 1, 4] = 1,
    reference: discord.Attachment | None = None,
) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    if bot.slow_seconds:
        await asyncio.sleep(bot.slow_seconds)  # slow work before the ack: the bug the 3 s rule catches
    try:
        await interaction.response.defer(thinking=True)
    except discord.HTTPException as exc:
        bot.failures.append(exc)
        return
    reference_bytes = await reference.read() if reference is not None else None
    bot.draws.append({"prompt": prompt, "size": size, "steps": steps, "reference": reference_bytes})
    embed = discord.Embed(title=prompt[:256], description=f"{size}, {steps} step(s)")
    embed.set_image(url="attachment://result.png")
    await interaction.edit_original_response(
        content=f"Drew {prompt!r}",
        embed=embed,
        attachments=[discord.File(io.BytesIO(png_bytes()), "result.png")],
        view=ResultView(),
    )


@app_commands.command(name="later", description="Answer after the test says so")
async def later(interaction: discord.Interaction) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    await interaction.response.defer()
    await bot.release.wait()
    try:
        await interaction.edit_original_response(content="finally")
    except discord.HTTPException as exc:
        bot.failures.append(exc)


@app_commands.command(name="shout", description="Try an over-long reply, then a valid one")
async def shout(interaction: discord.Interaction) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    try:
        await interaction.response.send_message("A" * 2001)
    except discord.HTTPException as exc:
        bot.failures.append(exc)
    await interaction.response.send_message("A" * 2000)


@app_commands.command(name="upload", description="Follow up with a file of the given size")
async def upload(interaction: discord.Interaction, size: int) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    await interaction.response.defer(ephemeral=True)
    try:
        await interaction.followup.send(file=discord.File(io.BytesIO(b"\0" * size), "blob.bin"))
    except discord.HTTPException as exc:
        bot.failures.append(exc)
        await interaction.followup.send("too big", ephemeral=True)


@app_commands.command(name="twice", description="Acknowledge twice at the same time (a race bug)")
async def twice(interaction: discord.Interaction) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    results = await asyncio.gather(interaction.response.defer(), interaction.response.defer(), return_exceptions=True)
    bot.failures.extend(r for r in results if isinstance(r, BaseException))


@app_commands.command(name="eager", description="Follow up without acknowledging")
async def eager(interaction: discord.Interaction) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    try:
        await interaction.followup.send("too early")
    except discord.HTTPException as exc:
        bot.failures.append(exc)
    await interaction.response.send_message("late but fine")


@app_commands.command(name="post", description="Post to the channel")
async def post(interaction: discord.Interaction, text: str) -> None:
    await interaction.response.defer(ephemeral=True)
    assert isinstance(interaction.channel, discord.TextChannel)
    await interaction.channel.send(text)
    await interaction.followup.send("posted", ephemeral=True)


@app_commands.command(name="chain", description="Follow-ups: send, edit, delete, fetch the original")
async def chain(interaction: discord.Interaction) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    await interaction.response.defer()
    first = await interaction.followup.send("one", wait=True)
    second = await interaction.followup.send("two", wait=True)
    await second.edit(content="two!")
    await second.delete()
    original = await interaction.original_response()
    bot.chain.append((first.id, original.id, original.content))


@app_commands.command(name="card", description="Reply at once with a file and buttons (multipart callback)")
async def card(interaction: discord.Interaction) -> None:
    await interaction.response.send_message(
        "card", file=discord.File(io.BytesIO(png_bytes(16, 16)), "card.png"), view=ResultView()
    )


@app_commands.command(name="style", description="Pick a style")
async def style(interaction: discord.Interaction, name: str) -> None:
    await interaction.response.send_message(f"style {name}", ephemeral=True)


@style.autocomplete("name")
async def style_autocomplete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=s, value=s) for s in ("ink", "oil", "pastel") if s.startswith(current)]


budget = app_commands.Group(name="budget", description="Budgets")


@budget.command(name="default", description="Set the default allowance")
async def budget_default(interaction: discord.Interaction, amount: float, member: discord.Member | None = None) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    bot.budget_calls.append((amount, member.id if member else None))
    await interaction.response.send_message(f"default {amount}", ephemeral=True)


@app_commands.context_menu(name="Show budget")
async def show_budget(interaction: discord.Interaction, member: discord.Member) -> None:
    await interaction.response.send_message(f"budget of {member.display_name}", ephemeral=True)


@app_commands.context_menu(name="Edit image")
async def edit_image(interaction: discord.Interaction, message: discord.Message) -> None:
    bot: ThrowawayBot = interaction.client  # type: ignore[assignment]
    bot.context_targets.append([await a.read() for a in message.attachments])
    await interaction.response.send_modal(EditModal())


class ThrowawayBot(commands.Bot):
    """A minimal bot: guild-synced commands, a view, a modal, a context menu, and a reply listener."""

    def __init__(self, guild_id: int, *, message_content: bool = False) -> None:
        intents = discord.Intents.default()
        intents.members = True
        intents.message_content = message_content
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05, help_command=None
        )
        self.guild_id = guild_id
        self.slow_seconds = 0.0
        self.release = asyncio.Event()
        self.draws: list[dict[str, Any]] = []
        self.failures: list[BaseException] = []
        self.clicks: list[int] = []
        self.modal_values: list[tuple[str, str]] = []
        self.context_targets: list[list[bytes]] = []
        self.budget_calls: list[tuple[float, int | None]] = []
        self.messages_seen: list[discord.Message] = []
        self.chain: list[tuple[int, int, str]] = []
        self.resumed = asyncio.Event()

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause before re-IDENTIFYing (discord.py's default, pointless against the fake)."""

    async def setup_hook(self) -> None:
        guild = discord.Object(self.guild_id)
        for command in (
            draw,
            later,
            shout,
            upload,
            twice,
            eager,
            post,
            chain,
            card,
            style,
            budget,
            show_budget,
            edit_image,
        ):
            self.tree.add_command(command, guild=guild)
        await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        if message.author.id != self.user.id:  # type: ignore[union-attr]
            self.messages_seen.append(message)

    async def on_resumed(self) -> None:
        self.resumed.set()


@pytest_asyncio.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """The plugin's fake with its own replies checked against the spec too (requests always are), in this module:
    `assert_spec_clean` then vouches for both directions."""
    async with FakeDiscord(validate_openapi=True, validate_responses=True) as fake:
        yield fake


@pytest_asyncio.fixture
async def world(discord_seam: FakeDiscord) -> World:
    """The default world in the fake."""
    return discord_seam.default_world()


@pytest_asyncio.fixture
async def bot(discord_seam: FakeDiscord, world: World) -> AsyncIterator[ThrowawayBot]:
    """A running throwaway bot, logged in, synced and READY."""
    client = ThrowawayBot(world.guild_id)
    runner = asyncio.create_task(client.start(discord_seam.token))
    try:
        await discord_seam.wait_synced()
        await discord_seam.wait_ready()
        await asyncio.wait_for(client.wait_until_ready(), 10)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(runner, 10)


def assert_spec_clean(fake: FakeDiscord) -> None:
    """No request the bot sent, and no reply the fake gave, broke Discord's OpenAPI description."""
    assert fake.validate_openapi and fake.validate_responses, "both directions must be checked for this to mean much"
    assert fake.internal_errors == []
    assert fake.openapi_failures == []
    assert fake.openapi_response_failures == []
    assert fake.unhandled == []


def assert_spec_clean_but_one(fake: FakeDiscord, flagged: str) -> None:
    """`assert_spec_clean`, after taking off the one request the OpenAPI validator must flag (its message holds
    `flagged`). Without the spec that cannot be checked: the rest is, then the test is skipped with the reason, so
    the part left unchecked shows in the summary instead of passing silently."""
    reason = fake.openapi_skip_reason
    if reason is None:
        assert len(fake.openapi_failures) == 1, fake.openapi_failures
        assert flagged in fake.openapi_failures[0]
        fake.openapi_failures.clear()
    assert_spec_clean(fake)
    if reason is not None:
        pytest.skip(f"whether Discord's OpenAPI description refuses the request too was not checked: {reason}")


async def draw_result(fake: FakeDiscord, world: World, **options: Any) -> tuple[FakeInteraction, FakeMessage]:
    interaction = await fake.invoke_slash("draw", user_id=world.member_id, options={"prompt": "a fox", **options})
    message = await interaction.wait_message(lambda m: bool(m.attachments))
    return interaction, message


# ---------------------------------------------------------------------------- tests


async def test_login_sync_and_ready_give_the_bot_its_guild(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """Login, app info and command sync are recorded; READY/GUILD_CREATE (+ member chunk) build the bot's cache."""
    paths = [(r.method, r.path) for r in fake_discord.requests]
    assert ("GET", "/users/@me") in paths
    assert ("GET", "/oauth2/applications/@me") in paths
    assert ("PUT", f"/applications/4242/guilds/{world.guild_id}/commands") in paths
    assert fake_discord.sync_count == 1
    synced = {c["name"]: c for c in fake_discord.commands[world.guild_id]}
    assert {"draw", "later", "budget", "Edit image"} <= set(synced)
    assert synced["Edit image"]["type"] == 3
    assert fake_discord.identifies[0]["intents"] == bot.intents.value
    assert fake_discord.identifies[0]["token"] == fake_discord.token
    assert bot.application_id == fake_discord.application_id
    fetched = await bot.tree.fetch_commands(guild=discord.Object(world.guild_id))
    assert {c.name for c in fetched} == set(synced) and {c.id for c in fetched} == {
        int(c["id"]) for c in synced.values()
    }
    gateway = await bot.http.get_bot_gateway()
    assert gateway[1] == fake_discord.gateway_url.rstrip("/") and gateway[0] == 1

    guild = bot.get_guild(world.guild_id)
    assert guild is not None
    assert guild.get_channel(world.channel_id) is not None
    assert {r.name for r in guild.roles} >= {"@everyone", "Admin", "Artists", "Atelier"}
    # GUILD_CREATE carries only the bot without the presences intent; the members intent chunks the rest in.
    assert fake_discord.member_requests and fake_discord.member_requests[0]["limit"] == 0
    assert {m.id for m in guild.members} >= {world.admin_id, *world.member_ids, bot.user.id}  # type: ignore[union-attr]
    admin = guild.get_member(world.admin_id)
    assert admin is not None and admin.guild_permissions.manage_guild
    assert not guild.get_member(world.member_id).guild_permissions.manage_guild  # type: ignore[union-attr]
    assert_spec_clean(fake_discord)


async def test_slash_with_options_and_attachment_defers_then_edits_with_png_and_button(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """Options arrive typed, the ATTACHMENT option downloads from the fake CDN, the edit carries a PNG and a view."""
    reference = fake_discord.store_blob(png_bytes(8, 8, "red"), "ref.png")
    interaction = await fake_discord.invoke_slash(
        "draw",
        user_id=world.member_id,
        options={"prompt": "a fox", "size": "1536x1024", "steps": 3},
        attachments={"reference": reference},
    )
    callback = await interaction.wait_response()
    assert callback.status == 200 and callback.callback_type == 5
    assert interaction.deferred and interaction.ack_latency is not None and interaction.ack_latency < 1.0

    message = await interaction.wait_message(lambda m: bool(m.attachments))
    assert bot.draws == [{"prompt": "a fox", "size": "1536x1024", "steps": 3, "reference": reference.data}]
    assert any(hit.endswith("/ref.png") for hit in fake_discord.cdn_hits)
    assert message is interaction.original_message()
    assert message.content == "Drew 'a fox'" and not message.loading
    result = message.attachment("result.png")
    assert result.content_type == "image/png" and result.data.startswith(b"\x89PNG")
    assert (result.width, result.height) == (64, 48)
    assert message.embeds[0]["image"]["url"] == result.url  # attachment:// resolved like Discord does
    assert message.button_custom_ids() == ["again", "describe"]
    assert all(isinstance(c["id"], int) for c in message.iter_components())
    async with aiohttp.ClientSession() as session, session.get(result.url) as response:
        assert response.status == 200 and await response.read() == result.data
    patch = next(r for r in fake_discord.requests if r.method == "PATCH")
    assert patch.multipart and patch.json["attachments"][0]["filename"] == "result.png"
    assert_spec_clean(fake_discord)


async def test_external_images_are_served_through_the_media_proxy_only(fake_discord: FakeDiscord) -> None:
    """An embed picture from another site gets Discord's media-proxy form: the outside `url` as given, a `proxy_url`
    under /external/ that serves the bytes (and is logged as a CDN hit); an unknown proxy path is a 404."""
    picture = png_bytes(20, 10, "red")
    media = fake_discord.external_image("https://pictures.example/a b/cat.png?size=large", picture)

    assert media["url"] == "https://pictures.example/a b/cat.png?size=large"
    assert (media["width"], media["height"], media["content_type"]) == (20, 10, "image/png")
    assert media["proxy_url"].startswith(f"{fake_discord.base_url}/external/")
    assert media["proxy_url"].endswith("/https/pictures.example/a%20b/cat.png%3Fsize%3Dlarge")
    async with aiohttp.ClientSession() as session:
        async with session.get(media["proxy_url"]) as response:
            assert response.status == 200 and await response.read() == picture
        async with session.get(f"{fake_discord.base_url}/external/nope/https/pictures.example/x.png") as response:
            assert response.status == 404
    assert len([hit for hit in fake_discord.cdn_hits if hit.startswith("/external/")]) == 2


async def test_subcommands_and_option_errors_follow_the_synced_definitions(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """`budget default` nests as a subcommand; unknown commands, options and choices fail in the test, clearly."""
    interaction = await fake_discord.invoke_slash(
        "budget default", user_id=world.admin_id, options={"amount": 2.5, "member": world.member_id}
    )
    reply = await interaction.wait_message()
    assert reply.content == "default 2.5" and reply.ephemeral
    assert bot.budget_calls == [(2.5, world.member_id)]
    option = interaction.payload["data"]["options"][0]
    assert option["name"] == "default" and option["type"] == 1
    assert interaction.payload["data"]["resolved"]["members"][str(world.member_id)]["roles"]

    with pytest.raises(FakeDiscordUsageError, match="has not synced"):
        await fake_discord.invoke_slash("imagine", user_id=world.member_id, options={"prompt": "x"})
    with pytest.raises(FakeDiscordUsageError, match="needs a subcommand"):
        await fake_discord.invoke_slash("budget", user_id=world.admin_id)
    with pytest.raises(FakeDiscordUsageError, match="no option"):
        await fake_discord.invoke_slash("draw", user_id=world.member_id, options={"prompt": "x", "colour": "red"})
    with pytest.raises(FakeDiscordUsageError, match="synced choices"):
        await fake_discord.invoke_slash("draw", user_id=world.member_id, options={"prompt": "x", "size": "9x9"})
    with pytest.raises(FakeDiscordUsageError, match="within"):
        await fake_discord.invoke_slash("draw", user_id=world.member_id, options={"prompt": "x", "steps": 9})
    with pytest.raises(FakeDiscordUsageError, match="required"):
        await fake_discord.invoke_slash("draw", user_id=world.member_id)
    assert_spec_clean(fake_discord)


async def test_autocomplete_user_menu_and_select(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """Autocomplete gets type-8 choices; a user context menu resolves its target; a select defers and edits."""
    completion = await fake_discord.invoke_autocomplete("style", user_id=world.member_id, focused="name", value="o")
    assert (await completion.wait_response()).callback_type == 8
    assert completion.autocomplete_choices == [{"name": "oil", "value": "oil"}]

    menu = await fake_discord.invoke_user_command("Show budget", world.member_id, user_id=world.admin_id)
    assert (await menu.wait_message()).content == "budget of Artist"

    _, message = await draw_result(fake_discord, world)
    picked = await fake_discord.choose_select(message, "variant", ["b"], user_id=world.member_id)
    edited = await picked.wait_message()
    assert edited is message and message.content == "variant b"
    assert [(r.kind, r.callback_type, r.status) for r in picked.responses] == [
        ("callback", 6, 200),
        ("edit", None, 200),
    ]
    with pytest.raises(FakeDiscordUsageError, match="no option"):
        await fake_discord.choose_select(message, "variant", ["z"], user_id=world.member_id)
    assert_spec_clean(fake_discord)


async def test_follow_ups_can_be_edited_deleted_and_the_original_fetched(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """Webhook messages by id: the first follow-up replaced the placeholder, the second was edited then deleted."""
    interaction = await fake_discord.invoke_slash("chain", user_id=world.member_id)
    await fake_discord.wait_until(lambda: bot.chain, what="the chain to finish")
    first_id, original_id, original_content = bot.chain[0]
    assert first_id == original_id == interaction.original_message().id  # type: ignore[union-attr]
    assert original_content == "one"
    (second,) = interaction.followups
    assert second.deleted and second.content == "two!"
    assert [r.kind for r in interaction.responses] == ["callback", "followup", "followup", "edit", "delete", "get"]
    assert all(r.ok for r in interaction.responses)
    assert second.interaction_metadata and second.interaction_metadata["original_response_message_id"] == str(first_id)
    assert_spec_clean(fake_discord)


async def test_multipart_initial_response_and_update_keep_the_file(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """A type-4 reply with a file goes multipart; a type-7 update without files leaves the attachment in place."""
    interaction = await fake_discord.invoke_slash("card", user_id=world.member_id)
    message = await interaction.wait_message()
    assert interaction.responses[0].files and message.attachments[0].content_type == "image/png"
    assert message.type == 20 and message.interaction_metadata["user"]["id"] == str(world.member_id)  # type: ignore[index]
    await (await fake_discord.click_button(message, "again", user_id=world.member_id)).wait_response()
    assert message.content == "Drawing again…" and message.attachments[0].filename == "card.png"
    assert_spec_clean(fake_discord)


async def test_channel_rest_surface(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """Sends with files, edits keeping an attachment, reactions, typing, fetch, history, delete, permission checks."""
    channel = bot.get_channel(world.channel_id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("hello", file=discord.File(io.BytesIO(png_bytes()), "a.png"))
    stored = fake_discord.message(sent.id)
    assert stored.attachments[0].content_type == "image/png" and sent.attachments[0].url == stored.attachments[0].url
    edited = await sent.edit(
        content="hello again",
        attachments=[sent.attachments[0], discord.File(io.BytesIO(png_bytes(4, 4)), "b.png")],
    )
    assert [a.filename for a in edited.attachments] == ["a.png", "b.png"]
    assert edited.attachments[0].id == sent.attachments[0].id
    await sent.add_reaction("\N{THUMBS UP SIGN}")
    assert stored.reactions == ["\N{THUMBS UP SIGN}"]
    async with channel.typing():
        pass

    secret = await fake_discord.user_message(world.channel_id, user_id=world.member_id, content="secret words")
    fetched = await channel.fetch_message(secret.id)
    assert fetched.content == ""  # no Message Content intent, no mention: REST blanks it too
    assert [m.id async for m in channel.history(limit=2)] == [secret.id, sent.id]
    assert (await bot.fetch_user(world.member_id)).name == "artist"
    assert [r.id for r in (await channel.guild.fetch_member(world.admin_id)).roles][-1] == world.admin_role_id

    await sent.delete()
    assert stored.deleted
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(sent.id)
    with pytest.raises(discord.Forbidden):
        await fetched.edit(content="not mine")

    locked = fake_discord.add_channel(
        world.guild_id,
        name="locked",
        permission_overwrites=[{"id": world.bot_role_id, "type": 0, "deny": Permission.SEND_MESSAGES}],
    )
    await fake_discord.announce_guild(world.guild_id)
    cached = await fake_discord.wait_until(lambda: bot.get_channel(locked.id), what="the bot to see #locked")
    assert isinstance(cached, discord.TextChannel) and not cached.permissions_for(cached.guild.me).send_messages
    with pytest.raises(discord.Forbidden) as refused:
        await cached.send("let me in")
    assert refused.value.code == 50013
    assert_spec_clean(fake_discord)


async def test_late_ack_is_rejected_with_10062(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """A bot that works before deferring misses the deadline: 404 / 10062, recorded as a late ack."""
    fake_discord.ack_deadline = 0.3
    bot.slow_seconds = 0.45
    interaction = await fake_discord.invoke_slash("draw", user_id=world.member_id, options={"prompt": "slow"})
    callback = await interaction.wait_response()
    assert (callback.status, callback.code) == (404, 10062)
    assert interaction.ack_status == 404 and not interaction.acknowledged
    assert [v.code for v in fake_discord.late_acks] == [10062]
    assert fake_discord.late_acks[0].interaction_id == interaction.id
    await fake_discord.wait_until(lambda: bot.failures, what="the bot to see the failure")
    assert isinstance(bot.failures[0], discord.NotFound) and bot.failures[0].code == 10062
    assert_spec_clean(fake_discord)


async def test_second_ack_is_rejected_with_40060(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """Two concurrent initial responses: the first wins, the second gets 400 / 40060."""
    interaction = await fake_discord.invoke_slash("twice", user_id=world.member_id)
    await fake_discord.wait_until(lambda: len(interaction.responses) == 2, what="two callbacks")
    assert sorted((r.status, r.code) for r in interaction.responses) == [(200, None), (400, 40060)]
    assert interaction.ack_status == 200
    await fake_discord.wait_until(lambda: bot.failures, what="the bot to see the failure")
    assert isinstance(bot.failures[0], discord.HTTPException) and bot.failures[0].code == 40060
    assert [e.code for e in fake_discord.errors] == [40060]
    assert_spec_clean(fake_discord)


async def test_token_expires_after_15_minutes_of_fake_time(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """Editing the original response 15 minutes after dispatch gets 401 / 50027."""
    interaction = await fake_discord.invoke_slash("later", user_id=world.member_id)
    await interaction.wait_response()
    fake_discord.advance_time(15 * 60 + 1)
    bot.release.set()
    rejected = await fake_discord.wait_for_request(lambda r: r.method == "PATCH")
    assert (rejected.status, rejected.code) == (401, 50027)
    await fake_discord.wait_until(lambda: bot.failures, what="the bot to see the failure")
    assert bot.failures[0].code == 50027  # type: ignore[attr-defined]
    assert interaction.responses[-1].kind == "edit" and interaction.responses[-1].status == 401
    assert interaction.original_message() is not None and interaction.original_message().loading  # type: ignore[union-attr]
    assert_spec_clean(fake_discord)


async def test_follow_up_before_ack_is_404(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """A follow-up before any initial response is refused; the response after it still works."""
    interaction = await fake_discord.invoke_slash("eager", user_id=world.member_id)
    reply = await interaction.wait_message()
    assert reply.content == "late but fine"
    assert [(r.kind, r.status) for r in interaction.responses] == [("followup", 404), ("callback", 200)]
    assert bot.failures[0].code == 10015  # type: ignore[attr-defined]
    assert_spec_clean(fake_discord)


async def test_oversize_file_is_413_and_first_follow_up_edits_the_placeholder(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """A file over attachment_size_limit gets 413 / 40005; the next follow-up replaces the deferred placeholder."""
    fake_discord.attachment_size_limit = 1000
    interaction = await fake_discord.invoke_slash("upload", user_id=world.member_id, options={"size": 1001})
    assert interaction.payload["attachment_size_limit"] == 1000
    reply = await interaction.wait_message()
    assert reply.content == "too big" and reply.ephemeral
    assert reply is interaction.original_message()  # deprecated but documented: it edited the loading message
    assert interaction.followups == []
    assert (bot.failures[0].status, bot.failures[0].code) == (413, 40005)  # type: ignore[attr-defined]
    assert [(e.status, e.code) for e in fake_discord.errors] == [(413, 40005)]
    assert_spec_clean(fake_discord)


async def test_content_over_2000_characters_is_50035(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """2001 characters are refused with Invalid Form Body; the rejected reply does not use up the ack."""
    interaction = await fake_discord.invoke_slash("shout", user_id=world.member_id)
    reply = await interaction.wait_message()
    assert len(reply.content) == 2000
    error = bot.failures[0]
    assert isinstance(error, discord.HTTPException) and error.code == 50035
    assert "2000 or fewer" in str(error)
    assert [(r.status, r.code) for r in interaction.responses] == [(400, 50035), (200, None)]
    assert_spec_clean_but_one(fake_discord, "data/content: length 2001 breaks maxLength 2000")


async def test_button_click_reaches_the_view_and_updates_the_message(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """Clicking a button on the message the fake returned routes to the View (message id + custom_id)."""
    _, message = await draw_result(fake_discord, world)
    click = await fake_discord.click_button(message, "again", user_id=world.other_member_id)
    callback = await click.wait_response()
    assert (callback.status, callback.callback_type) == (200, 7)
    assert bot.clicks == [world.other_member_id]
    assert message.content == "Drawing again…" and message.edits[-1]["content"] == "Drawing again…"
    assert message.attachments and message.attachments[0].filename == "result.png"  # untouched by the update
    with pytest.raises(FakeDiscordUsageError, match="no such component"):
        await fake_discord.click_button(message, "missing", user_id=world.member_id)
    assert_spec_clean(fake_discord)


async def test_modal_submit_round_trip(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """A button opens a modal; the submit echoes its custom_id and components and reaches on_submit."""
    _, message = await draw_result(fake_discord, world)
    click = await fake_discord.click_button(message, "describe", user_id=world.member_id)
    await click.wait_response()
    assert click.modal is not None and click.modal["title"] == "Describe the change"
    submit = await fake_discord.submit_modal(click, {"change": "make it blue"})
    reply = await submit.wait_message()
    assert reply.content == "Will change: make it blue" and reply.ephemeral
    assert bot.modal_values == [("button", "make it blue")]
    assert submit.payload["data"]["custom_id"] == click.modal["custom_id"]
    assert submit.payload["message"]["id"] == str(message.id)
    with pytest.raises(FakeDiscordUsageError, match="no field"):
        await fake_discord.submit_modal(click, {"nope": "x"})
    assert_spec_clean(fake_discord)


async def test_message_context_menu_on_a_stored_message(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """The context-menu target carries the message with its attachments, which the bot can download."""
    picture = png_bytes(10, 10, "green")
    target = await fake_discord.user_message(
        world.channel_id,
        user_id=world.member_id,
        content="my cat",
        attachments=[fake_discord.store_blob(picture, "cat.png")],
    )
    interaction = await fake_discord.invoke_message_command("Edit image", target, user_id=world.member_id)
    await interaction.wait_response()
    assert interaction.payload["data"]["target_id"] == str(target.id)
    assert bot.context_targets == [[picture]]
    assert interaction.modal is not None and [c["type"] for c in interaction.modal["components"]] == [18, 18]
    submit = await fake_discord.submit_modal(interaction, {"change": "add a hat", "strength": ["strong"]})
    assert (await submit.wait_response()).callback_type == 6
    assert bot.modal_values == [("context", "add a hat (strong)")]
    assert "message" not in submit.payload  # a modal from a command is not attached to a message
    assert_spec_clean(fake_discord)


async def test_user_messages_and_replies_arrive_as_message_create(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """A reply to the bot's result arrives with message_reference and (pinging the bot) its content.

    Without the Message Content intent, a message that does not mention the bot arrives blank.
    """
    _, result = await draw_result(fake_discord, world)
    reply = await fake_discord.user_message(
        world.channel_id, user_id=world.member_id, content="make it red", reply_to=result
    )
    plain = await fake_discord.user_message(world.channel_id, user_id=world.member_id, content="hello all")
    await fake_discord.wait_until(lambda: len(bot.messages_seen) == 2, what="both messages")
    seen_reply, seen_plain = bot.messages_seen
    assert seen_reply.id == reply.id and seen_reply.content == "make it red"
    assert seen_reply.reference is not None and seen_reply.reference.message_id == result.id
    assert isinstance(seen_reply.reference.resolved, discord.Message)
    assert seen_reply.reference.resolved.attachments[0].filename == "result.png"  # the bot's own message: visible
    assert bot.user in seen_reply.mentions
    assert seen_plain.id == plain.id and seen_plain.content == ""
    assert_spec_clean(fake_discord)


async def test_planned_429s_are_retried_by_discord_py(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """429s with Via, retry_after and X-RateLimit-* make discord.py wait and retry, on REST and webhook routes."""
    fake_discord.plan_429("POST", r"^/channels/\d+/messages$", times=2, retry_after=0.05)
    fake_discord.plan_429("POST", r"^/webhooks/", times=1, retry_after=0.05)
    interaction = await fake_discord.invoke_slash("post", user_id=world.member_id, options={"text": "hi all"})
    await interaction.wait_message(lambda m: m.content == "posted")
    posts = [r for r in fake_discord.requests if r.path == f"/channels/{world.channel_id}/messages"]
    assert [r.status for r in posts] == [429, 429, 200]
    assert posts[0].response["retry_after"] == 0.05
    webhooks = [r for r in fake_discord.requests if r.path.startswith("/webhooks/")]
    assert [r.status for r in webhooks] == [429, 200]
    assert [m.content for m in fake_discord.channel_messages(world.channel_id, include_ephemeral=False)][-1] == "hi all"

    fake_discord.plan_429("GET", r"^/users/\d+$", global_=True, retry_after=0.05)
    assert (await bot.fetch_user(world.member_id)).id == world.member_id
    lookups = [r for r in fake_discord.requests if r.path == f"/users/{world.member_id}"]
    assert [r.status for r in lookups] == [429, 200] and lookups[0].response["global"] is True
    assert_spec_clean(fake_discord)


async def test_killed_gateway_resumes_and_replays_missed_events(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """After a close with 4000 the client RESUMEs at resume_gateway_url; events sent meanwhile are replayed."""
    fake_discord.heartbeat_interval_ms = 100
    session = fake_discord.sessions[0]
    await fake_discord.kill_gateway(4000)
    missed = await fake_discord.invoke_slash("budget default", user_id=world.admin_id, options={"amount": 1.0})
    await asyncio.wait_for(bot.resumed.wait(), 10)
    assert fake_discord.resumes[0]["session_id"] == session.session_id
    assert fake_discord.gateway_connections[-1].startswith("/resume-gateway/")
    assert len(fake_discord.identifies) == 1
    reply = await missed.wait_message()
    assert reply.content == "default 1.0"
    await fake_discord.wait_until(lambda: fake_discord.heartbeats >= 3, what="heartbeats on the new socket")
    assert_spec_clean(fake_discord)


async def test_invalidated_session_makes_the_client_identify_again(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """A RESUME of an invalidated session gets INVALID_SESSION and the client IDENTIFYs afresh."""
    await fake_discord.kill_gateway(4000, resumable=False)
    await fake_discord.wait_until(lambda: len(fake_discord.identifies) == 2, timeout=15, what="a second IDENTIFY")
    await fake_discord.wait_ready()
    interaction = await fake_discord.invoke_slash("budget default", user_id=world.admin_id, options={"amount": 3.0})
    assert (await interaction.wait_message()).content == "default 3.0"
    assert len(fake_discord.resumes) == 1
    assert_spec_clean(fake_discord)


async def test_every_request_validates_against_the_openapi_spec(
    openapi_spec: OpenAPIChecker, fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """The whole surface (sync, defer, multipart edit, modal, type-7 update, follow-ups, sends) is spec-clean."""
    assert fake_discord.openapi_skip_reason is None
    _, message = await draw_result(fake_discord, world)
    click = await fake_discord.click_button(message, "describe", user_id=world.member_id)
    await click.wait_response()
    await (await fake_discord.submit_modal(click, {"change": "x"})).wait_message()
    await (await fake_discord.click_button(message, "again", user_id=world.member_id)).wait_response()
    post_done = await fake_discord.invoke_slash("post", user_id=world.member_id, options={"text": "t"})
    await post_done.wait_message(lambda m: m.content == "posted")
    methods = {(r.method, r.path.split("/")[1]) for r in fake_discord.requests}
    assert {("PUT", "applications"), ("POST", "interactions"), ("PATCH", "webhooks"), ("POST", "channels")} <= methods
    assert_spec_clean(fake_discord)
    # The validator is live: a body breaking the spec is reported, not swallowed.
    assert openapi_spec.validate_request(
        "POST",
        "/channels/1/messages",
        query={},
        headers={"Authorization": "Bot x"},
        payload={"tts": "yes"},
        has_body=True,
    )


# ---------------------------------------------------------------------------- raw HTTP and WebSocket


def _auth(fake: FakeDiscord) -> dict[str, str]:
    return {"Authorization": f"Bot {fake.token}"}


async def _post_files(fake: FakeDiscord, channel_id: int, count: int) -> tuple[int, Any]:
    """POST a multipart message with `count` small PNGs to the channel, as discord.py lays it out."""
    form = aiohttp.FormData(quote_fields=False)
    attachments = [{"id": n, "filename": f"f{n}.png"} for n in range(count)]
    form.add_field("payload_json", json.dumps({"content": "files", "attachments": attachments}))
    for n in range(count):
        form.add_field(f"files[{n}]", png_bytes(4, 4), filename=f"f{n}.png", content_type="application/octet-stream")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.api_base}/channels/{channel_id}/messages", data=form, headers=_auth(fake)) as response,
    ):
        return response.status, await response.json()


async def _post_json(fake: FakeDiscord, channel_id: int, payload: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{fake.api_base}/channels/{channel_id}/messages", json=payload, headers=_auth(fake)) as response,
    ):
        return response.status, await response.json()


async def test_gateway_bot_says_where_to_connect(fake_discord: FakeDiscord, bot: ThrowawayBot, world: World):
    """`GET /gateway/bot` over HTTP gives the fake's gateway, one shard and a session start limit, as discord.py reads
    them (an AutoShardedClient asks it before connecting)."""
    shards, url, limit = await bot.http.get_bot_gateway()

    assert (shards, url) == (1, fake_discord.gateway_url.rstrip("/"))
    assert set(limit) == {"total", "remaining", "reset_after", "max_concurrency"}
    assert limit["remaining"] <= limit["total"]
    request = fake_discord.requests[-1]
    assert (request.method, request.path, request.status) == ("GET", "/gateway/bot", 200)
    assert_spec_clean(fake_discord)


async def test_ten_files_are_accepted_and_eleven_are_invalid_form_body(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """Over real HTTP a message may carry 10 files; an 11th makes it 400 / 50035 pointing at `attachments`."""
    status, ten = await _post_files(fake_discord, world.channel_id, 10)
    assert status == 200 and len(ten["attachments"]) == 10

    status, eleven = await _post_files(fake_discord, world.channel_id, 11)

    assert (status, eleven["code"]) == (400, 50035)
    assert eleven["errors"]["attachments"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert [(e.status, e.code) for e in fake_discord.errors] == [(400, 50035)]
    assert len(fake_discord.channel_messages(world.channel_id)) == 1
    assert_spec_clean_but_one(fake_discord, "InvalidRequestBody at attachments")


async def test_embeds_over_6000_characters_in_total_are_invalid_form_body(
    fake_discord: FakeDiscord, bot: ThrowawayBot, world: World
):
    """Over real HTTP embeds totalling 6000 characters pass; 6001 (each field within its own limit) are 400 / 50035
    pointing at `embeds`."""
    title, description = "t" * 256, "d" * 4096
    at_limit = {"embeds": [{"title": title, "description": description}, {"description": "d" * 1648}]}
    over = {"embeds": [{"title": title, "description": description}, {"description": "d" * 1649}]}

    status, accepted = await _post_json(fake_discord, world.channel_id, at_limit)
    assert status == 200 and len(accepted["embeds"]) == 2
    status, refused = await _post_json(fake_discord, world.channel_id, over)

    assert (status, refused["code"]) == (400, 50035)
    assert "embeds" in refused["errors"]
    assert [(e.status, e.code) for e in fake_discord.errors] == [(400, 50035)]
    assert_spec_clean(fake_discord)


@pytest.mark.parametrize(
    ("intents", "wrong_token", "close"),
    [
        (Intent.GUILDS | Intent.MESSAGE_CONTENT, False, (4014, "Disallowed intent(s).")),
        (Intent.GUILDS | Intent.GUILD_MEMBERS, False, None),
        (1 << 40, False, (4013, "Invalid intent(s).")),
        (Intent.GUILDS, True, (4004, "Authentication failed.")),
    ],
)
async def test_identify_is_refused_with_discords_close_codes(
    intents: int, wrong_token: bool, close: tuple[int, str] | None
):
    """With only the Server Members intent switched on for the application, IDENTIFY asking for Message Content is
    closed with 4014, an undefined intent bit with 4013 and a wrong token with 4004; the allowed one gets READY."""
    async with (
        FakeDiscord(validate_openapi=False, privileged_intents=Intent.GUILD_MEMBERS) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.gateway_url) as ws,
    ):
        assert (await ws.receive_json())["op"] == 10
        token = "wrong" if wrong_token else fake.token
        await ws.send_json({"op": 2, "d": {"token": token, "intents": int(intents), "properties": {}}})
        reply = await ws.receive()
        async with http.get(f"{fake.api_base}/applications/@me", headers=_auth(fake)) as response:
            flags = (await response.json())["flags"]

    assert flags == 1 << 15, "GATEWAY_GUILD_MEMBERS_LIMITED only"
    if close is None:
        assert json.loads(reply.data)["t"] == "READY"
        assert fake.gateway_closes == [] and len(fake.identifies) == 1
    else:
        assert reply.type is aiohttp.WSMsgType.CLOSE and (reply.data, reply.extra) == close
        assert fake.gateway_closes == [close] and fake.identifies == []


@pytest.mark.parametrize(
    ("flags", "allowed"),
    [(1 << 19, True), (1 << 18, True), (1 << 18 | 1 << 19, True), (1 << 15 | 1 << 13, False), (0, False)],
)
async def test_application_flags_are_served_and_rule_the_gateway(
    fake_discord: FakeDiscord, flags: int, allowed: bool
) -> None:
    """A test sets the application's flags: `GET /applications/@me` serves them (valid against the spec, replies
    included), and IDENTIFY asking for Message Content gets READY exactly when GATEWAY_MESSAGE_CONTENT (1 << 18) or
    its _LIMITED form (1 << 19) is set, else 4014."""
    fake_discord.application_flags = flags
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake_discord.api_base}/applications/@me", headers=_auth(fake_discord)) as response:
            body = await response.json()
        async with http.ws_connect(fake_discord.gateway_url) as ws:
            assert (await ws.receive_json())["op"] == 10
            intents = int(Intent.GUILDS | Intent.MESSAGE_CONTENT)
            await ws.send_json({"op": 2, "d": {"token": fake_discord.token, "intents": intents, "properties": {}}})
            reply = await ws.receive()

    assert body["flags"] == flags and body["flags_new"] == str(flags)
    if allowed:
        assert json.loads(reply.data)["t"] == "READY"
        assert fake_discord.gateway_closes == []
    else:
        assert (reply.data, reply.extra) == (4014, "Disallowed intent(s).")
    assert_spec_clean(fake_discord)


def _button(custom_id: str) -> dict[str, Any]:
    return {"type": 2, "style": 1, "label": custom_id[:80], "custom_id": custom_id}


@pytest.mark.parametrize(
    ("payload", "files", "path"),
    [
        ({"content": "x" * 2001}, 0, "content"),
        ({"embeds": [{"title": "t"}] * 11}, 0, "embeds"),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, 0, "embeds"),
        ({"embeds": [{"title": "t" * 257}]}, 0, "embeds.0.title"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, 0, "embeds.0.fields"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, 0, "embeds.0.fields.0.value"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}]}, 0, "embeds.0.footer.text"),
        ({"content": "x"}, 11, "attachments"),
        (
            {"components": [{"type": 1, "components": [_button(f"b{i}") for i in range(6)]}]},
            0,
            "components.0.components",
        ),
        ({"components": [{"type": 1, "components": [_button("x" * 101)]}]}, 0, "components.0.components.0.custom_id"),
        ({"components": [{"type": 1, "components": [_button("")]}]}, 0, "components.0.components.0.custom_id"),
        (
            {"components": [{"type": 1, "components": [_button("a"), _button("a")]}]},
            0,
            "components.0.components.1.custom_id",
        ),
        ({"components": [{"type": 1, "components": [_button("a")]}] * 6}, 0, "components"),
    ],
)
def test_message_rules_answer_invalid_form_body(payload: dict[str, Any], files: int, path: str):
    """Each documented message limit is a 400 / 50035 whose nested errors point at the offending field."""
    with pytest.raises(FakeHTTPError) as raised:
        check_message(payload, file_count=files, limits=Limits(), allowed_flags=1 << 6, require_body=True)
    error = raised.value
    assert (error.status, error.code) == (400, 50035)
    node = error.errors
    for part in path.split("."):
        node = node[part]  # type: ignore[index]
    assert node["_errors"][0]["message"]  # type: ignore[index]


def test_message_rules_accept_the_limits_themselves_and_refuse_empty_messages():
    """Exactly-at-limit bodies pass; a body with nothing to show is 50006."""
    at_limit = {
        "content": "x" * 2000,
        "embeds": [{"title": "t" * 256, "description": "d" * 4096}, {"description": "d" * (6000 - 256 - 4096)}],
        "components": [{"type": 1, "components": [_button(f"b{i}{j}") for j in range(5)]} for i in range(5)],
    }
    check_message(at_limit, file_count=10, limits=Limits(), allowed_flags=0, require_body=True)
    with pytest.raises(FakeHTTPError) as raised:
        check_message({"content": ""}, file_count=0, limits=Limits(), allowed_flags=0, require_body=True)
    assert raised.value.code == 50006
    with pytest.raises(FakeHTTPError, match="flags"):
        check_message(
            {"content": "x", "flags": 1 << 6}, file_count=0, limits=Limits(), allowed_flags=0, require_body=True
        )


def test_modal_rules():
    """Modals need a 1-100 custom_id, a 1-45 title and 1-5 components; text inputs stay within 4000."""
    text = {"type": 4, "custom_id": "a", "style": 1, "label": "A"}
    check_modal({"custom_id": "m", "title": "T", "components": [{"type": 1, "components": [text]}]}, Limits())
    for bad in (
        {"custom_id": "", "title": "T", "components": [{"type": 1, "components": [text]}]},
        {"custom_id": "m", "title": "T" * 46, "components": [{"type": 1, "components": [text]}]},
        {"custom_id": "m", "title": "T", "components": []},
        {
            "custom_id": "m",
            "title": "T",
            "components": [{"type": 18, "label": "L", "component": {**text, "max_length": 4001}}],
        },
    ):
        with pytest.raises(FakeHTTPError) as raised:
            check_modal(bad, Limits())
        assert raised.value.code == 50035


def test_validator_reports_a_clear_skip_reason_without_the_spec(tmp_path: Path):
    """With no spec file the checker is unavailable and says where it looked and how to fix it."""
    from fakes.openapi_check import get_checker

    checker = get_checker(tmp_path / "missing.json")
    assert not checker.available
    assert checker.skip_reason is not None and "DISCORD_OPENAPI_SPEC" in checker.skip_reason
    assert checker.validate_request("GET", "/users/@me", query={}, headers={}) is None


# ---------------------------------------------------------------------------- other processes

BOT_SCRIPT = textwrap.dedent(
    """
    import io, os, sys
    import discord, yarl
    from discord import app_commands

    discord.http.Route.BASE = os.environ["DISCORD_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["DISCORD_GATEWAY_URL"])
    guild = discord.Object(int(os.environ["GUILD_ID"]))

    class Bot(discord.Client):
        def __init__(self):
            super().__init__(intents=discord.Intents.default(), guild_ready_timeout=0.05)
            self.tree = app_commands.CommandTree(self)

        async def setup_hook(self):
            @self.tree.command(name="ping", description="pong", guild=guild)
            async def ping(interaction: discord.Interaction):
                await interaction.response.defer()
                await interaction.edit_original_response(
                    content="pong", attachments=[discord.File(io.BytesIO(b"GIF89a" + bytes(20)), "p.gif")]
                )
            await self.tree.sync(guild=guild)

    Bot().run(os.environ["DISCORD_TOKEN"], log_handler=None)
    """
)


@pytest.mark.slow
async def test_bot_in_a_subprocess_talks_to_the_fake_in_the_test_process(fake_discord: FakeDiscord, tmp_path: Path):
    """The documented cross-process set-up: fake here, bot elsewhere, configured only by environment variables."""
    world = fake_discord.default_world()
    script = tmp_path / "bot.py"
    script.write_text(BOT_SCRIPT)
    env = {
        **os.environ,
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "DISCORD_TOKEN": fake_discord.token,
        "GUILD_ID": str(world.guild_id),
    }
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    try:
        await fake_discord.wait_synced(timeout=30)
        await fake_discord.wait_ready(timeout=30)
        interaction = await fake_discord.invoke_slash("ping", user_id=world.member_id)
        message = await interaction.wait_message(lambda m: bool(m.attachments))
        assert message.content == "pong" and message.attachments[0].content_type == "image/gif"
        assert_spec_clean(fake_discord)
    finally:
        process.terminate()
        await process.wait()
    await fake_discord.wait_disconnected()


@pytest.mark.slow
async def test_standalone_mode_prints_its_urls_and_serves_the_control_api(tmp_path: Path):
    """``python -m fakes.discord`` prints the env lines; ``/_fake`` drives it from another process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.discord",
        "--port",
        "0",
        "--no-openapi",
        "--default-world",
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        settings: dict[str, str] = {}
        while "FAKE_WORLD_MEMBER_IDS" not in settings:
            line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
            assert line, "the fake exited before printing its settings"
            key, _, value = line.partition("=")
            settings[key] = value
        assert settings["DISCORD_API_BASE"].startswith("http://127.0.0.1:")
        assert settings["DISCORD_API_BASE"].endswith("/api/v10")
        assert settings["DISCORD_GATEWAY_URL"].startswith("ws://127.0.0.1:")
        control = settings["FAKE_DISCORD_CONTROL"]
        guild_id = int(settings["FAKE_WORLD_GUILD_ID"])
        member_id = int(settings["FAKE_WORLD_MEMBER_IDS"].split(",")[0])

        client = ThrowawayBot(guild_id)
        with pointed_at(settings["DISCORD_API_BASE"], settings["DISCORD_GATEWAY_URL"]):
            runner = asyncio.create_task(client.start(settings["DISCORD_TOKEN"]))
            try:
                async with aiohttp.ClientSession() as http:
                    async with http.post(f"{control}/wait_ready") as response:
                        assert response.status == 200
                    body = {"name": "budget default", "user_id": member_id, "options": {"amount": 4.0}}
                    async with http.post(f"{control}/invoke/slash", json=body) as response:
                        interaction_id = (await response.json())["id"]
                    for _ in range(100):
                        async with http.get(f"{control}/interactions/{interaction_id}") as response:
                            summary = await response.json()
                        if summary["messages"]:
                            break
                        await asyncio.sleep(0.05)
                    assert summary["ack_status"] == 200
                    assert summary["messages"][0]["content"] == "default 4.0"
                    async with http.get(f"{control}/state") as response:
                        state = await response.json()
                    assert state["sync_count"] == 1 and state["errors"] == []
            finally:
                await client.close()
                await asyncio.wait_for(runner, 10)
    finally:
        process.terminate()
        await process.wait()


async def test_json_replies_use_the_exact_content_type():
    """Pitfall 1: discord.py compares Content-Type with ==, so JSON replies must say exactly application/json."""
    async with FakeDiscord(validate_openapi=False) as fake, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with http.get(f"{fake.api_base}/users/@me", headers=headers) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert json.loads(await response.text())["id"] == str(fake.bot_user_id)
        async with http.get(f"{fake.api_base}/users/@me") as response:
            assert response.status == 401 and response.headers["Content-Type"] == "application/json"
        assert [(e.status, e.code) for e in fake.errors] == [(401, 0)]


# ------------------------------------------------------------------ shards


async def _identify(ws: aiohttp.ClientWebSocketResponse, fake: FakeDiscord, shard: Any) -> aiohttp.WSMessage:
    """Read HELLO, IDENTIFY (with `shard` unless None) for guilds and guild messages; return the next frame."""
    assert (await ws.receive_json())["op"] == 10
    data: dict[str, Any] = {"token": fake.token, "intents": int(Intent.GUILDS | Intent.GUILD_MESSAGES)}
    if shard is not None:
        data["shard"] = shard
    await ws.send_json({"op": 2, "d": {**data, "properties": {}}})
    return await ws.receive()


@pytest.mark.parametrize(
    ("shard", "required", "close"),
    [
        ([1, 3], False, None),
        ([2, 3], True, None),
        (None, False, None),
        ([3, 3], False, (4010, "Invalid shard.")),
        ([0, 2], False, (4010, "Invalid shard.")),
        ([-1, 3], False, (4010, "Invalid shard.")),
        ([0, 3, 1], False, (4010, "Invalid shard.")),
        ("0/3", False, (4010, "Invalid shard.")),
        (None, True, (4011, "Sharding required.")),
    ],
)
async def test_identify_with_a_wrong_shard_is_closed_with_4010_and_without_one_when_required_with_4011(
    shard: Any, required: bool, close: tuple[int, str] | None
) -> None:
    """A fake of 3 shards accepts `[id, 3]` with id < 3 (READY says which shard); another count, an id out of range
    or a malformed shard is closed with 4010; no shard is accepted unless sharding is required (then 4011)."""
    async with (
        FakeDiscord(validate_openapi=False, shard_count=3, require_shards=required) as fake,
        aiohttp.ClientSession() as http,
        http.ws_connect(fake.gateway_url) as ws,
    ):
        reply = await _identify(ws, fake, shard)

    if close is None:
        ready = json.loads(reply.data)
        assert ready["t"] == "READY" and ready["d"].get("shard") == shard
        assert fake.gateway_closes == [] and len(fake.identifies) == 1
    else:
        assert reply.type is aiohttp.WSMsgType.CLOSE and (reply.data, reply.extra) == close
        assert fake.gateway_closes == [close] and fake.identifies == []


async def test_each_guilds_events_go_to_the_session_of_its_shard() -> None:
    """Three sessions (shards 0, 1, 2 of 3) and a guild on each shard: READY lists, GUILD_CREATE sends and
    MESSAGE_CREATE reaches only the session of shard `(guild_id >> 22) % 3`; an unsharded session gets them all;
    `GET /gateway/bot` recommends the 3 shards."""
    async with FakeDiscord(validate_openapi=False, shard_count=3) as fake, aiohttp.ClientSession() as http:
        worlds = [fake.default_world(shard=shard) for shard in range(3)]
        assert [(world.guild_id >> 22) % 3 for world in worlds] == [0, 1, 2]
        async with http.get(f"{fake.api_base}/gateway/bot", headers=_auth(fake)) as response:
            assert (await response.json())["shards"] == 3
        sockets = [await http.ws_connect(fake.gateway_url) for _ in range(4)]
        try:
            for shard, ws in enumerate(sockets):
                ready = json.loads((await _identify(ws, fake, [shard, 3] if shard < 3 else None)).data)
                guilds = [int(guild["id"]) for guild in ready["d"]["guilds"]]
                created = [json.loads((await ws.receive()).data) for _ in guilds]
                expected = [worlds[shard].guild_id] if shard < 3 else [world.guild_id for world in worlds]
                assert guilds == expected
                assert [(event["t"], int(event["d"]["id"])) for event in created] == [
                    ("GUILD_CREATE", guild_id) for guild_id in expected
                ]
            for world in reversed(worlds):
                await fake.user_message(world.channel_id, user_id=world.member_id, content="hello")
            for shard, ws in enumerate(sockets):
                events = [json.loads((await ws.receive()).data) for _ in range(1 if shard < 3 else 3)]
                guilds = [int(event["d"]["guild_id"]) for event in events if event["t"] == "MESSAGE_CREATE"]
                assert guilds == ([worlds[shard].guild_id] if shard < 3 else [w.guild_id for w in reversed(worlds)])
            # Nothing else was sent: each shard's session saw READY, one GUILD_CREATE and one MESSAGE_CREATE.
            assert [session.seq for session in fake.sessions] == [3, 3, 3, 7]
        finally:
            for ws in sockets:
                await ws.close()


async def test_via_shard_delivers_one_interaction_to_the_session_of_the_chosen_shard_only() -> None:
    """The test override `invoke_slash(..., via_shard=1)` sends a guild of shard 0's interaction to shard 1's session
    (not to shard 0's); a shard no session runs is a usage error."""
    async with FakeDiscord(validate_openapi=False, shard_count=2) as fake, aiohttp.ClientSession() as http:
        world = fake.default_world(shard=0)
        command = {"name": "ping", "description": "Ping", "type": 1}
        url = f"{fake.api_base}/applications/{fake.application_id}/commands"
        async with http.put(url, json=[command], headers=_auth(fake)) as response:
            assert response.status == 200
        sockets = [await http.ws_connect(fake.gateway_url) for _ in range(2)]
        try:
            assert json.loads((await _identify(sockets[0], fake, [0, 2])).data)["t"] == "READY"
            await sockets[0].receive()  # GUILD_CREATE
            assert json.loads((await _identify(sockets[1], fake, [1, 2])).data)["t"] == "READY"
            interaction = await fake.invoke_slash(
                "ping", user_id=world.member_id, guild_id=world.guild_id, channel_id=world.channel_id, via_shard=1
            )
            event = json.loads((await sockets[1].receive()).data)
            assert (event["t"], int(event["d"]["id"]), int(event["d"]["guild_id"])) == (
                "INTERACTION_CREATE",
                interaction.id,
                world.guild_id,
            )
            assert [session.seq for session in fake.sessions] == [2, 2]  # shard 0: READY, GUILD_CREATE only
            with pytest.raises(FakeDiscordUsageError, match="no identified session runs shard 2"):
                await fake.invoke_slash("ping", user_id=world.member_id, guild_id=world.guild_id, via_shard=2)
        finally:
            for ws in sockets:
                await ws.close()


async def test_an_identify_on_one_shard_leaves_another_shards_dropped_session_resumable() -> None:
    """A new IDENTIFY drops only the disconnected sessions of its own shard: shard 1, between a dropped socket and
    its RESUME, gets the events it missed replayed while shard 0 identified again meanwhile."""
    async with FakeDiscord(validate_openapi=False, shard_count=2) as fake, aiohttp.ClientSession() as http:
        world = fake.default_world(shard=1)
        async with http.ws_connect(fake.gateway_url) as ws:
            ready = json.loads((await _identify(ws, fake, [1, 2])).data)
            await ws.receive()  # GUILD_CREATE
        await fake.wait_until(lambda: not fake.sessions[0].connected, timeout=5.0, what="the socket to close")
        await fake.user_message(world.channel_id, user_id=world.member_id, content="while away")
        async with http.ws_connect(fake.gateway_url) as ws:
            assert json.loads((await _identify(ws, fake, [0, 2])).data)["t"] == "READY"
        async with http.ws_connect(fake.gateway_url) as ws:
            assert (await ws.receive_json())["op"] == 10
            resume = {"token": fake.token, "session_id": ready["d"]["session_id"], "seq": 2}
            await ws.send_json({"op": 6, "d": resume})
            replayed = [json.loads((await ws.receive()).data)["t"] for _ in range(2)]
        assert replayed == ["MESSAGE_CREATE", "RESUMED"]


class ShardedThrowawayBot(discord.AutoShardedClient):
    """discord.py's sharded client as it comes, asking `GET /gateway/bot` how many shards to run."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents(guilds=True, guild_messages=True))
        self.seen: list[tuple[int, int | None]] = []

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """No 5 s pause between the shards' IDENTIFYs (discord.py's default, pointless against the fake)."""

    async def on_message(self, message: discord.Message) -> None:
        assert message.guild is not None
        self.seen.append((message.guild.id, message.guild.shard_id))


async def test_an_unmodified_auto_sharded_client_runs_the_recommended_shards(discord_seam: FakeDiscord) -> None:
    """`GET /gateway/bot` recommends 2 shards: discord.py's AutoShardedClient IDENTIFYs as [0, 2] and [1, 2], sees
    each guild on its shard, and gets each guild's messages once, on that shard's connection."""
    fake = discord_seam
    fake.shard_count = 2
    worlds = [fake.default_world(shard=shard) for shard in (0, 1)]
    client = ShardedThrowawayBot()
    runner = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), 15)
        assert sorted(identify["shard"] for identify in fake.identifies) == [[0, 2], [1, 2]]
        assert [client.get_guild(world.guild_id).shard_id for world in worlds] == [0, 1]  # type: ignore[union-attr]
        for world in worlds:
            await fake.user_message(world.channel_id, user_id=world.member_id, content="hi")
        await fake.wait_until(lambda: len(client.seen) == 2, timeout=5.0, what="both messages")
        assert sorted(client.seen) == sorted([(worlds[0].guild_id, 0), (worlds[1].guild_id, 1)])
        assert_spec_clean(fake)
    finally:
        await client.close()
        await asyncio.wait_for(runner, 10)
