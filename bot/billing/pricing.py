"""Pre-flight price estimates from the config's price table (runware-api.md §6), in integer micro-dollars."""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

from bot.billing.errors import PricingError
from bot.catalog import MAX_COUNT, MODEL_SPECS, ModelName, Quality, Size
from bot.settings import AppConfig

_MICROS = 1_000_000
"""Token prices are per million tokens; this is also the scale of one micro-dollar in the exact arithmetic below."""


class PricedRequest(Protocol):
    """What `Pricing.estimate_request` needs from a request."""

    @property
    def model(self) -> ModelName:
        """The model asked for."""

    @property
    def quality(self) -> Quality:
        """The quality asked for."""

    @property
    def size(self) -> Size:
        """The size asked for."""

    @property
    def count(self) -> int:
        """How many images."""

    @property
    def prompt(self) -> str:
        """The prompt (GPT Image 1.5 prices its tokens)."""

    @property
    def references(self) -> Sized:
        """The reference images (GPT Image 1.5 prices each)."""


class Pricing:
    """Estimates what a request will cost, before any money moves."""

    def __init__(self, config: AppConfig) -> None:
        self._prices = config.prices
        self._inputs = config.input_prices

    def per_image(self, model: ModelName | str, quality: Quality | str, size: Size | str) -> int:
        """Return the table price of one image; `auto` quality is priced as `high` (the worst case)."""
        return self._table_price(*_parse(model, quality, size))

    def estimate(
        self,
        model: ModelName | str,
        quality: Quality | str,
        size: Size | str,
        count: int,
        prompt_chars: int,
        reference_count: int,
    ) -> int:
        """Estimate a request in micro-dollars: per-image price plus input costs, with headroom, times `count`.

        For a model with input prices (GPT Image 1.5), each image adds ceil(prompt_chars / chars_per_token) tokens
        at the text price and a fixed amount per reference image; headroom_percent is then added to the image's
        total. The per-image figure is computed exactly in integers and rounded up to the micro-dollar once.
        """
        name, tier, dimensions = _parse(model, quality, size)
        _check_int(count, "count", 1, MAX_COUNT)
        _check_int(prompt_chars, "prompt length", 0, 10_000_000)
        _check_int(reference_count, "number of reference images", 0, MODEL_SPECS[name].max_reference_images)
        base = self._table_price(name, tier, dimensions)
        inputs = self._inputs.get(name)
        if inputs is None:
            return base * count
        tokens = -(-prompt_chars // inputs.chars_per_token)
        # Everything in units of 1e-6 micro-dollars so the sum is exact before the single rounding.
        exact = (
            base * _MICROS
            + tokens * inputs.text_per_million_tokens
            + reference_count * inputs.per_reference_image * _MICROS
        )
        with_headroom = exact * (100 + inputs.headroom_percent)
        per_image = -(-with_headroom // (_MICROS * 100))
        return per_image * count

    def _table_price(self, name: ModelName, tier: Quality, dimensions: Size) -> int:
        return self._prices[name][Quality.HIGH if tier is Quality.AUTO else tier][dimensions]

    def estimate_request(self, request: PricedRequest) -> int:
        """Estimate a request object that has model, quality, size, count, prompt and references."""
        return self.estimate(
            request.model, request.quality, request.size, request.count, len(request.prompt), len(request.references)
        )


def _parse(model: ModelName | str, quality: Quality | str, size: Size | str) -> tuple[ModelName, Quality, Size]:
    try:
        name = ModelName(model)
    except ValueError:
        raise PricingError(f"Unknown model {model!r}; choose one of {', '.join(m.value for m in ModelName)}.") from None
    try:
        tier = Quality(quality)
    except ValueError:
        raise PricingError(
            f"Unknown quality {quality!r}; choose one of {', '.join(q.value for q in Quality)}."
        ) from None
    try:
        dimensions = Size(size)
    except ValueError:
        raise PricingError(f"Unknown size {size!r}; choose one of {', '.join(s.value for s in Size)}.") from None
    return name, tier, dimensions


def _check_int(value: object, what: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PricingError(f"The {what} must be a whole number from {low} to {high}, not {value!r}.")
