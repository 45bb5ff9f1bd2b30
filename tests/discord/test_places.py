"""Where a request comes from: a thread carries its channel and category, a channel its category (end to end).

Channel rules, approval and safety channels and team pools set on a category or a parent channel apply through
these, so the job must know them from the interaction (and keep them across a restart, in its stored target).
"""

from __future__ import annotations

from bot.jobs.requests import DeliveryTarget
from tests.discord.conftest import Atelier
from tests.discord.helpers import idle, job_id_of, result_of


async def _job_target(atelier: Atelier, channel_id: int, prompt: str = "a fox") -> DeliveryTarget:
    fake, world = atelier.fake, atelier.world
    interaction = await fake.invoke_slash(
        "imagine", user_id=world.member_id, guild_id=world.guild_id, channel_id=channel_id, options={"prompt": prompt}
    )
    result = await result_of(interaction)
    await idle(atelier)
    job = await atelier.bot.services.jobs.get(job_id_of(result))
    assert job is not None and job.channel_id == channel_id
    return DeliveryTarget.from_job(job)


async def test_a_thread_knows_its_channel_and_category(atelier: Atelier) -> None:
    """/imagine in a thread of a channel in a category: the job is delivered in the thread and records both parents."""
    fake, world = atelier.fake, atelier.world
    category = fake.add_category(world.guild_id, name="studio")
    channel = fake.add_channel(world.guild_id, name="renders", parent_id=category.id)
    thread = fake.add_thread(channel.id, name="week 1", owner_id=world.member_id)
    await fake.announce_guild(world.guild_id)

    target = await _job_target(atelier, thread.id)

    assert target.channel_id == thread.id
    assert target.channel_parents == (channel.id, category.id)


async def test_a_channel_knows_its_category_and_a_plain_one_has_none(atelier: Atelier) -> None:
    """A channel in a category records the category; the default channel (no category) records nothing."""
    fake, world = atelier.fake, atelier.world
    category = fake.add_category(world.guild_id, name="studio")
    channel = fake.add_channel(world.guild_id, name="renders", parent_id=category.id)
    await fake.announce_guild(world.guild_id)

    assert (await _job_target(atelier, channel.id)).channel_parents == (category.id,)
    assert (await _job_target(atelier, world.channel_id, "an owl")).channel_parents == ()
