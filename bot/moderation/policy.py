"""Who may generate where, and what a prompt may not say: a server's channel and role rules and its blocklist.

Channels: an admin allows or denies a channel, a category or a thread. A request's places are its channel, then what
encloses it (a thread's parent channel, then the category), innermost first; the first place with a rule decides.
With no rule on any of them the request is allowed only if the server allows no channel at all: an empty allow-list
means everywhere, and a deny on its own only carves out an exception.

Roles: a member holding a denied role is refused; otherwise, when the server allows some roles, the member needs one
of them (an empty allow-list means everyone). Manage Server and administrators are not exempt: the rules are the
admins' own, a request carries no permissions to exempt by, and an admin who wants to generate anywhere allows their
own role (the `/settings` commands stay theirs whatever the rules say).

Blocklist: `bot.moderation.blocklist`. `Policy.check` runs first in admission, before anything is fetched or
reserved, on every entry point's request. A server's rules are read from SQLite once and kept in memory
(`PolicyCache`); every change made through this object drops its server's entry once committed. Each change is written
with its `audit_log` row in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from bot.clock import utc_now
from bot.errors import InvalidRequestError
from bot.moderation.blocklist import MAX_ENTRIES, Blocklist, entry_key
from bot.moderation.errors import NotAllowedHereError, PromptBlockedError
from bot.storage.audit import AuditQueries
from bot.storage.database import Database
from bot.storage.policy import CHANNEL, ROLE, PolicyQueries, PolicyRows

log = logging.getLogger(__name__)

_R = TypeVar("_R")
_T = TypeVar("_T")

NOT_IN_THIS_CHANNEL = "Images can't be generated in this channel on this server; ask an admin where they can."
DENIED_ROLE = "One of your roles may not generate images on this server."
NO_ALLOWED_ROLE = "Only members with certain roles may generate images on this server; ask an admin which."

ALLOWED, DENIED = "allowed", "denied"
"""The words the audit log and `/settings show` use for a rule."""

AREA = "moderation"
"""The audit log's area for channel, role and blocklist changes."""

MAX_LISTED = 900
"""Characters of a cleared list kept in its audit row."""


@dataclass(frozen=True, slots=True)
class GuildPolicy:
    """One server's rules as the checks use them: channel and role rules (True: allowed) and the compiled blocklist."""

    channels: Mapping[int, bool] = field(default_factory=dict)
    roles: Mapping[int, bool] = field(default_factory=dict)
    blocklist: Blocklist = field(default_factory=Blocklist)

    @classmethod
    def from_rows(cls, rows: PolicyRows) -> GuildPolicy:
        """Build (and compile) the policy from its stored rows."""
        return cls(rows.channels, rows.roles, Blocklist((row.entry, row.normalised) for row in rows.blocklist))

    def channel_allowed(self, places: Sequence[int]) -> bool:
        """Whether a request in `places` (channel first, then what encloses it) may be made."""
        for place in places:
            rule = self.channels.get(place)
            if rule is not None:
                return rule
        return not any(self.channels.values())

    def role_refusal(self, role_ids: Sequence[int]) -> str | None:
        """Why a member with these roles may not generate (None: they may)."""
        if any(self.roles.get(role) is False for role in role_ids):
            return DENIED_ROLE
        if any(self.roles.values()) and not any(self.roles.get(role) for role in role_ids):
            return NO_ALLOWED_ROLE
        return None


