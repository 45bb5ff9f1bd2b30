"""`/balance` end to end: a member sees their own allowance, spend, holds, reset time and recent jobs."""

from __future__ import annotations

import re

from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.clock import utc_now
from bot.storage.jobs import JobQueries
from bot.storage.rows import JobState, NewJob
from tests.discord.conftest import Atelier, embed_fields
from tests.job_writes import JobWrites

RELATIVE_TIMESTAMP = re.compile(r"<t:\d+:R>")


def _job(atelier: Atelier, prompt: str, estimate: int) -> NewJob:
    return NewJob(
        member_id=atelier.world.member_id,
        guild_id=atelier.world.guild_id,
        channel_id=atelier.world.channel_id,
        model=ModelName.GPT_IMAGE_1_MINI,
        size=Size.SQUARE,
        quality=Quality.MEDIUM,
        background=Background.AUTO,
        format=OutputFormat.PNG,
        count=1,
        prompt=prompt,
        estimate=estimate,
    )


async def test_balance_shows_a_new_members_allowance_privately(atelier: Atelier) -> None:
    """A member with no history sees the config's default allowance, nothing spent, the reset time, no jobs."""
    interaction = await atelier.slash("balance", user_id=atelier.world.member_id)
    message = await interaction.wait_message()

    assert interaction.ack_type == 5 and interaction.ephemeral
    fields = embed_fields(message)
    assert fields["Allowance"] == "$1.00 per month"
    assert fields["Spent"] == "$0.00"
    assert fields["Reserved"] == "$0.00"
    assert fields["Remaining"] == "$1.00"
    assert RELATIVE_TIMESTAMP.fullmatch(fields["Resets"])
    assert fields["Recent jobs"] == "No jobs yet."


async def test_balance_counts_spend_holds_and_lists_recent_jobs(atelier: Atelier) -> None:
    """Settled spend and open holds reduce what is left, and the member's jobs are listed newest first."""
    services = atelier.bot.services
    world = atelier.world
    done = _job(atelier, "a red fox in the snow", 11_000)
    await services.ledger.reserve(done.id, world.guild_id, world.member_id, [], done.estimate, job=done)
    await services.database.run(lambda conn: JobQueries(conn).update_state(done.id, JobState.SUCCEEDED, utc_now()))
    await services.database.run(lambda conn: JobWrites(conn).set_cost(done.id, 10_500, utc_now()))
    await services.ledger.settle(done.id, 10_500)
    running = _job(atelier, "a lighthouse at dusk", 42_000)
    await services.ledger.reserve(running.id, world.guild_id, world.member_id, [], running.estimate, job=running)

    message = await atelier.answer("balance", user_id=world.member_id)

    fields = embed_fields(message)
    assert fields["Spent"] == "$0.0105"
    assert fields["Reserved"] == "$0.042"
    assert fields["Remaining"] == "$0.9475"
    jobs = fields["Recent jobs"]
    assert jobs.index(running.id) < jobs.index(done.id)
    assert "a lighthouse at dusk" in jobs and "~$0.042" in jobs
    assert "succeeded" in jobs and "$0.0105" in jobs


async def test_balance_uses_the_members_roles(atelier: Atelier) -> None:
    """The role ids in the interaction decide the allowance: the artist's role allowance applies to them only."""
    await atelier.bot.services.budgets.set_role(atelier.world.guild_id, atelier.world.artist_role_id, 4_000_000)

    artist = embed_fields(await atelier.answer("balance", user_id=atelier.world.member_id))
    plain = embed_fields(await atelier.answer("balance", user_id=atelier.world.other_member_id))

    assert artist["Allowance"] == "$4.00 per month"
    assert plain["Allowance"] == "$1.00 per month"
