"""Integer micro-dollar money: conversion from provider floats and user input, and display."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
MAX_AMOUNT_MICROS = 1_000_000 * MICROS_PER_USD
"""Largest amount accepted anywhere (one million dollars): larger values are input mistakes."""


NOT_AN_AMOUNT = "not an amount"
"""`MoneyError.reason` when the text does not look like a number at all."""


class MoneyError(ValueError):
    """An amount that cannot be used as money (not a number, negative where not allowed, absurdly large).

    `reason` says what is wrong without repeating the value (for a message that quotes the value itself);
    `str()` is the reason followed by the value.
    """

    def __init__(self, reason: str, value: object = None, *, detail: str = "") -> None:
        self.reason = reason + detail
        super().__init__(self.reason if value is None else f"{reason}: {value!r}{detail}")


_PLAIN = re.compile(r"(?P<sign>[-+]?)\$?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
"""An amount as a person writes it: an optional sign, an optional dollar sign, digits with an optional point."""
_EXPONENT = re.compile(r"[-+]?\$?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")
_NOT_FINITE = {"inf", "infinity", "nan", "snan"}


def usd_to_micros(value: str | int | float | Decimal) -> int:
    """Convert a dollar amount to integer micro-dollars, exactly.

    Numbers (a provider's float cost, a bare number in the TOML file) go through `Decimal(str(value))` and are rounded
    half up to the micro-dollar. Text is read as a person writes an amount (`parse_usd`'s rules): at most six
    decimals, no separators or exponents.
    """
    if isinstance(value, bool):
        raise MoneyError(NOT_AN_AMOUNT, value)
    if isinstance(value, str):
        return _parse_text(value)
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise MoneyError(NOT_AN_AMOUNT, value) from exc
    return _to_micros(amount, value)


def parse_usd(text: str, *, allow_negative: bool = False) -> int:
    """Parse an amount typed by a person (`2`, `2.50`, `$0.75`, and with `allow_negative` `-1.50` or `-$1.50`).

    Raises `MoneyError` saying what is wrong: empty, negative (unless allowed), a thousands separator (`1,000`,
    `1_000`), an exponent (`1e3`), `inf` or `nan`, more than six decimals (finer than a micro-dollar), or too large.
    """
    micros = _parse_text(text)
    if micros < 0 and not allow_negative:
        raise MoneyError("amount must not be negative", text)
    return micros


def _parse_text(text: str) -> int:
    written = text.strip()
    if not written:
        raise MoneyError("no amount given")
    match = _PLAIN.fullmatch(written)
    if match is None:
        bare = written.lstrip("+-$").lower()
        if bare in _NOT_FINITE:
            raise MoneyError("not a finite amount", text)
        if _EXPONENT.fullmatch(written):
            raise MoneyError("write the amount in plain digits, without an exponent", text)
        if _PLAIN.fullmatch(re.sub(r"[,_ ']", "", written)):
            raise MoneyError("write the amount without separators (like 1000.50)", text)
        raise MoneyError(NOT_AN_AMOUNT, text)
    number = match["number"]
    if len(number.partition(".")[2].rstrip("0")) > 6:
        raise MoneyError("at most six decimal places (a micro-dollar is $0.000001)", text)
    amount = Decimal(number)
    return _to_micros(-amount if match["sign"] == "-" else amount, text)


def _to_micros(amount: Decimal, value: object) -> int:
    if not amount.is_finite():
        raise MoneyError(NOT_AN_AMOUNT, value)
    ceiling = f" (at most {format_usd(MAX_AMOUNT_MICROS)})"
    if abs(amount) > MAX_AMOUNT_MICROS:  # also keeps `quantize` below from failing on exponents like 1e400
        raise MoneyError("amount too large", value, detail=ceiling)
    micros = int((amount * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(micros) > MAX_AMOUNT_MICROS:
        raise MoneyError("amount too large", value, detail=ceiling)
    return micros


def format_usd(micros: int) -> str:
    """Show micro-dollars as dollars with at least two decimals and no trailing zeros: `$0.011`, `$1.25`, `-$0.50`."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)  # integers only: every result card shows a few amounts
    return f"{sign}${whole}.{f'{frac:06d}'.rstrip('0').ljust(2, '0')}"
