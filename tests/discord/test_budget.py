"""`/budget` end to end: admins set the rules from Discord, members see them, everyone else is refused."""

from __future__ import annotations

import pytest

from bot.billing.budgets import MemberOverride
from bot.catalog import Period
from bot.errors import InvalidRequestError
from cogs._options import parse_amount
from cogs.budget import parse_member_value, parse_optional_amount
from fakes.discord import Permission
from tests.discord.conftest import Atelier, embed_fields

REFUSED = "You need the Manage Server permission to do this."


async def test_admin_sets_allowances_and_members_see_them(atelier: Atelier) -> None:
    """Period, default, role, member rules, cap and a grant set with /budget are what members' /balance shows."""
    world = atelier.world
    admin = world.admin_id

    period = await atelier.answer("budget period", user_id=admin, period="week")
    default = await atelier.answer("budget default", user_id=admin, amount="2.50")
    role = await atelier.answer("budget role", user_id=admin, role=world.artist_role_id, amount="$5")
    member = await atelier.answer("budget member", user_id=admin, member=world.other_member_id, value="Blocked")
    cap = await atelier.answer("budget cap", user_id=admin, amount="100")
    grant = await atelier.answer(
        "budget grant", user_id=admin, member=world.member_id, amount="1.25", reason="contest winner"
    )

    assert period.content.startswith("The budget period is now **week**")
    assert default.content == "The default allowance is now **$2.50** per member per period."
    assert role.content == f"<@&{world.artist_role_id}> now gets **$5.00** per period."
    assert member.content == f"<@{world.other_member_id}> is now **blocked** from generating images here."
    assert cap.content == "The server cap is now **$100.00** per period."
    assert grant.content == f"Granted **$1.25** to <@{world.member_id}> for this period. They have $6.25 left."

    artist = embed_fields(await atelier.answer("balance", user_id=world.member_id))
    assert artist["Allowance"] == "$5.00 per week (+$1.25 granted this week)"
    assert artist["Remaining"] == "$6.25"
    assert artist["Server budget"] == "$100.00 of $100.00 left"
    blocked = embed_fields(await atelier.answer("balance", user_id=world.other_member_id))
    assert blocked["Allowance"] == "blocked"
    assert blocked["Remaining"] == "$0.00"
    admin_view = embed_fields(await atelier.answer("balance", user_id=admin))
    assert admin_view["Allowance"] == "$2.50 per week"

    rules = await atelier.bot.services.budgets.rules(world.guild_id)
    assert rules.period is Period.WEEK
    assert rules.default_allowance == 2_500_000
    assert rules.role_allowances == {world.artist_role_id: 5_000_000}
    assert rules.member_overrides == {world.other_member_id: MemberOverride.blocked()}
    assert rules.server_cap == 100_000_000


async def test_budget_show_lists_rules_and_one_members_budget(atelier: Atelier) -> None:
    """`/budget show` gives the rules overview; with a member, that member's budget and where it comes from."""
    world = atelier.world
    budgets = atelier.bot.services.budgets
    await budgets.set_role(world.guild_id, world.artist_role_id, 3_000_000)
    await budgets.set_member(world.guild_id, world.other_member_id, MemberOverride.unlimited())

    overview = embed_fields(await atelier.answer("budget show", user_id=world.admin_id))
    one = await atelier.answer("budget show", user_id=world.admin_id, member=world.member_id)

    assert overview["Period"].startswith("month (resets <t:")
    assert overview["Default allowance"] == "$1.00"
    assert overview["Server cap"] == "none"
    assert overview["Role allowances"] == f"<@&{world.artist_role_id}> $3.00"
    assert overview["Member overrides"] == f"<@{world.other_member_id}> unlimited"
    assert one.embeds[0]["title"] == "Budget of Artist"
    assert one.embeds[0]["description"] == "Allowance from their best role."
    assert embed_fields(one)["Allowance"] == "$3.00 per month"


async def test_none_removes_rules(atelier: Atelier) -> None:
    """`none` removes a role allowance, a member's own rule and the server cap."""
    world = atelier.world
    budgets = atelier.bot.services.budgets
    await budgets.set_role(world.guild_id, world.artist_role_id, 3_000_000)
    await budgets.set_member(world.guild_id, world.member_id, MemberOverride.of_amount(7_000_000))
    await budgets.set_cap(world.guild_id, 9_000_000)

    role = await atelier.answer("budget role", user_id=world.admin_id, role=world.artist_role_id, amount="none")
    member = await atelier.answer("budget member", user_id=world.admin_id, member=world.member_id, value="NONE")
    cap = await atelier.answer("budget cap", user_id=world.admin_id, amount="none")

    assert role.content == f"<@&{world.artist_role_id}> no longer has an allowance of its own."
    assert member.content == f"<@{world.member_id}> follows the role and default allowances again."
    assert cap.content == "The server has **no cap** now."
    rules = await budgets.rules(world.guild_id)
    assert (rules.role_allowances, rules.member_overrides, rules.server_cap) == ({}, {}, None)


