"""Budget rules per server: the period, default and role allowances, member overrides and the server cap.

Periods reset at 00:00 UTC: every day, every Monday, or on the 1st of every month (contract §4). A member's
allowance is their override if they have one (a fixed amount, unlimited, or blocked), otherwise the largest of the
default allowance and their roles' allowances. Grants, spend and holds live in the ledger (`bot.billing.ledger`).
Every change is recorded in `audit_log` (`record_change`) in the change's own transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bot.billing.errors import BudgetInputError
from bot.billing.inputs import check_amount, check_id
from bot.catalog import Period
from bot.clock import MS_PER_DAY, to_ms, utc_now
from bot.money import format_usd
from bot.settings import AppConfig, BudgetConfig
from bot.storage.audit import AuditQueries
from bot.storage.database import Database
from bot.storage.rows import OverrideRow
from bot.storage.servers import BudgetRuleQueries, GuildSettingsQueries

__all__ = [
    "BudgetInputError",
    "BudgetRules",
    "Budgets",
    "MemberLimit",
    "MemberOverride",
    "OverrideKind",
    "day_span",
    "parse_period",
    "period_bounds",
    "record_change",
]


def parse_period(value: Period | str) -> Period:
    """Return the period named by `value` (`day`, `week` or `month`), or raise `BudgetInputError`."""
    try:
        return Period(str(value).strip().lower())
    except ValueError:
        raise BudgetInputError(f"Unknown budget period {value!r}; choose day, week or month.") from None


def period_bounds(period: Period | str, now: datetime) -> tuple[datetime, datetime]:
    """Return the UTC period containing `now` as (start, end); `end` is the reset instant, exclusive."""
    kind = parse_period(period)
    if now.tzinfo is None:
        raise ValueError("period_bounds needs a timezone-aware datetime")
    moment = now.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind is Period.DAY:
        return midnight, midnight + timedelta(days=1)
    if kind is Period.WEEK:
        start = midnight - timedelta(days=midnight.weekday())
        return start, start + timedelta(days=7)
    start = midnight.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def day_span(start: datetime, end: datetime) -> tuple[int, int]:
    """Return [start, end) as UTC day numbers [first, last) (days since 1970-01-01), for the daily totals."""
    return to_ms(start) // MS_PER_DAY, to_ms(end) // MS_PER_DAY


class OverrideKind(StrEnum):
    """How a member override replaces the role and default allowances."""

    AMOUNT = "amount"
    UNLIMITED = "unlimited"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class MemberOverride:
    """A member's own rule: a fixed allowance, no limit (the server cap still applies), or no generations at all."""

    kind: OverrideKind
    amount: int | None = None

    def __post_init__(self) -> None:
        try:
            kind = OverrideKind(self.kind)
        except ValueError:
            raise BudgetInputError(f"Unknown override {self.kind!r}; choose an amount, unlimited or blocked.") from None
        object.__setattr__(self, "kind", kind)
        if kind is OverrideKind.AMOUNT:
            check_amount(self.amount, "member allowance")
        elif self.amount is not None:
            raise BudgetInputError(f"A {kind.value} override takes no amount.")

    def words(self) -> str:
        """Say the rule as an admin reads it: `$3.00`, `unlimited` or `blocked`."""
        return format_usd(self.amount or 0) if self.kind is OverrideKind.AMOUNT else self.kind.value

    @classmethod
    def of_amount(cls, amount: int) -> MemberOverride:
        """Make a fixed allowance per period."""
        return cls(OverrideKind.AMOUNT, amount)

    @classmethod
    def unlimited(cls) -> MemberOverride:
        """Make a rule of no member limit (the server cap still applies)."""
        return cls(OverrideKind.UNLIMITED)

    @classmethod
    def blocked(cls) -> MemberOverride:
        """Make a rule that refuses every request."""
        return cls(OverrideKind.BLOCKED)


@dataclass(frozen=True, slots=True)
class MemberLimit:
    """What limits one member right now: the period, their allowance (None: unlimited), blocked, and the cap."""

    period: Period
    allowance: int | None
    blocked: bool
    source: str
    server_cap: int | None


