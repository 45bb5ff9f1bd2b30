"""Pre-flight price estimates per route, in integer micro-dollars.

On Runware, from the config's price table per image (runware-api.md §6) plus input surcharges; Runware reports the
real cost of each image. On Runbase, the fixed price per run from `[run_prices.runbase]` (runbase-api.md §3) by
quality or resolution: one image per run, so the estimate is exact.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

from bot.billing.errors import PricingError
from bot.catalog import MAX_COUNT, ModelName, ProviderName, Quality, Resolution, Route, Size, find_route
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
        self._run_prices = config.run_prices

    def per_image(
        self,
        model: ModelName | str,
        quality: Quality | str,
        size: Size | str,
        *,
        provider: ProviderName | str = ProviderName.RUNWARE,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Return the table price of one image; `auto` quality is priced as `high` (the worst case)."""
        name, tier, dimensions = _parse(model, quality, size)
        route = _route(name, provider)
        if route.provider is ProviderName.RUNWARE:
            return self._table_price(name, tier, dimensions)
        return self._run_price(route, tier, _resolution(resolution))

    def _run_price(self, route: Route, quality: Quality, resolution: Resolution | None) -> int:
        table = self._run_prices.for_provider(route.provider) or {}
        if route.model not in table:
            raise PricingError(f"No price for {route.label}.")
        if route.resolutions and resolution is not None and resolution not in route.resolutions:
            raise PricingError(f"{route.label} has no resolution {resolution}.")
        if route.sends_quality and quality not in (*route.qualities, Quality.AUTO):
            raise PricingError(f"{route.label} has no quality {quality}.")
        return table[route.model].price(route, quality, resolution)

    def estimate(
        self,
        model: ModelName | str,
        quality: Quality | str,
        size: Size | str,
        count: int,
        prompt_chars: int,
        reference_count: int,
        *,
        provider: ProviderName | str = ProviderName.RUNWARE,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Estimate a request in micro-dollars on a provider's route (Runware unless `provider` says otherwise).

        On Runbase: the fixed price of one run (by quality or resolution; `resolution` None is the model's default)
        times `count`, exact. On Runware: per-image price plus input costs, with headroom, times `count`.

        For a model with input prices (GPT Image 1.5), each image adds ceil(prompt_chars / chars_per_token) tokens
        at the text price and a fixed amount per reference image; headroom_percent is then added to the image's
        total. The per-image figure is computed exactly in integers and rounded up to the micro-dollar once.
        """
        name, tier, dimensions = _parse(model, quality, size)
        route = _route(name, provider)
        _check_int(count, "count", 1, MAX_COUNT)
        _check_int(prompt_chars, "prompt length", 0, 10_000_000)
        _check_int(reference_count, "number of reference images", 0, route.max_references)
        if route.provider is not ProviderName.RUNWARE:
            return self._run_price(route, tier, _resolution(resolution)) * count
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

    def estimate_request(
        self,
        request: PricedRequest,
        *,
        provider: ProviderName | str = ProviderName.RUNWARE,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Estimate a request object that has model, quality, size, count, prompt and references, on a provider."""
        return self.estimate(
            request.model,
            request.quality,
            request.size,
            request.count,
            len(request.prompt),
            len(request.references),
            provider=provider,
            resolution=resolution,
        )

    def estimate_route(
        self,
        route: Route,
        request: PricedRequest,
        resolution: Resolution | str | None = None,
    ) -> int:
        """Estimate a request on a chosen route (`bot.catalog.Routing.choose`)."""
        return self.estimate_request(request, provider=route.provider, resolution=resolution)


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


def _route(model: ModelName, provider: ProviderName | str) -> Route:
    try:
        name = ProviderName(provider)
    except ValueError:
        raise PricingError(f"Unknown provider {provider!r}.") from None
    route = find_route(model, name)
    if route is None:
        raise PricingError(f"{model.label} is not served by {name.label}.")
    return route


def _resolution(value: Resolution | str | None) -> Resolution | None:
    if value is None:
        return None
    try:
        return Resolution(value)
    except ValueError:
        raise PricingError(
            f"Unknown resolution {value!r}; choose one of {', '.join(r.value for r in Resolution)}."
        ) from None


def _check_int(value: object, what: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PricingError(f"The {what} must be a whole number from {low} to {high}, not {value!r}.")
