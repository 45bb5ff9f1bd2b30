"""Option types and parsers that several command groups share (a helper module, not an extension)."""

from __future__ import annotations

from discord import app_commands

from bot.catalog import MAX_COUNT, Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.money import MAX_AMOUNT_MICROS, NOT_AN_AMOUNT, MoneyError, format_usd, parse_usd

Count = app_commands.Range[int, 1, MAX_COUNT]
Amount = app_commands.Range[str, 1, 24]
"""A dollar amount as typed (`2.50`, `$0.75`), parsed with `parse_amount`."""

MODEL_CHOICES = [app_commands.Choice(name=model.value, value=model.value) for model in ModelName]
SIZE_CHOICES = [
    app_commands.Choice(name="1024x1024 (square)", value=Size.SQUARE.value),
    app_commands.Choice(name="1536x1024 (landscape)", value=Size.LANDSCAPE.value),
    app_commands.Choice(name="1024x1536 (portrait)", value=Size.PORTRAIT.value),
]
QUALITY_CHOICES = [app_commands.Choice(name=quality.value, value=quality.value) for quality in Quality]
BACKGROUND_CHOICES = [app_commands.Choice(name=background.value, value=background.value) for background in Background]
FORMAT_CHOICES = [app_commands.Choice(name=fmt.value, value=fmt.value) for fmt in OutputFormat]


def shown(text: str) -> str:
    """Quote what a member typed inside a code span (backticks would end it)."""
    return text.strip().replace("`", "'")


def parse_amount(text: str, *, allow_negative: bool = False) -> int:
    """Parse a dollar amount typed by an admin (`2.50`, `$2.50`) into micro-dollars, or raise a clear error."""
    try:
        micros = parse_usd(text, allow_negative=True)
    except MoneyError as exc:
        if exc.reason == NOT_AN_AMOUNT:
            raise InvalidRequestError(
                f"`{shown(text)}` is not a dollar amount; write it like `2.50` "
                f"(at most {format_usd(MAX_AMOUNT_MICROS)})."
            ) from None
        raise InvalidRequestError(f"`{shown(text)}` can't be used: {exc.reason}.") from None
    if micros < 0 and not allow_negative:
        raise InvalidRequestError(f"`{shown(text)}` is negative; use an amount of 0 or more.")
    return micros
