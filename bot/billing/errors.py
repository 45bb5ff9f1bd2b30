"""Billing errors; each carries the sentence shown to the Discord user (ephemerally)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bot.billing.money import MAX_AMOUNT_MICROS, format_usd
from bot.errors import AtelierError, InvalidRequestError

Scope = Literal["member", "server", "blocked"]

_MAX_ID = 2**63 - 1


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


def check_amount(value: object, what: str, *, allow_negative: bool = False, allow_zero: bool = True) -> int:
    """Return `value` as a micro-dollar amount, or raise `BudgetInputError` naming `what` and the accepted range."""
    low = -MAX_AMOUNT_MICROS if allow_negative else 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise BudgetInputError(f"The {what} must be a whole number of micro-dollars, not {value!r}.")
    if not low <= value <= MAX_AMOUNT_MICROS:
        raise BudgetInputError(
            f"The {what} must be between {format_usd(low)} and {format_usd(MAX_AMOUNT_MICROS)}; "
            f"{format_usd(value)} is out of range."
        )
    if value == 0 and not allow_zero:
        raise BudgetInputError(f"The {what} must not be zero.")
    return value


def check_id(value: object, what: str) -> int:
    """Return `value` as a Discord snowflake (a non-negative 64-bit integer), or raise `BudgetInputError`."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_ID:
        raise BudgetInputError(f"The {what} must be a Discord id (a non-negative integer), not {value!r}.")
    return value


def check_job_id(value: object) -> str:
    """Return `value` as a job id (1 to 64 printable ASCII characters), or raise `BudgetInputError`."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isascii() or not value.isprintable():
        raise BudgetInputError(f"A job id must be 1 to 64 printable ASCII characters, not {value!r}.")
    return value
