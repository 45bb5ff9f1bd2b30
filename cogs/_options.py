"""Option types, choices and parsers that several command groups share (a helper module, not an extension)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from discord import app_commands

from bot.catalog import MAX_COUNT, MODEL_SPECS, Background, ModelName, OutputFormat, Quality, Resolution, Routing, Size
from bot.errors import InvalidRequestError
from bot.money import MAX_AMOUNT_MICROS, NOT_AN_AMOUNT, MoneyError, format_usd, parse_usd

Count = app_commands.Range[int, 1, MAX_COUNT]
Amount = app_commands.Range[str, 1, 24]
"""A dollar amount as typed (`2.50`, `$0.75`), parsed with `parse_amount`."""

MODEL_CHOICES = [app_commands.Choice(name=model.value, value=model.value) for model in MODEL_SPECS]
"""Runware's models; the extensions narrow or widen this to the models a configured provider serves."""
SIZE_CHOICES = [
    app_commands.Choice(name="1024x1024 (square)", value=Size.SQUARE.value),
    app_commands.Choice(name="1536x1024 (landscape)", value=Size.LANDSCAPE.value),
    app_commands.Choice(name="1024x1536 (portrait)", value=Size.PORTRAIT.value),
]
QUALITY_CHOICES = [app_commands.Choice(name=quality.value, value=quality.value) for quality in Quality]
BACKGROUND_CHOICES = [app_commands.Choice(name=background.value, value=background.value) for background in Background]
FORMAT_CHOICES = [app_commands.Choice(name=fmt.value, value=fmt.value) for fmt in OutputFormat]
RESOLUTION_CHOICES = [app_commands.Choice(name=resolution.value, value=resolution.value) for resolution in Resolution]

MAX_OPTION_CHARS = 6000
"""Discord's limit on a slash command's string option; longer prompts cannot be typed into a command at all."""

Prompt = app_commands.Range[str, 1, MAX_OPTION_CHARS]

OPTION_DESCRIPTIONS = {
    "model": "GPT Image model (default: this server's default model)",
    "size": "Output size in pixels",
    "quality": "Rendering quality; higher costs more (auto is priced as high)",
    "background": "Background; transparent needs png or webp",
    "count": "How many images (1-4; this server may allow fewer)",
    "output_format": "File format of the images",
    "resolution": "Resolution (GPT Image 2 only; 1K by default, 2K and 4K cost more)",
}

_F = TypeVar("_F", bound=Callable[..., Any])


def generation_options(func: _F) -> _F:
    """Declare what `/imagine` and `/edit` share: server only, the `format` option's name, descriptions, choices."""
    func = app_commands.guild_only()(func)
    func = app_commands.rename(output_format="format")(func)
    func = app_commands.describe(**OPTION_DESCRIPTIONS)(func)
    # A new `choices(...)` per command: discord.py keeps the given dict on the function and may update it in place.
    return app_commands.choices(
        model=MODEL_CHOICES,
        size=SIZE_CHOICES,
        quality=QUALITY_CHOICES,
        background=BACKGROUND_CHOICES,
        output_format=FORMAT_CHOICES,
        resolution=RESOLUTION_CHOICES,
    )(func)


def model_choices(models: Sequence[ModelName]) -> list[app_commands.Choice[str | int | float]]:
    """Return the `model` choices for these models, in their order."""
    return [app_commands.Choice(name=model.value, value=model.value) for model in models]


def offer_served_options(command: object, routing: Routing) -> None:
    """Fit a command's options to the configured providers, before the commands are synced.

    The `model` choices become the models a configured provider serves (Runware alone: its three models, as before;
    with Runbase: GPT Image 2 too); the `resolution` option is offered only when a served model has a resolution
    choice (so with Runware alone the commands are exactly what they were).
    """
    if not isinstance(command, app_commands.Command):
        return
    # discord.py keeps a command's options in `_params` (name -> CommandParameter); the payload it syncs, and how it
    # reads an invocation's options, both come from there.
    params = command._params
    if "model" in params:
        params["model"].choices = model_choices(routing.models)
    has_resolutions = any(route.resolutions for model in routing.models for route in routing.routes(model))
    if "resolution" in params and not has_resolutions:
        del params["resolution"]


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