@pytest.mark.parametrize(
    ("command", "options", "expected"),
    [
        ("budget default", {"amount": "lots"}, "`lots` is not a dollar amount; write it like `2.50`"),
        ("budget default", {"amount": "-1"}, "`-1` is negative; use an amount of 0 or more."),
        ("budget cap", {"amount": "2000000"}, "`2000000` can't be used: amount too large (at most $1000000.00)."),
        ("budget default", {"amount": "1,000"}, "`1,000` can't be used: write the amount without separators"),
        ("budget grant", {"amount": "1e3", "reason": "big"}, "`1e3` can't be used: write the amount in plain digits"),
        ("budget member", {"value": "forever"}, "`forever` is not a value for a member"),
        ("budget grant", {"amount": "0", "reason": "oops"}, "The grant must not be zero."),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    atelier: Atelier, command: str, options: dict[str, str], expected: str
) -> None:
    """A malformed amount or value gets a specific private message, and no rule or ledger entry changes."""
    world = atelier.world
    if "member" in command or "grant" in command:
        options = {"member": str(world.member_id), **options}
    before = await atelier.bot.services.budgets.rules(world.guild_id)

    message = await atelier.answer(command, user_id=world.admin_id, **options)

    assert expected in message.content
    assert await atelier.bot.services.budgets.rules(world.guild_id) == before
    status = await atelier.bot.services.ledger.status(world.guild_id, world.member_id, [])
    assert status.granted == 0


async def test_role_everyone_is_refused(atelier: Atelier) -> None:
    """@everyone cannot get a role allowance: that is the default allowance, and the message says so."""
    world = atelier.world
    message = await atelier.answer("budget role", user_id=world.admin_id, role=world.everyone_role_id, amount="3")
    assert message.content == "Everyone has the default allowance; set it with `/budget default`."
    assert (await atelier.bot.services.budgets.rules(world.guild_id)).role_allowances == {}


async def test_budget_is_hidden_by_default_but_the_bot_checks_permissions_itself(atelier: Atelier) -> None:
    """The group asks Discord to hide it from non-admins; when a server lifts that, the bot still refuses them."""
    world = atelier.world
    budget = next(command for command in atelier.fake.commands[None] if command["name"] == "budget")
    assert budget["default_member_permissions"] == str(int(Permission.MANAGE_GUILD))
    assert {option["name"] for option in budget["options"]} == {
        "period",
        "default",
        "role",
        "member",
        "cap",
        "grant",
        "show",
        "channel",
        "report",
    }
    moderators = atelier.fake.add_role(world.guild_id, name="Moderators", permissions=int(Permission.MANAGE_MESSAGES))
    moderator = atelier.fake.add_member(world.guild_id, name="moderator", roles=[moderators.id])
    before = await atelier.bot.services.budgets.rules(world.guild_id)

    # The fake delivers /budget to anyone, as Discord does once a server opens the command to @everyone.
    attempts = [
        await atelier.answer("budget default", user_id=world.member_id, amount="50"),
        await atelier.answer(
            "budget member", user_id=world.other_member_id, member=world.other_member_id, value="unlimited"
        ),
        await atelier.answer(
            "budget grant", user_id=moderator.user.id, member=moderator.user.id, amount="5", reason="me"
        ),
        await atelier.answer("budget show", user_id=world.member_id),
    ]

    assert [message.content for message in attempts] == [REFUSED] * len(attempts)
    assert all(not message.embeds for message in attempts)
    assert await atelier.bot.services.budgets.rules(world.guild_id) == before
    assert (await atelier.bot.services.ledger.status(world.guild_id, moderator.user.id, [])).granted == 0


async def test_server_owner_and_administrators_may_use_budget(atelier: Atelier) -> None:
    """Owner and Administrator imply Manage Server, and the bot's own check agrees."""
    world = atelier.world
    administrators = atelier.fake.add_role(world.guild_id, name="Root", permissions=int(Permission.ADMINISTRATOR))
    root = atelier.fake.add_member(world.guild_id, name="root", roles=[administrators.id])

    by_owner = await atelier.answer("budget default", user_id=world.owner_id, amount="3")
    by_administrator = await atelier.answer("budget cap", user_id=root.user.id, amount="30")

    assert by_owner.content == "The default allowance is now **$3.00** per member per period."
    assert by_administrator.content == "The server cap is now **$30.00** per period."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2.50", MemberOverride.of_amount(2_500_000)),
        ("$0.75", MemberOverride.of_amount(750_000)),
        (" Unlimited ", MemberOverride.unlimited()),
        ("blocked", MemberOverride.blocked()),
        ("none", None),
    ],
)
def test_member_values(text: str, expected: MemberOverride | None) -> None:
    """`/budget member` accepts an amount, unlimited, blocked or none, in any case and with a dollar sign."""
    assert parse_member_value(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1", "1e400", "nan", "unlimited!"])
def test_member_values_that_are_refused(text: str) -> None:
    """Anything else is a clear input error, not a crash."""
    with pytest.raises(InvalidRequestError):
        parse_member_value(text)


def test_amounts() -> None:
    """Amounts are exact micro-dollars; `none` means no amount; negatives only where allowed."""
    assert parse_amount("0.000001") == 1
    assert parse_optional_amount("NONE") is None
    assert parse_amount("-0.5", allow_negative=True) == -500_000
    with pytest.raises(InvalidRequestError):
        parse_amount("-0.5")
