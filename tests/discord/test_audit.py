"""`/settings audit` and `/settings show` end to end: every settings and budget change an admin makes is listed,
newest first, with who, before, after and when; paged; and still there after a restart."""

from __future__ import annotations

from fakes.discord import FakeMessage
from tests.discord.conftest import Atelier, embed_fields


def _changes(message: FakeMessage) -> list[tuple[str, str]]:
    return [(field["name"], field["value"]) for field in message.embeds[0].get("fields", [])]


async def test_every_settings_and_budget_change_is_audited_and_survives_a_restart(atelier: Atelier) -> None:
    """Fourteen changes through /budget and /settings, then /settings audit: page 1 holds the ten newest (newest
    first, who and when as Discord mentions and timestamps, before → after), page 2 the four oldest; after a
    restart the same pages come back, and /settings show lists the channel, role and blocklist rules."""
    world = atelier.world
    admin, member = world.admin_id, world.member_id
    commands: list[tuple[str, dict[str, object]]] = [
        ("budget period", {"period": "week"}),
        ("budget default", {"amount": "2.50"}),
        ("budget role", {"role": world.artist_role_id, "amount": "5"}),
        ("budget member", {"member": member, "value": "blocked"}),
        ("budget cap", {"amount": "50"}),
        ("budget grant", {"member": member, "amount": "1.25", "reason": "prize"}),
        ("settings defaults", {"model": "gpt-image-1.5", "quality": "low"}),
        ("settings limits", {"max_count": 2, "confirm_above": "0.50"}),
        ("settings channels", {"action": "allow", "channel": world.channel_id}),
        ("settings roles", {"action": "allow", "role": world.artist_role_id}),
        ("settings blocklist", {"action": "add", "text": "forbidden"}),
        ("settings blocklist", {"action": "remove", "text": "FORBIDDEN"}),
        ("budget member", {"member": member, "value": "none"}),
        ("settings roles", {"action": "clear"}),
    ]
    for name, options in commands:
        answer = await atelier.answer(name, user_id=admin, **options)
        assert not answer.content.startswith("You need"), answer.content

    expected = [
        ("budget · period", "month → week"),
        ("budget · default allowance", "$1.00 → $2.50"),
        (f"budget · role allowance <@&{world.artist_role_id}>", "*not set* → $5.00"),
        (f"budget · member override <@{member}>", "*not set* → blocked"),
        ("budget · server cap", "*not set* → $50.00"),
        (f"budget · grant <@{member}>", "*not set* → $1.25: prize"),
        ("settings · defaults", "*not set* → model gpt-image-1.5, quality low"),
        ("settings · limits", "*not set* → max_count 2, confirm_above $0.50"),
        (f"moderation · channel <#{world.channel_id}>", "*not set* → allowed"),
        (f"moderation · role <@&{world.artist_role_id}>", "*not set* → allowed"),
        ("moderation · blocklist", "*not set* → forbidden"),
        ("moderation · blocklist", "forbidden → *not set*"),
        (f"budget · member override <@{member}>", "blocked → *not set*"),
        ("moderation · roles", f"role <@&{world.artist_role_id}> allowed → *not set*"),
    ]

    async def check_pages() -> None:
        first = await atelier.answer("settings audit", user_id=admin)
        second = await atelier.answer("settings audit", user_id=admin, page=2)
        listed = _changes(first) + _changes(second)
        assert [(name, value.split("\n")[0]) for name, value in listed] == expected[::-1]
        assert all(f"by <@{admin}>, <t:" in value and ":R>)" in value for _, value in listed)
        assert first.embeds[0]["footer"]["text"] == "Page 1 of 2 · 14 changes, newest first"
        assert len(_changes(first)) == 10 and len(_changes(second)) == 4

    await check_pages()
    await atelier.restart()
    await check_pages()

    shown = embed_fields(await atelier.answer("settings show", user_id=admin))
    assert shown["Channels"] == f"Only in <#{world.channel_id}>."
    assert shown["Roles"] == "Every member."
    assert shown["Blocklist"] == "Empty: every prompt passes."
    assert shown["model"].startswith("**gpt-image-1.5**")


async def test_moderation_and_team_budget_changes_are_audited_and_survive_a_restart(atelier: Atelier) -> None:
    """The mod-log, the moderator role, approval and safety rules and a team budget: each change is one audit row,
    newest first with before → after, and the rows are still there after a restart."""
    fake, world = atelier.fake, atelier.world
    admin = world.admin_id
    modlog = fake.add_channel(world.guild_id, name="mod-log")
    role = fake.add_role(world.guild_id, name="moderators")
    await fake.announce_guild(world.guild_id)
    commands: list[tuple[str, dict[str, object]]] = [
        ("settings modlog", {"channel": modlog.id}),
        ("settings moderators", {"role": role.id}),
        ("settings approval", {"channel": world.channel_id, "mode": "over", "above": "0.10"}),
        ("settings safety", {"channel": world.channel_id, "mode": "on"}),
        ("budget channel", {"channel": world.channel_id, "amount": "20"}),
        ("settings approval", {"channel": world.channel_id, "mode": "off"}),
        ("settings modlog", {}),
    ]
    for name, options in commands:
        answer = await atelier.answer(name, user_id=admin, **options)
        assert not answer.content.startswith("You need"), answer.content

    async def listed() -> list[tuple[str, str]]:
        page = await atelier.answer("settings audit", user_id=admin)
        return [(name, value.split("\n")[0]) for name, value in _changes(page)]

    before = await listed()
    assert len(before) == len(commands)
    names = [name for name, _ in before]
    assert names == [
        "moderation · modlog",
        f"moderation · approval <#{world.channel_id}>",
        f"budget · pool <#{world.channel_id}>",
        f"moderation · safety <#{world.channel_id}>",
        f"moderation · approval <#{world.channel_id}>",
        "moderation · moderators",
        "moderation · modlog",
    ]
    values = [value for _, value in before]
    assert values[0] == f"<#{modlog.id}> → *not set*" and values[-1] == f"*not set* → <#{modlog.id}>"
    assert values[-2] == f"*not set* → <@&{role.id}>"
    assert "$20.00" in values[2] and values[2].startswith("*not set* → ")
    assert values[1].endswith("→ off") and "$0.10" in values[4]
    await atelier.restart()
    assert await listed() == before
