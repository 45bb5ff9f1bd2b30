"""The operator's own ledger account: what `atelier generate` reserves, settles and releases.

Terminal spending is recorded like a member's, under the reserved identity `OPERATOR_GUILD_ID`/`OPERATOR_MEMBER_ID`
(`bot.billing.reports`): no Discord server or user has id 0, so it never touches a member's balance or a server's cap,
and it shows in the spend report of that id. The operator's rules are set on every use (idempotent): no cap, no
allowance. The hold is written without a job row (so the bot never tries to resume or deliver it); the job row, in
state `succeeded` with the reported cost, is written just before the settle, for the report's per-model view.

A generation that fails is released only when Runware certainly did not run it (`refused_for_certain`); when the
outcome is unknown (a timeout after the task was sent, a connection lost after the request went out, a task that
failed while running) the hold is settled at the estimate, so the ledger never under-counts what the owner may have
paid. If the process dies with the hold open, the bot's next start leaves it alone for as long as a `generate` can
run (`bot.billing.operator.operator_grace_for`), then settles it at the estimate (`Ledger.reconcile`).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Protocol

from bot.billing.budgets import Budgets, MemberOverride
from bot.billing.ledger import Ledger, SettleResult
from bot.billing.pricing import Pricing
from bot.billing.reports import OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID
from bot.catalog import Background, ModelName, OutputFormat, Quality, Size
from bot.clock import utc_now
from bot.money import format_usd
from bot.runbase.errors import (
    RunbaseAuthError,
    RunbaseBalanceError,
    RunbaseError,
    RunbaseKeyCheckError,
    RunbaseKeyLimitError,
)
from bot.runware.errors import (
    RunwareAuthError,
    RunwareContentRefusedError,
    RunwareCreditsError,
    RunwareDuplicateTaskError,
    RunwareError,
    RunwareInvalidRequestError,
    RunwareRateLimitedError,
)
from bot.runware.models import ImageInferenceRequest
from bot.settings import AppConfig
from bot.storage.database import Database
from bot.storage.jobs import JobQueries
from bot.storage.rows import JobState, NewJob, new_job_id


class GeneratedRequest(Protocol):
    """The options of a terminal generation, as its job row records them."""

    @property
    def model(self) -> ModelName:
        """The model."""

    @property
    def size(self) -> Size:
        """The size."""

    @property
    def quality(self) -> Quality:
        """The quality."""

    @property
    def background(self) -> Background:
        """The background."""

    @property
    def format(self) -> OutputFormat:
        """The format."""

    @property
    def count(self) -> int:
        """The count."""

    @property
    def prompt(self) -> str:
        """The prompt."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation of the operator's account for one terminal generation."""

    job_id: str
    estimate: int


class OperatorAccount:
    """Reserve, settle and release the operator's terminal spending in the ledger."""

    def __init__(self, database: Database, config: AppConfig) -> None:
        self._database = database
        self._budgets = Budgets(database, config)
        self._ledger = Ledger(database, self._budgets)
        self._pricing = Pricing(config)

    async def reserve(self, request: ImageInferenceRequest, reference_count: int) -> Hold:
        """Hold the request's estimate; the operator's account has no allowance and no cap, so it always fits."""
        estimate = self._pricing.estimate(
            request.model, request.quality, request.size, request.count, len(request.prompt), reference_count
        )
        return await self.reserve_estimate(estimate)

    async def reserve_estimate(self, estimate: int) -> Hold:
        """Hold `estimate` micro-dollars in the operator's account (no allowance, no cap: it always fits)."""
        await self._budgets.set_cap(OPERATOR_GUILD_ID, None)
        await self._budgets.set_member(OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, MemberOverride.unlimited())
        job_id = new_job_id()
        await self._ledger.reserve(job_id, OPERATOR_GUILD_ID, OPERATOR_MEMBER_ID, [], estimate)
        return Hold(job_id, estimate)

    async def settle(self, hold: Hold, request: ImageInferenceRequest, cost: int | None) -> SettleResult:
        """Record the job (succeeded) and charge its cost; an unreported cost is charged at the estimate."""
        return await self.settle_job(hold, request, cost)

    async def settle_job(
        self, hold: Hold, request: GeneratedRequest, cost: int | None, *, provider: str = "runware"
    ) -> SettleResult:
        """Record the job (succeeded, on `provider`) and charge its cost; an unreported cost is charged the estimate."""
        return await self._record(hold, request, JobState.SUCCEEDED, cost, {"source": "cli"}, provider)

    async def settle_unknown(
        self, hold: Hold, request: GeneratedRequest, error: BaseException, *, provider: str = "runware"
    ) -> SettleResult:
        """Record the job (failed, outcome unknown) and charge the estimate: the provider may have charged."""
        extras = {"source": "cli", "outcome": "unknown", "error": str(error)[:500] or type(error).__name__}
        return await self._record(hold, request, JobState.FAILED, None, extras, provider)

    async def _record(
        self,
        hold: Hold,
        request: GeneratedRequest,
        state: JobState,
        cost: int | None,
        extras: dict[str, str],
        provider: str,
    ) -> SettleResult:
        job = NewJob(
            member_id=OPERATOR_MEMBER_ID,
            guild_id=OPERATOR_GUILD_ID,
            channel_id=None,
            model=request.model,
            size=request.size,
            quality=request.quality,
            background=request.background,
            format=request.format,
            count=request.count,
            prompt=request.prompt,
            estimate=hold.estimate,
            state=state,
            extras=extras,
            id=hold.job_id,
            provider=provider,
        )
        now = utc_now()

        def record(conn: sqlite3.Connection) -> None:
            queries = JobQueries(conn)
            queries.insert(job, now)
            queries.save_results(hold.job_id, [], cost, now)

        await self._database.run(record)
        return await self._ledger.settle(hold.job_id, hold.estimate if cost is None else cost)

    async def release(self, hold: Hold) -> None:
        """End the hold without a charge (Runware certainly refused: `refused_for_certain`, or nothing was sent)."""
        await self._ledger.release(hold.job_id)