@dataclass(frozen=True, slots=True)
class BudgetRules:
    """All of a server's budget rules."""

    period: Period
    default_allowance: int
    role_allowances: dict[int, int] = field(default_factory=dict)
    member_overrides: dict[int, MemberOverride] = field(default_factory=dict)
    server_cap: int | None = None

    def limit_for(self, member_id: int, role_ids: Sequence[int]) -> MemberLimit:
        """Return the member's limit: override first, else the largest of the default and their roles' allowances."""
        override = self.member_overrides.get(member_id)
        roles = [self.role_allowances[role] for role in role_ids if role in self.role_allowances]
        return _resolve(self.period, self.default_allowance, max(roles, default=None), override, self.server_cap)


def _resolve(
    period: Period,
    default_allowance: int,
    best_role: int | None,
    override: MemberOverride | None,
    server_cap: int | None,
) -> MemberLimit:
    if override is not None:
        if override.kind is OverrideKind.BLOCKED:
            return MemberLimit(period, 0, True, "override", server_cap)
        if override.kind is OverrideKind.UNLIMITED:
            return MemberLimit(period, None, False, "override", server_cap)
        return MemberLimit(period, override.amount, False, "override", server_cap)
    if best_role is not None and best_role > default_allowance:
        return MemberLimit(period, best_role, False, "role", server_cap)
    return MemberLimit(period, default_allowance, False, "default", server_cap)