class PolicyCache(Generic[_T]):
    """Each server's rules (a `GuildPolicy`, or the moderation place rules), read once and kept until a change drops it.

    The one place that knows how long rules may be trusted: changes in this process go through `change` (or call
    `invalidate`); a change made by another process sharing the database is announced by a NOTIFY that calls
    `invalidate` (`bot.jobs.shared.share_caches`).
    """

    def __init__(self, load: Callable[[int], Awaitable[_T]]) -> None:
        self._load = load
        self._policies: dict[int, _T] = {}
        self._changes = 0
        self._reading: dict[int, tuple[int, asyncio.Future[_T]]] = {}
        """The read of a server's policy under way, with the count of changes when it began."""

    def holds(self, guild_id: int) -> bool:
        """Whether the server's policy is in memory (`get` then answers without reading)."""
        return guild_id in self._policies

    async def get(self, guild_id: int) -> _T:
        """Return the server's policy, from memory when it is there.

        Callers that miss it at once share one read (a burst of requests right after a start would each read it),
        unless a change came after that read began: they then start a new one.
        """
        policy = self._policies.get(guild_id)
        if policy is not None:
            return policy
        reading = self._reading.get(guild_id)
        if reading is None or reading[0] != self._changes:
            read = asyncio.ensure_future(self._read(guild_id, self._changes))
            read.add_done_callback(mark_retrieved)
            reading = self._reading[guild_id] = (self._changes, read)
        return await asyncio.shield(reading[1])  # one caller's cancellation leaves the read to the others

    async def _read(self, guild_id: int, changes: int) -> _T:
        try:
            policy = await self._load(guild_id)
        finally:
            reading = self._reading.get(guild_id)
            if reading is not None and reading[1] is asyncio.current_task():
                del self._reading[guild_id]
        if changes == self._changes:  # a change committed meanwhile: what was read may be older than it
            self._policies[guild_id] = policy
        return policy

    def invalidate(self, guild_id: int | None) -> None:
        """Forget the server's policy (None: every server's); the next `get` reads it again."""
        self._changes += 1
        if guild_id is None:
            self._policies.clear()
        else:
            self._policies.pop(guild_id, None)

    async def change(self, guild_id: int, write: Awaitable[_R]) -> _R:
        """Await a change of the server's rules; whether it commits, fails or its caller is cancelled, the entry goes.

        `write` is the change's unit of work (`Database.run(...)`); if the caller is cancelled while it runs on, the
        entry is dropped once it has ended, so nothing read before the change stays cached after it.
        """
        unit = asyncio.ensure_future(write)
        try:
            return await asyncio.shield(unit)
        finally:
            if unit.done():
                self.invalidate(guild_id)
            else:
                unit.add_done_callback(lambda ended: self._ended(guild_id, ended))

    def _ended(self, guild_id: int, unit: asyncio.Future[Any]) -> None:
        if not unit.cancelled():
            unit.exception()  # retrieved here: its caller is gone (a refused change changed nothing)
        self.invalidate(guild_id)


def mark_retrieved(read: asyncio.Future[Any]) -> None:
    """Mark a future's failure as seen (a done-callback): whoever had to know was told, or is gone on purpose.

    A shared read here: every caller that waited for it got it, and none may be left.
    """
    if not read.cancelled():
        read.exception()


