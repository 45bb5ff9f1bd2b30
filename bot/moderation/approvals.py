"""Approval and safety rules of moderated team channels, and the server's mod-log and moderator settings.

A rule is set on a channel or a category (`/settings approval`, `/settings safety`); a request's `places` are its
channel, then its parents innermost first (a thread's channel, then the category), and the first place that has a
rule of a kind decides that kind. `ModerationRules` reads and changes them; every change is written with its
`audit_log` row (area `moderation`) in one transaction. A server's place rules, mod-log channel and moderator role are
read from SQLite once (one unit) and kept in memory (a `bot.moderation.policy.PolicyCache`, as the channel and role
rules are); every change made through this object drops its server's entry once committed, so admission (and the
mod-log's own check that it can take a held request) reads nothing for them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.clock import utc_now
from bot.errors import InvalidRequestError
from bot.moderation.policy import PolicyCache
from bot.money import format_usd
from bot.storage.audit import AuditQueries
from bot.storage.database import Database
from bot.storage.moderation import ModerationQueries, ModerationRepository, ModerationRow, PlaceRow

AREA = "moderation"
"""The audit area of every change made here."""


class ApprovalMode(StrEnum):
    """Which requests in a place wait for a moderator."""

    OFF = "off"
    OVER = "over"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class PlaceRules:
    """What applies to one request's place: whether it is held for approval, and whether its output is checked."""

    approval: ApprovalMode = ApprovalMode.OFF
    above: int = 0
    """With `OVER`: requests whose estimate is above this many micro-dollars are held."""
    safety: bool = False

    def holds(self, estimate: int) -> bool:
        """Return True when a request with this estimate waits for a moderator here."""
        if self.approval is ApprovalMode.ALL:
            return True
        return self.approval is ApprovalMode.OVER and estimate > self.above


@dataclass(frozen=True, slots=True)
class ServerModeration:
    """One server's moderation settings as cached: the mod-log and moderator role, and every place's rules by id."""

    settings: ModerationRow
    places: Mapping[int, PlaceRow]


def rules_for(places: Sequence[int], stored: Mapping[int, PlaceRow]) -> PlaceRules:
    """Resolve the rules of a request's places (innermost first): the first place with a rule of a kind decides it."""
    approval: PlaceRow | None = next(
        (stored[p] for p in places if p in stored and stored[p].approval_mode is not None), None
    )
    safety = next((stored[p].safety for p in places if p in stored and stored[p].safety is not None), None)
    mode = ApprovalMode.OFF if approval is None else ApprovalMode(approval.approval_mode or "off")
    above = 0 if approval is None else approval.approval_above or 0
    return PlaceRules(approval=mode, above=above, safety=bool(safety))


def approval_words(mode: ApprovalMode | str | None, above: int | None) -> str | None:
    """Return the words an admin reads for an approval rule (None: no rule)."""
    if mode is None:
        return None
    if mode == ApprovalMode.OVER:
        return f"over {format_usd(above or 0)}"
    return str(mode)


class ModerationRules:
    """The server's mod-log, moderator role and per-place rules: read for every request, changed by admins."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock
        self._repository = ModerationRepository(db, clock=clock)
        self.cache: PolicyCache[ServerModeration] = PolicyCache(self._read)

    async def _read(self, guild_id: int) -> ServerModeration:
        def unit(conn: sqlite3.Connection) -> ServerModeration:
            queries = ModerationQueries(conn)
            places = {place.channel_id: place for place in queries.all_places(guild_id)}
            return ServerModeration(queries.settings(guild_id), places)

        return await self._db.run(unit, write=False)

    @property
    def repository(self) -> ModerationRepository:
        """The tables' async face (holds and decisions are the job service's)."""
        return self._repository

    async def settings(self, guild_id: int) -> ModerationRow:
        """Return the server's mod-log channel and moderator role (from the cache)."""
        return (await self.cache.get(guild_id)).settings

    async def rules(self, guild_id: int, places: Sequence[int]) -> PlaceRules:
        """Return what applies to a request made in `places` (its channel, then its parents), from the cache."""
        if not places:
            return PlaceRules()
        return rules_for(places, (await self.cache.get(guild_id)).places)

    async def places(self, guild_id: int) -> list[PlaceRow]:
        """Every place of the server with a rule, by channel id (from the cache)."""
        return sorted((await self.cache.get(guild_id)).places.values(), key=lambda place: place.channel_id)

    async def set_modlog(self, guild_id: int, actor_id: int, channel_id: int | None) -> int | None:
        """Set or clear the mod-log channel; return the previous one."""
        at = self._clock()

        def unit(conn: sqlite3.Connection) -> int | None:
            queries = ModerationQueries(conn)
            before = queries.settings(guild_id).modlog_channel_id
            queries.set_modlog(guild_id, channel_id, at)
            AuditQueries(conn).record(guild_id, actor_id, AREA, "modlog", _channel(before), _channel(channel_id), at)
            return before

        return await self.cache.change(guild_id, self._db.run(unit))

    async def set_moderator_role(self, guild_id: int, actor_id: int, role_id: int | None) -> int | None:
        """Set or clear the moderator role; return the previous one."""
        at = self._clock()

        def unit(conn: sqlite3.Connection) -> int | None:
            queries = ModerationQueries(conn)
            before = queries.settings(guild_id).moderator_role_id
            queries.set_moderator_role(guild_id, role_id, at)
            AuditQueries(conn).record(guild_id, actor_id, AREA, "moderators", _role(before), _role(role_id), at)
            return before

        return await self.cache.change(guild_id, self._db.run(unit))

    async def set_approval(
        self, guild_id: int, actor_id: int, channel_id: int, mode: ApprovalMode, above: int | None
    ) -> None:
        """Set a place's approval rule; `over` needs `above` (micro-dollars), the others take none."""
        if mode is ApprovalMode.OVER and above is None:
            raise InvalidRequestError("mode `over` needs `above`: the estimate in dollars above which requests wait.")
        if mode is not ApprovalMode.OVER and above is not None:
            raise InvalidRequestError("`above` only goes with mode `over`.")
        at = self._clock()

        def unit(conn: sqlite3.Connection) -> None:
            queries = ModerationQueries(conn)
            old = queries.places(guild_id, [channel_id]).get(channel_id)
            before = None if old is None else approval_words(old.approval_mode, old.approval_above)
            queries.set_approval(guild_id, channel_id, mode.value, above, at)
            after = approval_words(mode, above)
            AuditQueries(conn).record(guild_id, actor_id, AREA, f"approval <#{channel_id}>", before, after, at)

        await self.cache.change(guild_id, self._db.run(unit))

    async def set_safety(self, guild_id: int, actor_id: int, channel_id: int, on: bool) -> None:
        """Switch a place's safety check on or off."""
        at = self._clock()

        def unit(conn: sqlite3.Connection) -> None:
            queries = ModerationQueries(conn)
            old = queries.places(guild_id, [channel_id]).get(channel_id)
            before = None if old is None or old.safety is None else ("on" if old.safety else "off")
            queries.set_safety(guild_id, channel_id, on, at)
            after = "on" if on else "off"
            AuditQueries(conn).record(guild_id, actor_id, AREA, f"safety <#{channel_id}>", before, after, at)

        await self.cache.change(guild_id, self._db.run(unit))


def _channel(channel_id: int | None) -> str | None:
    return None if channel_id is None else f"<#{channel_id}>"


def _role(role_id: int | None) -> str | None:
    return None if role_id is None else f"<@&{role_id}>"
