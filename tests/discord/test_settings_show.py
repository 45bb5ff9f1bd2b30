"""`/settings show` shows everything an admin set (rules set to `off` too, budgets, team budgets) and says which
commands change what; `/settings safety` warns when flagged results would have nowhere to go."""

from __future__ import annotations

from tests.discord.conftest import Atelier, embed_fields


async def test_settings_show_lists_rules_set_to_off_and_the_budget_section(atelier: Atelier) -> None:
    """A category that needs approval with one of its channels set to `off`, a safety category with a channel set to
    `off`, a default allowance, a cap and a team budget: all of them are on the page, and its description names the
    moderation and budget commands."""
    fake, world = atelier.fake, atelier.world
    admin = world.admin_id
    category = fake.add_category(world.guild_id, name="studio")
    free = fake.add_channel(world.guild_id, name="sketches", parent_id=category.id)
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await atelier.answer("settings modlog", user_id=admin, channel=modlog.id)
    await atelier.answer("settings approval", user_id=admin, channel=category.id, mode="all")
    await atelier.answer("settings approval", user_id=admin, channel=free.id, mode="off")
    await atelier.answer("settings safety", user_id=admin, channel=category.id, mode="on")
    await atelier.answer("settings safety", user_id=admin, channel=free.id, mode="off")
    await atelier.answer("budget default", user_id=admin, amount="3")
    await atelier.answer("budget cap", user_id=admin, amount="50")
    await atelier.answer("budget channel", user_id=admin, channel=category.id, amount="20")

    page = await atelier.answer("settings show", user_id=admin)
    fields = embed_fields(page)

    assert fields["Approval channels"].splitlines() == sorted([f"<#{category.id}>: all", f"<#{free.id}>: off"])
    assert fields["Safety channels"].splitlines() == sorted([f"<#{category.id}>: on", f"<#{free.id}>: off"])
    assert fields["Budget"] == (
        "per **month**: default allowance **$3.00** · server cap **$50.00** · 0 role allowances, "
        "0 member overrides (`/budget show` lists them)"
    )
    assert fields["Team budgets"] == f"<#{category.id}>: $20.00 of $20.00 left ($0.00 spent, $0.00 reserved)"
    description = page.embeds[0]["description"]
    assert "`/settings modlog`, `moderators`, `approval` and `safety` change moderation" in description
    assert "`/budget` changes budgets" in description


async def test_settings_show_without_budgets_says_so(atelier: Atelier) -> None:
    """A server with no budget rules of its own shows the config's defaults, no cap and no team budgets."""
    fields = embed_fields(await atelier.answer("settings show", user_id=atelier.world.admin_id))
    assert "server cap **none**" in fields["Budget"]
    assert fields["Team budgets"] == "none"


async def test_settings_safety_without_a_mod_log_warns_the_admin(atelier: Atelier) -> None:
    """Safety `on` without a mod-log: the answer warns that flagged results would have nowhere to go and requests
    there are refused; `off` does not warn; once a mod-log is set, `on` does not warn either."""
    fake, world = atelier.fake, atelier.world
    admin = world.admin_id
    warned = await atelier.answer("settings safety", user_id=admin, channel=world.channel_id, mode="on")
    assert warned.content.startswith(f"Safety check in <#{world.channel_id}>: **on**.\n⚠️ ")
    assert "no mod-log channel" in warned.content
    assert "Flagged results there would have nowhere to go, so requests there are refused" in warned.content

    off = await atelier.answer("settings safety", user_id=admin, channel=world.channel_id, mode="off")
    assert off.content == f"Safety check in <#{world.channel_id}>: **off**."

    modlog = fake.add_channel(world.guild_id, name="mod-log")
    await fake.announce_guild(world.guild_id)
    await atelier.answer("settings modlog", user_id=admin, channel=modlog.id)
    fine = await atelier.answer("settings safety", user_id=admin, channel=world.channel_id, mode="on")
    assert fine.content == f"Safety check in <#{world.channel_id}>: **on**."
