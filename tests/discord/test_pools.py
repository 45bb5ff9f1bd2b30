"""Team budgets end to end: `/budget channel` sets a pool that concurrent requests from several members in that
channel (or in a category's channels, or a thread of them) never pass together; `/balance` and `/budget show` show
it; the change is audited. And the once-per-period warning at 80% of a member's allowance, also across a restart.
"""

from __future__ import annotations

import asyncio

from bot.billing.budgets import MemberOverride
from fakes.discord import FakeInteraction, FakeMessage
from tests.discord.conftest import Atelier, embed_fields
from tests.discord.helpers import idle, inference_tasks, result_of, settled_total

PRICE = 11_000  # gpt-image-1-mini, medium, 1024x1024: the default request


async def _members(atelier: Atelier, count: int) -> list[int]:
    fake, world = atelier.fake, atelier.world
    added = [fake.add_member(world.guild_id, name=f"teammate{n}").id for n in range(count)]
    await fake.announce_guild(world.guild_id)
    return added


async def _burst(atelier: Atelier, members: list[int], channel_id: int, per_member: int) -> list[FakeMessage]:
    """Each member asks `per_member` times at once in the channel; return each request's outcome (result or refusal)."""
    fake, world = atelier.fake, atelier.world
    interactions: list[FakeInteraction] = await asyncio.gather(
        *(
            fake.invoke_slash(
                "imagine",
                user_id=member,
                guild_id=world.guild_id,
                channel_id=channel_id,
                options={"prompt": f"a team fox {member} {n}"},
            )
            for member in members
            for n in range(per_member)
        )
    )
    outcomes = await asyncio.gather(
        *(
            interaction.wait_message(lambda m: bool(m.attachments) or m.ephemeral, timeout=20.0)
            for interaction in interactions
        )
    )
    await idle(atelier)
    return list(outcomes)


async def _pool_totals(atelier: Atelier, pool_id: int) -> tuple[int, int]:
    """(spent, reserved) in the pool, straight from the ledger rows (not the daily totals)."""
    query = (
        "SELECT COALESCE(SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN kind = 'hold' THEN amount ELSE -released END), 0) FROM ledger WHERE pool_id = ?"
    )
    row = await atelier.bot.services.database.run(lambda conn: conn.execute(query, (pool_id,)).fetchone(), write=False)
    return int(row[0]), int(row[1])


async def test_ten_concurrent_requests_from_five_members_against_a_channel_pool_with_room_for_four(
    atelier: Atelier,
) -> None:
    """5 members x 2 concurrent /imagine in a channel whose pool holds 4: exactly 4 are generated and charged to the
    pool, 6 are refused naming the channel's team budget; members' own allowances had room for all of them."""
    world = atelier.world
    members = await _members(atelier, 5)
    answer = await atelier.answer("budget channel", user_id=world.admin_id, channel=world.channel_id, amount="0.044")
    assert answer.content.startswith(f"Everything generated in the channel <#{world.channel_id}> now shares **$0.044**")

    outcomes = await _burst(atelier, members, world.channel_id, 2)

    posted = [message for message in outcomes if message.attachments]
    refused = [message for message in outcomes if message.ephemeral]
    assert (len(posted), len(refused)) == (4, 6)
    for message in refused:
        assert message.content.startswith(
            f"This needs about $0.011 but the team budget of <#{world.channel_id}> has only $0.00 left; it resets <t:"
        ), message.content
    assert len(inference_tasks(atelier)) == 4
    assert await settled_total(atelier) == (4, 4 * PRICE)
    assert await _pool_totals(atelier, world.channel_id) == (4 * PRICE, 0)
    pools = await atelier.bot.services.pools.statuses(world.guild_id)
    assert [(pool.pool_id, pool.limit, pool.spent, pool.reserved) for pool in pools] == [
        (world.channel_id, 4 * PRICE, 4 * PRICE, 0)
    ]


