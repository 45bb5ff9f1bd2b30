"""Integer micro-dollar money: conversion from provider floats and user input, and display."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
MAX_AMOUNT_MICROS = 1_000_000 * MICROS_PER_USD
"""Largest amount accepted anywhere (one million dollars): larger values are input mistakes."""

_ONE_MICRO = Decimal("0.000001")


class MoneyError(ValueError):
    """An amount that cannot be used as money (not a number, negative where not allowed, absurdly large)."""


def usd_to_micros(value: str | int | float | Decimal) -> int:
    """Convert a dollar amount to integer micro-dollars, exactly, going through `Decimal(str(value))`."""
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value).strip().lstrip("$"))
    except InvalidOperation as exc:
        raise MoneyError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise MoneyError(f"not an amount: {value!r}")
    if abs(amount) > MAX_AMOUNT_MICROS:  # also keeps `quantize` below from failing on exponents like 1e400
        raise MoneyError(f"amount too large: {value!r}")
    micros = int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(micros) > MAX_AMOUNT_MICROS:
        raise MoneyError(f"amount too large: {value!r}")
    return micros


def parse_usd(text: str, *, allow_negative: bool = False) -> int:
    """Parse an amount typed by a person (`2`, `2.50`, `$0.75`) into micro-dollars."""
    micros = usd_to_micros(text)
    if micros < 0 and not allow_negative:
        raise MoneyError(f"amount must not be negative: {text!r}")
    return micros


def format_usd(micros: int) -> str:
    """Show micro-dollars as dollars with at least two decimals and no trailing zeros: `$0.011`, `$1.25`, `-$0.50`."""
    sign = "-" if micros < 0 else ""
    amount = (Decimal(abs(micros)) / MICROS_PER_USD).quantize(_ONE_MICRO)
    text = f"{amount:f}".rstrip("0")
    whole, _, frac = text.partition(".")
    frac = frac.ljust(2, "0")
    return f"{sign}${whole}.{frac}"