class Policy:
    """Checks requests against a server's rules, and changes those rules (each change audited in its transaction)."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock
        self.cache: PolicyCache[GuildPolicy] = PolicyCache(self._read)

    async def _read(self, guild_id: int) -> GuildPolicy:
        rows = await self._db.run(lambda conn: PolicyQueries(conn).read(guild_id), write=False)
        return GuildPolicy.from_rows(rows)

    async def rules(self, guild_id: int) -> GuildPolicy:
        """Return the server's rules (cached)."""
        return await self.cache.get(guild_id)

    # ------------------------------------------------------------------------------------------------ checking

    async def check(
        self,
        *,
        guild_id: int,
        member_id: int,
        role_ids: Sequence[int],
        places: Sequence[int],
        prompt: str,
    ) -> None:
        """Refuse a request the server's rules do not allow; read nothing but the cache.

        Raises `NotAllowedHereError` (channel, then roles) or `PromptBlockedError` (the first entry the prompt hits).
        """
        policy = await self.cache.get(guild_id)
        if places and not policy.channel_allowed(places):
            raise NotAllowedHereError("channel", NOT_IN_THIS_CHANNEL)
        refusal = policy.role_refusal(role_ids)
        if refusal is not None:
            raise NotAllowedHereError("role", refusal)
        entry = policy.blocklist.first_hit(prompt)
        if entry is not None:
            log.info("prompt of member %d in guild %d hit blocklist entry %r", member_id, guild_id, entry)
            raise PromptBlockedError(
                entry, guild_id=guild_id, member_id=member_id, channel_id=places[0] if places else None, prompt=prompt
            )

    async def test(self, guild_id: int, prompt: str) -> str | None:
        """Return the blocklist entry `prompt` hits first, or None if it passes."""
        return (await self.cache.get(guild_id)).blocklist.first_hit(prompt)

    # ------------------------------------------------------------------------------------------------ changing

    async def set_channel(self, guild_id: int, channel_id: int, allowed: bool, *, actor_id: int | None) -> bool | None:
        """Allow or deny a channel, category or thread; return its rule before (None: it had none)."""
        return await self._set_rule(guild_id, CHANNEL, channel_id, allowed, actor_id)

    async def set_role(self, guild_id: int, role_id: int, allowed: bool, *, actor_id: int | None) -> bool | None:
        """Allow or deny a role; return its rule before (None: it had none)."""
        return await self._set_rule(guild_id, ROLE, role_id, allowed, actor_id)

    async def clear_channel(self, guild_id: int, channel_id: int | None, *, actor_id: int | None) -> int:
        """Remove one channel's rule, or with None every channel rule; return how many were removed."""
        return await self._clear(guild_id, CHANNEL, channel_id, actor_id)

    async def clear_role(self, guild_id: int, role_id: int | None, *, actor_id: int | None) -> int:
        """Remove one role's rule, or with None every role rule; return how many were removed."""
        return await self._clear(guild_id, ROLE, role_id, actor_id)

    async def add_block(self, guild_id: int, entry: str, *, actor_id: int | None) -> str:
        """Add a blocklist entry and return its matched form; refused if it (or its normal form) is there already."""
        text = " ".join(entry.split())
        key = entry_key(text)
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            queries = PolicyQueries(conn)
            existing = queries.block_entry(guild_id, key)
            if existing is not None:
                raise InvalidRequestError(f"“{existing}” is already on the blocklist.")
            if queries.block_count(guild_id) >= MAX_ENTRIES:
                raise InvalidRequestError(f"The blocklist is full ({MAX_ENTRIES} entries); remove some first.")
            queries.add_block(guild_id, text, key, at, actor_id)
            AuditQueries(conn).record(guild_id, actor_id, AREA, "blocklist", None, text, at)

        await self._change(guild_id, write)
        return key

    async def remove_block(self, guild_id: int, entry: str, *, actor_id: int | None) -> str:
        """Remove the entry `entry` names (any spelling with the same normal form); return it as it was written."""
        key = entry_key(entry)
        at = self._clock()

        def write(conn: sqlite3.Connection) -> str:
            queries = PolicyQueries(conn)
            existing = queries.block_entry(guild_id, key)
            if existing is None:
                raise InvalidRequestError(f"“{' '.join(entry.split())}” is not on the blocklist.")
            queries.remove_block(guild_id, key)
            AuditQueries(conn).record(guild_id, actor_id, AREA, "blocklist", existing, None, at)
            return existing

        return await self._change(guild_id, write)

    async def _set_rule(
        self, guild_id: int, kind: str, target: int, allowed: bool, actor_id: int | None
    ) -> bool | None:
        at = self._clock()

        def write(conn: sqlite3.Connection) -> bool | None:
            queries = PolicyQueries(conn)
            before = queries.rule(guild_id, kind, target)
            queries.set_rule(guild_id, kind, target, allowed, at, actor_id)
            if before != allowed:
                AuditQueries(conn).record(
                    guild_id, actor_id, AREA, _setting(kind, target), _word(before), _word(allowed), at
                )
            return before

        return await self._change(guild_id, write)

    async def _clear(self, guild_id: int, kind: str, target: int | None, actor_id: int | None) -> int:
        at = self._clock()

        def write(conn: sqlite3.Connection) -> int:
            queries = PolicyQueries(conn)
            audit = AuditQueries(conn)
            if target is not None:
                before = queries.rule(guild_id, kind, target)
                if before is None:
                    return 0
                queries.delete_rule(guild_id, kind, target)
                audit.record(guild_id, actor_id, AREA, _setting(kind, target), _word(before), None, at)
                return 1
            rows = queries.read(guild_id)
            rules = rows.channels if kind == CHANNEL else rows.roles
            if not rules:
                return 0
            listed = "; ".join(f"{_setting(kind, ident)} {_word(rule)}" for ident, rule in sorted(rules.items()))
            if len(listed) > MAX_LISTED:
                listed = listed[: MAX_LISTED - 1] + "…"
            removed = queries.delete_rules(guild_id, kind)
            audit.record(guild_id, actor_id, AREA, f"{kind}s", listed, None, at)
            return removed

        return await self._change(guild_id, write)

    async def _change(self, guild_id: int, write: Callable[[sqlite3.Connection], _R]) -> _R:
        """Run a change; whether it commits, fails or its caller is cancelled, the server's cached policy goes."""
        return await self.cache.change(guild_id, self._db.run(write))


def _setting(kind: str, target: int) -> str:
    return f"channel <#{target}>" if kind == CHANNEL else f"role <@&{target}>"


def _word(rule: bool | None) -> str | None:
    return None if rule is None else ALLOWED if rule else DENIED