async def test_a_category_pool_covers_its_channels_and_their_threads(atelier: Atelier) -> None:
    """A pool on a category: 10 concurrent requests from 5 members, spread over a channel in it and a thread of that
    channel, never pass it (room for 4); /balance there shows the pool, and outside the category it does not apply."""
    fake, world = atelier.fake, atelier.world
    category = fake.add_category(world.guild_id, name="studio")
    channel = fake.add_channel(world.guild_id, name="renders", parent_id=category.id)
    thread = fake.add_thread(channel.id, name="week 1", owner_id=world.member_id)
    await fake.announce_guild(world.guild_id)
    members = await _members(atelier, 5)
    answer = await atelier.answer("budget channel", user_id=world.admin_id, channel=category.id, amount="0.044")
    assert answer.content.startswith(f"Everything generated in the category <#{category.id}>")

    in_channel, in_thread = await asyncio.gather(
        _burst(atelier, members[:3], channel.id, 2), _burst(atelier, members[3:], thread.id, 2)
    )

    outcomes = in_channel + in_thread
    assert sum(1 for message in outcomes if message.attachments) == 4
    refused = [message for message in outcomes if message.ephemeral]
    assert len(refused) == 6
    assert all(f"the team budget of <#{category.id}> has only $0.00 left" in message.content for message in refused)
    assert await _pool_totals(atelier, category.id) == (4 * PRICE, 0)
    assert await settled_total(atelier) == (4, 4 * PRICE)

    balance = await fake.invoke_slash("balance", user_id=members[0], guild_id=world.guild_id, channel_id=thread.id)
    fields = embed_fields(await balance.wait_message())
    assert fields["Team budget"] == f"<#{category.id}>: $0.00 of $0.044 left ($0.044 spent, $0.00 reserved)"
    outside = embed_fields(await atelier.answer("balance", user_id=members[0]))
    assert "Team budget" not in outside

    # Outside the category the pool does not apply: the default channel still serves.
    elsewhere = await atelier.slash("imagine", user_id=members[0], prompt="a fox outside the studio")
    assert (await result_of(elsewhere)).attachments


async def test_a_channels_own_pool_inside_a_pooled_category_never_escapes_the_categorys(atelier: Atelier) -> None:
    """A category with room for 2 requests, one of its channels with a roomy pool of its own, another without: 8
    concurrent requests from 4 members over both channels give exactly 2 results; every refusal names the category;
    the channel's pool counts what was made in it; /balance there shows the category's (the one with less left)."""
    fake, world = atelier.fake, atelier.world
    category = fake.add_category(world.guild_id, name="studio")
    own = fake.add_channel(world.guild_id, name="renders", parent_id=category.id)
    plain = fake.add_channel(world.guild_id, name="sketches", parent_id=category.id)
    await fake.announce_guild(world.guild_id)
    members = await _members(atelier, 4)
    admin = world.admin_id
    await atelier.answer("budget channel", user_id=admin, channel=category.id, amount="0.022")
    answer = await atelier.answer("budget channel", user_id=admin, channel=own.id, amount="5")
    assert "Team budgets nest: a request must fit every team budget of where it is made" in answer.content

    in_own, in_plain = await asyncio.gather(
        _burst(atelier, members[:2], own.id, 2), _burst(atelier, members[2:], plain.id, 2)
    )

    outcomes = in_own + in_plain
    assert sum(1 for message in outcomes if message.attachments) == 2
    refused = [message for message in outcomes if message.ephemeral]
    assert len(refused) == 6
    assert all(f"the team budget of <#{category.id}> has only $0.00 left" in message.content for message in refused)
    assert await settled_total(atelier) == (2, 2 * PRICE)
    statuses = {pool.pool_id: pool for pool in await atelier.bot.services.pools.statuses(world.guild_id)}
    assert (statuses[category.id].spent, statuses[category.id].reserved) == (2 * PRICE, 0)
    made_in_own = sum(1 for message in in_own if message.attachments)
    assert (statuses[own.id].spent, statuses[own.id].reserved) == (made_in_own * PRICE, 0)

    balance = await fake.invoke_slash("balance", user_id=members[0], guild_id=world.guild_id, channel_id=own.id)
    fields = embed_fields(await balance.wait_message())
    assert fields["Team budget"] == f"<#{category.id}>: $0.00 of $0.022 left ($0.022 spent, $0.00 reserved)"


