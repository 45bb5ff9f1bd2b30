"""The bot works with exactly what its invite grants: the `atelier` fixture's bot role holds `required_permissions()`
and nothing more, and what the bot only uses when a server allows it (the "queued" reaction) is skipped quietly."""

from __future__ import annotations

from bot.discord.invite import required_permissions
from cogs.generation.edit import QUEUED_REACTION
from fakes.discord import Permission
from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, result_of
from tests.invite import INVITE_PERMISSIONS


async def test_the_bots_role_holds_only_what_the_invite_asks_for(atelier: Atelier) -> None:
    """The server the tests run in gives the bot's role the invite's permissions (the README's list, written out in
    `tests.invite`, not read back from the code under test) and nothing else."""
    guild = atelier.fake.guild(atelier.world.guild_id)
    role = guild.roles[atelier.world.bot_role_id]

    assert required_permissions().value == INVITE_PERMISSIONS
    assert role.managed and role.permissions == INVITE_PERMISSIONS
    assert not role.permissions & (Permission.MANAGE_MESSAGES | Permission.ADD_REACTIONS | Permission.ADMINISTRATOR)


async def test_reply_edit_without_add_reactions_is_queued_and_delivered_without_the_reaction(
    atelier: Atelier,
) -> None:
    """Where @everyone may not add reactions (the invite does not ask for it), a reply edit still runs and its result
    is posted; the bot just leaves out the "queued" reaction instead of sending a request Discord would refuse."""
    fake, world = atelier.fake, atelier.world
    guild = fake.guild(world.guild_id)
    guild.everyone.permissions &= ~Permission.ADD_REACTIONS
    await fake.announce_guild(world.guild_id)
    result = await result_of(await atelier.slash("imagine", user_id=world.member_id, prompt="a lighthouse"))
    await idle(atelier)

    reply = await fake.user_message(
        world.channel_id, user_id=world.member_id, content=f"<@{fake.bot_user.id}> add a storm", reply_to=result
    )
    edited = await fake.wait_until(
        lambda: next((m for m in fake.channel_messages(world.channel_id) if m.referenced is reply), None),
        timeout=10.0,
        what="the bot's reply with the edited images",
    )
    await idle(atelier)

    assert edited.attachments
    assert QUEUED_REACTION not in reply.reactions
    assert not [request for request in fake.requests if "/reactions/" in request.path]
