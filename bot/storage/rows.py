"""Row types: the plain values the storage modules read and write, and the job states of contract §2.

A leaf module (it imports only the catalog), so every package may use these types without depending on the
queries that produce them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.catalog import Background, ModelName, OutputFormat, Quality, Resolution, Size


class JobState(StrEnum):
    """Where a job is in its lifecycle; `delivered` is recorded separately (the `delivered_at` column)."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def is_finished(self) -> bool:
        """True for the end states: nothing more will happen to the job's Runware task or its money."""
        return self in FINISHED_STATES


ACTIVE_STATES = frozenset({JobState.AWAITING_APPROVAL, JobState.QUEUED, JobState.SUBMITTED})
"""States a restart must resume: the job still holds its reservation."""

FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.REJECTED})
"""End states; a job in one of them never changes state again."""


def new_job_id() -> str:
    """Return a fresh job id: 12 lower-case hex characters, short enough for Discord `custom_id`s (100 chars)."""
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job about to be stored: the request's parameters and its estimate."""

    member_id: int
    guild_id: int | None
    channel_id: int | None
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int
    prompt: str
    estimate: int
    state: JobState = JobState.QUEUED
    references: tuple[str, ...] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)
    parent_job_id: str | None = None
    interaction_token: str | None = field(default=None, repr=False)  # lets anyone edit the response: keep out of logs
    interaction_expires_at: datetime | None = None
    id: str = field(default_factory=new_job_id)
    provider: str = "runware"
    """The provider that runs the job (a `bot.catalog.ProviderName` value), chosen by admission from the routes."""
    resolution: Resolution | None = None
    """The resolution asked for on a model that offers one (GPT Image 2); None for the others."""


@dataclass(frozen=True, slots=True)
class Job:
    """A stored job (contract §2)."""

    id: str
    state: JobState
    guild_id: int | None
    channel_id: int | None
    member_id: int
    model: ModelName
    size: Size
    quality: Quality
    background: Background
    format: OutputFormat
    count: int
    prompt: str
    references: tuple[str, ...]
    extras: dict[str, Any]
    parent_job_id: str | None
    estimate: int
    cost: int | None
    task_uuid: str | None
    error: str | None
    interaction_token: str | None = field(repr=False)  # lets anyone edit the response: keep it out of logs
    interaction_expires_at: datetime | None
    result_message_id: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    delivered_at: datetime | None
    provider: str = "runware"
    """The provider the job runs on (a `bot.catalog.ProviderName` value); jobs from before schema 10 ran on Runware."""
    resolution: Resolution | None = None
    """The resolution of a job on a model that offers one (GPT Image 2); None for the others (and before schema 14)."""


@dataclass(frozen=True, slots=True)
class JobResult:
    """One image a job produced: Runware's imageUUID (usable as a reference), its URL and reported cost."""

    index: int
    image_uuid: str
    image_url: str | None
    cost: int | None
    seed: int | None = None
    nsfw: bool | None = None
    """Runware's `NSFWContent` for the image; None when the output was not checked."""


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A server's stored budget settings (absent until an admin first changes one)."""

    guild_id: int
    period: str
    default_allowance: int
    server_cap: int | None
    updated_at: datetime
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """A member's stored override: kind `amount` (with an amount), `unlimited` or `blocked`."""

    guild_id: int
    member_id: int
    kind: str
    amount: int | None


@dataclass(frozen=True, slots=True)
class MemberRules:
    """The rows that decide one member's limit: (period, default allowance, cap) if the server has settings."""

    settings: tuple[str, int, int | None] | None
    override: OverrideRow | None
    best_role_allowance: int | None


@dataclass(frozen=True, slots=True)
class OptionDefaults:
    """A server's own defaults for the request options; None means "not set here", fall back to the config."""

    model: ModelName | None = None
    size: Size | None = None
    quality: Quality | None = None
    background: Background | None = None
    format: OutputFormat | None = None
    count: int | None = None


@dataclass(frozen=True, slots=True)
class StoredOptions:
    """One server's row: its own defaults and limits (None: not set here, the config file's value applies)."""

    guild_id: int
    defaults: OptionDefaults = field(default_factory=OptionDefaults)
    defaults_changed_at: datetime | None = None
    defaults_changed_by: int | None = None
    max_count: int | None = None
    confirm_above: int | None = None
    """Micro-dollars."""
    limits_changed_at: datetime | None = None
    limits_changed_by: int | None = None


class EntryKind(StrEnum):
    """Kinds of ledger rows: a hold reserves, a settle spends and ends the hold, a release ends it, a grant adds.

    An adjust changes what a job holds by its (signed) amount: a failover re-reserved it at a new estimate.
    """

    HOLD = "hold"
    SETTLE = "settle"
    RELEASE = "release"
    GRANT = "grant"
    ADJUST = "adjust"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One row of the append-only ledger (see the `ledger` table in migrations/0001_initial.sql)."""

    id: int
    guild_id: int
    member_id: int
    job_id: str | None
    kind: EntryKind
    amount: int
    released: int
    overrun: int
    reason: str | None
    actor_id: int | None
    effective_at: datetime
    created_at: datetime
    pool_id: int | None = None
    """The innermost team pool (channel or category id) the hold was reserved in; its settle and release carry the
    same. Every pool the job counts against (the category's too) is in `hold_pools`."""
    adjust_seq: int | None = None
    """An adjust row's number among its job's adjusts (1, 2, ...: its idempotency key); None for other kinds."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Sums over a span of days: spent (charges), reserved (open holds) and granted (grants, signed)."""

    spent: int = 0
    reserved: int = 0
    granted: int = 0


@dataclass(frozen=True, slots=True)
class PeriodTotals:
    """A member's totals and their whole server's, over the same days."""

    member: Totals
    server: Totals


@dataclass(frozen=True, slots=True)
class OpenHold:
    """A hold not yet settled or released, with what the jobs table says about its job (None: no such row)."""

    entry: LedgerEntry
    job_state: JobState | None
    job_cost: int | None
    held: int
    """What the job holds now: its hold plus its adjusts (a failover re-reserved it at a new estimate)."""


@dataclass(frozen=True, slots=True)
class SpendRow:
    """Charges (settlements) of one member for one model on one UTC day."""

    day: int
    member_id: int
    model: str
    jobs: int
    spent: int
    overrun: int


@dataclass(frozen=True, slots=True)
class ChargeRow:
    """One charge (a settle row) with what its job row says (None where the job row is gone)."""

    job_id: str
    member_id: int
    amount: int
    effective_at: datetime
    channel_id: int | None
    pool_id: int | None
    model: str | None
    size: str | None
    quality: str | None
    images: int | None


@dataclass(frozen=True, slots=True)
class PoolRow:
    """A team pool: a channel's or category's budget per period."""

    guild_id: int
    pool_id: int
    amount: int
    updated_at: datetime
    updated_by: int | None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change to a server's settings or budgets: who, which area and setting, the words before and after, when."""

    id: int
    guild_id: int
    actor_id: int | None
    area: str
    setting: str
    before: str | None
    after: str | None
    created_at: datetime
