"""Moderation place rules are cached per server, and every `/settings approval` change reaches the next request:
served, then held once an admin makes the channel an approval channel, then served again once it is `off`."""

from __future__ import annotations

from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, inference_tasks, result_of


async def test_approval_changes_apply_to_the_next_request_although_the_rules_are_cached(atelier: Atelier) -> None:
    """A request is served (the server's rules are now cached); after `/settings approval mode:all` the next one
    waits for a moderator with nothing sent to Runware; after `mode:off` the next one is served again."""
    fake, world = atelier.fake, atelier.world
    admin = world.admin_id
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await atelier.answer("settings modlog", user_id=admin, channel=modlog.id)

    first = await atelier.slash("imagine", user_id=world.member_id, prompt="a first fox")
    assert (await result_of(first)).attachments
    await idle(atelier)
    sent = len(inference_tasks(atelier))

    await atelier.answer("settings approval", user_id=admin, channel=world.channel_id, mode="all")
    held = await atelier.slash("imagine", user_id=world.member_id, prompt="a held fox")
    await held.wait_message(lambda m: "Waiting for a moderator" in m.content)
    job = await atelier.bot.services.jobs.get(await _newest_job(atelier))
    assert job is not None and job.state.value == "awaiting_approval"
    assert len(inference_tasks(atelier)) == sent

    await atelier.answer("settings approval", user_id=admin, channel=world.channel_id, mode="off")
    again = await atelier.slash("imagine", user_id=world.member_id, prompt="a free fox again")
    assert (await result_of(again)).attachments


async def _newest_job(atelier: Atelier) -> str:
    """The id of the job stored last."""
    query = "SELECT id FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT 1"
    row = await atelier.bot.services.database.run(lambda conn: conn.execute(query).fetchone(), write=False)
    return str(row[0])