class Budgets:
    """Reads and changes servers' budget rules; a server with no stored settings uses the config's `[budget]`."""

    def __init__(
        self, db: Database, config: AppConfig | BudgetConfig, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._db = db
        self._defaults = config.budget if isinstance(config, AppConfig) else config
        self._clock = clock

    async def rules(self, guild_id: int) -> BudgetRules:
        """Return every budget rule of the server."""
        guild = check_id(guild_id, "server id")

        def read(conn: sqlite3.Connection) -> BudgetRules:
            settings = GuildSettingsQueries(conn).get(guild)
            stored = None if settings is None else (settings.period, settings.default_allowance, settings.server_cap)
            period, default, cap = self._base(stored)
            rules = BudgetRuleQueries(conn)
            overrides = {row.member_id: _override(row) for row in rules.member_overrides(guild)}
            return BudgetRules(period, default, rules.role_allowances(guild), overrides, cap)

        return await self._db.run(read, write=False)

    def member_limit(
        self, conn: sqlite3.Connection, guild_id: int, member_id: int, role_ids: Sequence[int]
    ) -> MemberLimit:
        """Read the member's limit inside the caller's transaction (used by the ledger's reserve and status)."""
        rules = BudgetRuleQueries(conn).member_rules(guild_id, member_id, role_ids)
        period, default, cap = self._base(rules.settings)
        override = None if rules.override is None else _override(rules.override)
        return _resolve(period, default, rules.best_role_allowance, override, cap)

    def period_in(self, conn: sqlite3.Connection, guild_id: int) -> Period:
        """Read the server's budget period inside the caller's transaction (the team pools count over it too)."""
        settings = GuildSettingsQueries(conn).get(guild_id)
        stored = None if settings is None else (settings.period, settings.default_allowance, settings.server_cap)
        return self._base(stored)[0]

    async def set_period(self, guild_id: int, period: Period | str, *, actor_id: int | None = None) -> Period:
        """Change the server's budget period; spend is then counted over the new period (from its start)."""
        guild, actor, kind = check_id(guild_id, "server id"), _actor(actor_id), parse_period(period)
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            before = self._stored(conn, guild)[0].value
            self._ensure(conn, guild, at).update_period(guild, kind.value, at, actor)
            record_change(conn, guild, actor, "period", before, kind.value, at)

        await self._db.run(write)
        return kind

    async def set_default(self, guild_id: int, amount: int, *, actor_id: int | None = None) -> None:
        """Change the default allowance per member per period."""
        guild, actor = check_id(guild_id, "server id"), _actor(actor_id)
        value = check_amount(amount, "default allowance")
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            before = format_usd(self._stored(conn, guild)[1])
            self._ensure(conn, guild, at).update_default_allowance(guild, value, at, actor)
            record_change(conn, guild, actor, "default allowance", before, format_usd(value), at)

        await self._db.run(write)

    async def set_cap(self, guild_id: int, amount: int | None, *, actor_id: int | None = None) -> None:
        """Set the server's total per period, or remove it with None."""
        guild, actor = check_id(guild_id, "server id"), _actor(actor_id)
        value = None if amount is None else check_amount(amount, "server cap")
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            before = _usd(self._stored(conn, guild)[2])
            self._ensure(conn, guild, at).update_server_cap(guild, value, at, actor)
            record_change(conn, guild, actor, "server cap", before, _usd(value), at)

        await self._db.run(write)

    async def set_role(self, guild_id: int, role_id: int, amount: int | None, *, actor_id: int | None = None) -> None:
        """Give a role an allowance per period, or remove the role's allowance with None."""
        guild, role, actor = check_id(guild_id, "server id"), check_id(role_id, "role id"), _actor(actor_id)
        value = None if amount is None else check_amount(amount, "role allowance")
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            rules = BudgetRuleQueries(conn)
            before = _usd(rules.role_allowances(guild).get(role))
            if value is None:
                rules.delete_role(guild, role)
            else:
                rules.set_role(guild, role, value, at, actor)
            record_change(conn, guild, actor, f"role allowance <@&{role}>", before, _usd(value), at)

        await self._db.run(write)

    async def set_member(
        self, guild_id: int, member_id: int, override: MemberOverride | None, *, actor_id: int | None = None
    ) -> None:
        """Set a member's override (amount, unlimited or blocked), or remove it with None."""
        guild, member, actor = check_id(guild_id, "server id"), check_id(member_id, "member id"), _actor(actor_id)
        if override is not None and not isinstance(override, MemberOverride):
            raise BudgetInputError(f"A member override must be an amount, unlimited or blocked, not {override!r}.")
        at = self._clock()

        def write(conn: sqlite3.Connection) -> None:
            rules = BudgetRuleQueries(conn)
            stored = rules.member_rules(guild, member, []).override
            before = None if stored is None else _override(stored).words()
            if override is None:
                rules.delete_member(guild, member)
            else:
                rules.set_member(guild, member, override.kind.value, override.amount, at, actor)
            after = None if override is None else override.words()
            record_change(conn, guild, actor, f"member override <@{member}>", before, after, at)

        await self._db.run(write)

    def _stored(self, conn: sqlite3.Connection, guild_id: int) -> tuple[Period, int, int | None]:
        """Return the server's (period, default allowance, cap) as they apply now, inside the caller's transaction."""
        settings = GuildSettingsQueries(conn).get(guild_id)
        return self._base(
            None if settings is None else (settings.period, settings.default_allowance, settings.server_cap)
        )

    def _base(self, stored: tuple[str, int, int | None] | None) -> tuple[Period, int, int | None]:
        """Return the server's stored (period, default allowance, cap), or the config's `[budget]` without them."""
        if stored is None:
            return self._defaults.period, self._defaults.default_allowance, self._defaults.server_cap
        period, default, cap = stored
        return Period(period), default, cap

    def _ensure(self, conn: sqlite3.Connection, guild_id: int, at: datetime) -> GuildSettingsQueries:
        settings = GuildSettingsQueries(conn)
        defaults = self._defaults
        settings.ensure(guild_id, defaults.period.value, defaults.default_allowance, defaults.server_cap, at)
        return settings


def _override(row: OverrideRow) -> MemberOverride:
    return MemberOverride(OverrideKind(row.kind), row.amount)


def _usd(amount: int | None) -> str | None:
    return None if amount is None else format_usd(amount)


def record_change(
    conn: sqlite3.Connection,
    guild: int,
    actor: int | None,
    setting: str,
    before: str | None,
    after: str | None,
    at: datetime,
) -> None:
    """Record a budget change (a rule, a grant) in the audit log, in the change's transaction; nothing if unchanged."""
    AuditQueries(conn).record_change(guild, actor, "budget", setting, before, after, at)


def _actor(actor_id: int | None) -> int | None:
    return None if actor_id is None else check_id(actor_id, "admin id")