_REFUSALS = (
    RunwareAuthError,
    RunwareCreditsError,
    RunwareInvalidRequestError,
    RunwareContentRefusedError,
    RunwareRateLimitedError,
)
"""Answers in which Runware says it did not take the task: a refused key, no credit, an invalid request, the content
policy, a full queue (429: not accepted)."""


_TASK_REFUSALS = (RunwareInvalidRequestError, RunwareContentRefusedError)
"""A task's own outcome, reported by Runware while polling, that says it was refused rather than run."""


def refused_for_certain(error: BaseException, *, accepted: bool) -> bool:
    """Whether Runware certainly did not run (so did not charge for) the generation that failed with `error`.

    `accepted` says whether Runware had acknowledged the task (the failure came while waiting for it). Before that,
    True for a refusal Runware answered (`_REFUSALS`; not a duplicate task: that one exists) or a connection that was
    never opened (nothing was sent). After it, True only for the task's own refusal as Runware reported it (invalid
    request, content policy): a key or a connection that fails while polling says nothing about the task.
    Everything else is an unknown outcome: a timeout after the request was sent, a connection lost after it went out,
    a 5xx, a task that failed or timed out while running, an interruption. The operator's hold is then settled at the
    estimate, never released: the owner may have paid.
    """
    if not isinstance(error, RunwareError) or isinstance(error, RunwareDuplicateTaskError):
        return False
    if accepted:
        return error.from_runware and isinstance(error, _TASK_REFUSALS)
    if error.never_sent:
        return True  # the connection was refused or never made: the request never left this machine
    return isinstance(error, _REFUSALS)


def unknown_outcome_message(error: BaseException, charged: int, provider: str = "Runware") -> str:
    """Word the terminal line for a generation whose outcome is unknown: what went wrong, what was recorded."""
    what = operator_message(error) if isinstance(error, RunwareError) else f"interrupted ({type(error).__name__})."
    return (
        f"{what} {provider} may have charged your account {format_usd(charged)}; recorded as operator spend "
        "(the estimate: the outcome is unknown)."
    )


_MEMBER_TAIL = re.compile(r"\s*Nothing was charged( to your budget)?\.$")


def operator_message(exc: RunwareError) -> str:
    """Word a Runware or Runbase failure for the operator at the terminal (`user_message` is for a Discord member)."""
    if isinstance(exc, RunbaseError):
        return _runbase_message(exc)
    if isinstance(exc, RunwareAuthError):
        return "Runware rejected the API key: check RUNWARE_API_KEY."
    if isinstance(exc, RunwareCreditsError):
        return "Your Runware account is out of credits: top it up, then try again."
    return _MEMBER_TAIL.sub("", exc.user_message)


def _runbase_message(exc: RunbaseError) -> str:
    """Word a Runbase failure for the operator: which setting or which limit on Runbase to look at."""
    if isinstance(exc, RunbaseAuthError):
        return f"Runbase rejected the API key ({exc.code or f'HTTP {exc.status}'}): check RUNBASE_API_KEY."
    if isinstance(exc, RunbaseBalanceError):
        return "Your Runbase balance is too low (insufficient_balance): top it up on Runbase, then try again."
    if isinstance(exc, RunbaseKeyLimitError):
        what = {
            "api_key_spend_limit_exceeded": "has reached its spend limit: raise it on Runbase",
            "ip_not_allowed": "does not allow this machine's IP address: add it to the key's allow-list on Runbase",
            "USAGE_EXCEEDED": "has used up its usage quota: raise it on Runbase",
        }.get(exc.code, f"is refused by a limit set on it ({exc.code}): lift it on Runbase")
        return f"The Runbase key {what}."
    if isinstance(exc, RunbaseKeyCheckError):
        return exc.message
    return _MEMBER_TAIL.sub("", exc.user_message)
