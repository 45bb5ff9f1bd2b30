"""Checks for the values a budget or ledger operation takes: amounts, Discord ids, job ids.

Each returns the value or raises `BudgetInputError` with the sentence for the admin; nothing has been changed then.
"""

from __future__ import annotations

from bot.billing.errors import BudgetInputError
from bot.money import MAX_AMOUNT_MICROS, format_usd
from bot.settings import MAX_SNOWFLAKE


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
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SNOWFLAKE:
        raise BudgetInputError(f"The {what} must be a Discord id (a non-negative integer), not {value!r}.")
    return value


def check_job_id(value: object) -> str:
    """Return `value` as a job id (1 to 64 printable ASCII characters), or raise `BudgetInputError`."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isascii() or not value.isprintable():
        raise BudgetInputError(f"A job id must be 1 to 64 printable ASCII characters, not {value!r}.")
    return value
