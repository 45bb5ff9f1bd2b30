"""Billing errors: what was refused and why, as data and a short sentence (the edge may write its own words)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.errors import AtelierError, InvalidRequestError
from bot.money import format_usd

Scope = Literal["member", "server", "pool", "blocked"]


class BudgetInputError(InvalidRequestError):
    """An amount, period, id or reason given to a budget or ledger operation is unusable; nothing was changed."""


class PricingError(InvalidRequestError):
    """A request cannot be priced (unknown model, quality or size; count or reference number out of range)."""


class LedgerError(AtelierError):
    """A ledger operation names a job it cannot apply to (unknown, or in a conflicting state); nothing was changed."""


class BudgetExceededError(AtelierError):
    """A reservation does not fit the member's remaining budget, the server cap, a team pool, or the member is blocked.

    It carries the numbers (micro-dollars) and when the budget resets, and for scope `pool` the pool's channel or
    category id (`pool_id`); the edge that shows it writes the sentence (for Discord,
    `bot.discord.tree.budget_refusal`). `str()` is a plain description for logs.
    """

    def __init__(
        self, scope: Scope, needed: int, remaining: int, resets_at: datetime, *, pool_id: int | None = None
    ) -> None:
        self.scope: Scope = scope
        self.needed = needed
        self.remaining = remaining
        self.resets_at = resets_at
        self.pool_id = pool_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.scope == "blocked":
            return "blocked: the member may not generate images on this server"
        holders = {"server": "the server has only", "pool": f"the team pool of {self.pool_id} has only"}
        holder = holders.get(self.scope, "you have")
        return (
            f"{self.scope} budget: needs about {format_usd(self.needed)} but {holder} {format_usd(self.remaining)} "
            f"left until {self.resets_at.isoformat()}"
        )
