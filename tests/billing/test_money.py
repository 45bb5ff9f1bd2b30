"""Money: dollar amounts typed by people or reported by Runware become exact integer micro-dollars, and back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.money import MAX_AMOUNT_MICROS, MoneyError, format_usd, parse_usd, usd_to_micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2", 2_000_000),
        ("2.50", 2_500_000),
        ("  $0.75 ", 750_000),
        (".5", 500_000),
        ("2.", 2_000_000),
        ("+3", 3_000_000),
        ("0", 0),
        ("-0", 0),
        ("0.000001", 1),
        ("0.0000010", 1),
        ("1.100000000", 1_100_000),
        ("1000000", MAX_AMOUNT_MICROS),
        ("$1000000.000000", MAX_AMOUNT_MICROS),
        ("007.5", 7_500_000),
    ],
)
def test_amounts_people_write_are_read_exactly(text: str, micros: int) -> None:
    """Digits with an optional point, sign and dollar sign; zeros past the sixth decimal are harmless."""
    assert parse_usd(text) == micros
    assert usd_to_micros(text) == micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [("-1.50", -1_500_000), ("-$1", -1_000_000), ("-$0.000001", -1), ("-1000000", -MAX_AMOUNT_MICROS)],
)
def test_a_leading_minus_is_a_deduction_where_negatives_are_allowed(text: str, micros: int) -> None:
    """`-1.50` and `-$1.50` both deduct (a `/budget grant` of a negative amount); elsewhere they are refused."""
    assert parse_usd(text, allow_negative=True) == micros
    with pytest.raises(MoneyError, match=r"^amount must not be negative: "):
        parse_usd(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no amount given"),
        ("   ", "no amount given"),
        ("1_000", "write the amount without separators (like 1000.50): '1_000'"),
        ("1,000.50", "without separators"),
        ("1 000", "without separators"),
        ("$1'000", "without separators"),
        ("1e3", "write the amount in plain digits, without an exponent: '1e3'"),
        ("2.5E-1", "without an exponent"),
        ("-1e2", "without an exponent"),
        ("inf", "not a finite amount: 'inf'"),
        ("-Infinity", "not a finite amount"),
        ("NaN", "not a finite amount"),
        ("$nan", "not a finite amount"),
        ("0.0000001", "at most six decimal places (a micro-dollar is $0.000001): '0.0000001'"),
        ("1.1234565", "at most six decimal places"),
        ("1000000.01", "amount too large: '1000000.01' (at most $1000000.00)"),
        ("99999999999999999999999", "amount too large"),
        ("lots", "not an amount: 'lots'"),
        ("$-1", "not an amount"),
        ("--1", "not an amount"),
        ("$$1", "not an amount"),
        ("1.2.3", "not an amount"),
        ("0x10", "not an amount"),
        ("\uff11", "not an amount"),  # a full-width digit one
        ("1 dollar", "not an amount"),
    ],
)
def test_odd_forms_are_refused_with_a_message_saying_what_is_wrong(text: str, message: str) -> None:
    """Anything but plain digits is refused, and the message names the problem and repeats what was written."""
    with pytest.raises(MoneyError) as caught:
        parse_usd(text, allow_negative=True)
    assert message in str(caught.value)
    with pytest.raises(MoneyError):
        usd_to_micros(text)


@pytest.mark.parametrize(
    ("value", "micros"),
    [
        (0.25, 250_000),
        (0.19961, 199_610),
        (1e-05, 10),
        (0.1 + 0.2, 300_000),
        (5e-07, 1),
        (4.9e-07, 0),
        (Decimal("0.12345649999999999999"), 123_456),
        (Decimal("0.0000005"), 1),
        (3, 3_000_000),
        (-0.011, -11_000),
    ],
)
def test_numbers_are_converted_through_their_decimal_text_and_rounded_half_up(
    value: float | int | Decimal, micros: int
) -> None:
    """A provider's float cost or a bare TOML number: `Decimal(str(value))`, rounded half up to the micro-dollar."""
    assert usd_to_micros(value) == micros


@pytest.mark.parametrize("value", [True, False, float("inf"), float("nan"), 1e300, Decimal("1e400"), Decimal("NaN")])
def test_unusable_numbers_are_refused(value: object) -> None:
    """Booleans, infinities, NaN and absurd sizes are never money."""
    with pytest.raises(MoneyError):
        usd_to_micros(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (0, "$0.00"),
        (1, "$0.000001"),
        (10, "$0.00001"),
        (11_000, "$0.011"),
        (500_000, "$0.50"),
        (1_000_000, "$1.00"),
        (1_250_000, "$1.25"),
        (-500_000, "-$0.50"),
        (-1, "-$0.000001"),
        (MAX_AMOUNT_MICROS, "$1000000.00"),
    ],
)
def test_format_shows_at_least_cents_and_every_micro_dollar(micros: int, text: str) -> None:
    """Two decimals at least, no trailing zeros beyond them, the sign before the dollar sign."""
    assert format_usd(micros) == text


@given(st.integers(-MAX_AMOUNT_MICROS, MAX_AMOUNT_MICROS))
def test_what_is_shown_reads_back_as_the_same_amount(micros: int) -> None:
    """Every amount an admin sees can be typed back exactly, negatives included."""
    assert parse_usd(format_usd(micros), allow_negative=True) == micros


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("lots", "not an amount"),
        ("1,000", "write the amount without separators (like 1000.50)"),
        ("2000000", "amount too large (at most $1000000.00)"),
        ("-1", "amount must not be negative"),
    ],
)
def test_money_error_reason_leaves_the_value_out_and_str_adds_it(text: str, reason: str) -> None:
    """`reason` is what is wrong, for messages that quote the value themselves; `str()` names the value too."""
    with pytest.raises(MoneyError) as caught:
        parse_usd(text)
    assert caught.value.reason == reason
    assert repr(text) in str(caught.value)