async def test_budget_channel_is_shown_audited_and_removed(atelier: Atelier) -> None:
    """`/budget show` lists the pool with its spend; setting, changing and removing it are audited; after removal the
    channel has no pool (requests are served again)."""
    world = atelier.world
    admin = world.admin_id
    await atelier.answer("budget channel", user_id=admin, channel=world.channel_id, amount="0.011")
    served = await atelier.slash("imagine", user_id=world.member_id, prompt="the only fox")
    await result_of(served)
    await idle(atelier)
    show = embed_fields(await atelier.answer("budget show", user_id=admin))
    assert show["Team budgets"] == f"<#{world.channel_id}>: $0.00 of $0.011 left ($0.011 spent, $0.00 reserved)"

    await atelier.answer("budget channel", user_id=admin, channel=world.channel_id, amount="2")
    removed = await atelier.answer("budget channel", user_id=admin, channel=world.channel_id, amount="none")
    assert removed.content == f"The channel <#{world.channel_id}> no longer has a team budget."
    assert embed_fields(await atelier.answer("budget show", user_id=admin))["Team budgets"] == "none"

    entries = await atelier.bot.services.audit.page(world.guild_id, offset=0, limit=10)
    changes = [(e.actor_id, e.area, e.setting, e.before, e.after) for e in entries]
    setting = f"pool <#{world.channel_id}>"
    assert changes == [
        (admin, "budget", setting, "$2.00 per period", None),
        (admin, "budget", setting, "$0.011 per period", "$2.00 per period"),
        (admin, "budget", setting, None, "$0.011 per period"),
    ]
    refused = await atelier.answer("budget channel", user_id=world.member_id, channel=world.channel_id, amount="9")
    assert refused.content == "You need the Manage Server permission to do this."
    assert len(await atelier.bot.services.audit.page(world.guild_id, offset=0, limit=10)) == 3


def _warning(interaction: FakeInteraction) -> list[FakeMessage]:
    return [m for m in interaction.messages() if m.ephemeral and m.content.startswith("⚠️ Heads-up")]


async def test_the_80_percent_warning_comes_once_per_period_also_across_a_restart(atelier: Atelier) -> None:
    """With room for 5 requests, the 4th takes the member to 80%: one private heads-up; the 5th (100%), after a
    restart, gets none; another member is warned on their own."""
    world = atelier.world
    budgets = atelier.bot.services.budgets
    await budgets.set_member(world.guild_id, world.member_id, MemberOverride.of_amount(5 * PRICE))

    warned: list[int] = []
    for n in range(4):
        interaction = await atelier.slash("imagine", user_id=world.member_id, prompt=f"a careful fox {n}")
        await result_of(interaction)
        await idle(atelier)
        if n == 3:
            await interaction.wait_message(lambda m: m.ephemeral and m.content.startswith("⚠️"))
        warned.append(len(_warning(interaction)))
    assert warned == [0, 0, 0, 1]
    (notice,) = _warning(interaction)
    assert notice.content.startswith(
        "⚠️ Heads-up: with this request you have used $0.044 of your $0.055 allowance (80%)"
    )

    await atelier.restart()
    last = await atelier.slash("imagine", user_id=atelier.world.member_id, prompt="the last fox")
    await result_of(last)
    await idle(atelier)
    await asyncio.sleep(0.2)
    assert _warning(last) == []

    other = world.other_member_id
    await atelier.bot.services.budgets.set_member(world.guild_id, other, MemberOverride.of_amount(PRICE))
    theirs = await atelier.slash("imagine", user_id=other, prompt="a lone fox")
    await theirs.wait_message(lambda m: m.ephemeral and m.content.startswith("⚠️"))
    assert "(100%)" in _warning(theirs)[0].content
