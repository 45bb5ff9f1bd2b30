"""Moderation place rules are read from SQLite once per server and kept until a change through `ModerationRules`
drops them (as the policy's are), so admission reads nothing for them; every change is seen by the next request."""

from __future__ import annotations

import asyncio

from bot.moderation.approvals import ApprovalMode, ModerationRules, PlaceRules
from bot.moderation.policy import PolicyCache
from bot.storage.database import Database

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 111_111_111_111_111_112
CATEGORY = 700_000_000_000_000_001
CHANNEL = 700_000_000_000_000_002
ADMIN = 666_666_666_666_666_666


async def _reading_places(db: Database) -> list[str]:
    """Record every statement that reads `moderation_channels` from now on (the list fills as they run)."""
    seen: list[str] = []

    def trace(statement: str) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "moderation_channels" in statement:
            seen.append(statement)

    await db.run(lambda conn: conn.set_trace_callback(trace), write=False)
    return seen


async def test_place_rules_are_read_once_per_server_and_every_change_is_seen(db: Database) -> None:
    """100 lookups in two servers read the table twice (once per server); a change through `set_approval` or
    `set_safety` is seen by the very next lookup, which reads once more; the other server's entry stays."""
    rules = ModerationRules(db)
    await rules.set_approval(GUILD, ADMIN, CATEGORY, ApprovalMode.OVER, 100_000_000)
    reads = await _reading_places(db)

    for _ in range(50):
        assert await rules.rules(GUILD, (CHANNEL, CATEGORY)) == PlaceRules(ApprovalMode.OVER, 100_000_000, False)
        assert await rules.rules(OTHER_GUILD, (CHANNEL, CATEGORY)) == PlaceRules()
    assert len(reads) == 2

    await rules.set_safety(GUILD, ADMIN, CHANNEL, True)
    assert await rules.rules(GUILD, (CHANNEL, CATEGORY)) == PlaceRules(ApprovalMode.OVER, 100_000_000, True)
    await rules.set_approval(GUILD, ADMIN, CHANNEL, ApprovalMode.ALL, None)
    assert (await rules.rules(GUILD, (CHANNEL, CATEGORY))).approval is ApprovalMode.ALL
    assert await rules.rules(OTHER_GUILD, (CHANNEL,)) == PlaceRules()
    assert [place.channel_id for place in await rules.places(GUILD)] == [CATEGORY, CHANNEL]
    # Two changes, one read after each (the change's own reads of the row are by channel, not counted here).
    assert len([statement for statement in reads if "channel_id IN" not in statement]) == 4


async def test_the_mod_log_and_moderator_role_are_cached_with_the_rules_and_dropped_on_change(db: Database) -> None:
    """`settings` (asked by the mod-log for every held or safety-checked request) reads nothing once cached; setting
    the mod-log or the moderator role is seen at once."""
    rules = ModerationRules(db)
    reads = await _reading_settings(db)
    for _ in range(20):
        assert (await rules.settings(GUILD)).modlog_channel_id is None
    assert len(reads) == 1
    await rules.set_modlog(GUILD, ADMIN, CHANNEL)
    assert (await rules.settings(GUILD)).modlog_channel_id == CHANNEL
    await rules.set_moderator_role(GUILD, ADMIN, CATEGORY)
    assert (await rules.settings(GUILD)).moderator_role_id == CATEGORY
    await rules.set_modlog(GUILD, ADMIN, None)
    settings = await rules.settings(GUILD)
    assert (settings.modlog_channel_id, settings.moderator_role_id) == (None, CATEGORY)


async def _reading_settings(db: Database) -> list[str]:
    """Record every statement that reads `moderation_settings` outside a change, from now on."""
    seen: list[str] = []

    def trace(statement: str) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM moderation_settings" in statement:
            seen.append(statement)

    await db.run(lambda conn: conn.set_trace_callback(trace), write=False)
    return seen


async def test_a_change_whose_caller_is_cancelled_still_drops_the_cached_rules(db: Database) -> None:
    """The admin's command is cancelled while its change runs on: once it has committed, the next lookup sees it."""
    rules = ModerationRules(db)
    assert await rules.rules(GUILD, (CHANNEL,)) == PlaceRules()
    change = asyncio.ensure_future(rules.set_approval(GUILD, ADMIN, CHANNEL, ApprovalMode.ALL, None))
    await asyncio.sleep(0)
    change.cancel()
    for _ in range(200):  # the change commits on the database thread; without the drop it would never be seen
        if (await rules.rules(GUILD, (CHANNEL,))).approval is ApprovalMode.ALL:
            break
        await asyncio.sleep(0.01)
    assert (await rules.rules(GUILD, (CHANNEL,))).approval is ApprovalMode.ALL
    assert change.cancelled()


async def test_lookups_that_miss_at_once_share_one_read(db: Database) -> None:
    """A burst of requests right after a start misses the cache together: 50 concurrent lookups read the table once."""
    rules = ModerationRules(db)
    reads = await _reading_places(db)
    results = await asyncio.gather(*(rules.rules(GUILD, (CHANNEL,)) for _ in range(50)))
    assert results == [PlaceRules()] * 50 and len(reads) == 1


async def test_a_lookup_after_a_change_does_not_join_a_read_begun_before_it() -> None:
    """Misses share the read under way, unless a change was made after it began: then a new read starts, and only
    its result is kept. A cancelled lookup leaves the shared read to the others."""
    gates: list[asyncio.Event] = []

    async def load(guild_id: int) -> int:
        gates.append(asyncio.Event())
        number = len(gates)
        await gates[-1].wait()
        return number

    cache: PolicyCache[int] = PolicyCache(load)
    first = [asyncio.ensure_future(cache.get(GUILD)) for _ in range(10)]
    cancelled = asyncio.ensure_future(cache.get(GUILD))
    await asyncio.sleep(0.01)
    assert len(gates) == 1, "one read for all of them"
    cancelled.cancel()
    cache.invalidate(GUILD)  # a change committed while that read was under way
    late = asyncio.ensure_future(cache.get(GUILD))
    await asyncio.sleep(0.01)
    assert len(gates) == 2, "the lookup after the change reads again"
    for gate in gates:
        gate.set()
    assert await asyncio.gather(*first) == [1] * 10
    assert await late == 2
    assert await cache.get(GUILD) == 2 and len(gates) == 2, "the newer read is the one kept"
    assert cancelled.cancelled()
