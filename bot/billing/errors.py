"""Billing errors; each carries the sentence shown to the Discord user (ephemerally)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.errors import AtelierError, InvalidRequestError
from bot.money import format_usd

Scope = Literal["member", "server", "blocked"]


class BudgetInputError(InvalidRequestError):
    """An amount, period, id or reason given to a budget or ledger operation is unusable; nothing was changed."""


class PricingError(InvalidRequestError):
    """A request cannot be priced (unknown model, quality or size; count or reference number out of range)."""


class LedgerError(AtelierError):
    """A ledger operation names a job it cannot apply to (unknown, or in a conflicting state); nothing was changed."""


class BudgetExceededError(AtelierError):
    """A reservation does not fit the member's remaining budget, the server's cap, or the member is blocked."""

    def __init__(self, scope: Scope, needed: int, remaining: int, resets_at: datetime) -> None:
        self.scope: Scope = scope
        self.needed = needed
        self.remaining = remaining
        self.resets_at = resets_at
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        needed, remaining = format_usd(self.needed), format_usd(self.remaining)
        resets = f"<t:{int(self.resets_at.timestamp())}:R>"
        if self.scope == "blocked":
            return "You are blocked from generating images on this server; ask an admin if you think this is a mistake."
        if self.scope == "server":
            return (
                f"This needs about {needed} but the server has only {remaining} left in its budget; "
                f"the server budget resets {resets}."
            )
        return f"This needs about {needed} but you have {remaining} left; your budget resets {resets}."
