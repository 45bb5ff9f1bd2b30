"""The provider side of the TOML file: `[providers]` (each model's route order) and `[run_prices]` (per-run prices).

`[providers."<model>"]` names the provider that serves a model first (`primary`) and those that may take over
(`takeover`, in order). A model left out gets the default of contract §5.4: Runware first, Runbase taking over where
it serves the same model. Providers whose key is not set are skipped when the routing is built, so with only
`RUNBASE_API_KEY` set every model Runbase has is served by Runbase, and with only `RUNWARE_API_KEY` nothing changes.

`[run_prices.runbase."<model>"]` holds Runbase's fixed prices per run, in dollars (held as micro-dollars): one
price (`run`), or one per quality (`[… .quality]`) or per resolution (`[… .resolution]`), whichever the model's
route prices by. Left out, the documented prices apply (runbase-api.md §3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from bot.catalog import ROUTES, ModelName, ProviderName, Quality, Resolution, Route, Routing, find_route
from bot.money import usd_to_micros


def _to_micros(value: Any) -> Any:
    if isinstance(value, str | int | float | Decimal) and not isinstance(value, bool):
        return usd_to_micros(value)
    return value


Micros = Annotated[int, BeforeValidator(_to_micros), Field(ge=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderOrder(_Section):
    """One model's routes: the provider that serves it first and those that may take over, in order."""

    primary: ProviderName
    takeover: tuple[ProviderName, ...] = ()

    @property
    def order(self) -> tuple[ProviderName, ...]:
        """Primary first, then each provider that may take over (each once)."""
        return tuple(dict.fromkeys((self.primary, *self.takeover)))


ProvidersConfig = dict[ModelName, ProviderOrder]


def check_provider_orders(orders: ProvidersConfig) -> ProvidersConfig:
    """Raise ValueError when a `[providers]` entry names a provider that does not serve that model."""
    for model, order in orders.items():
        for provider in order.order:
            if find_route(model, provider) is None:
                raise ValueError(f'providers."{model}": {provider} does not serve {model}')
    return orders


class RunPrice(_Section):
    """The price of one run of a model on a provider with fixed prices: one price, or by quality or resolution."""

    run: Micros | None = None
    quality: dict[Quality, Micros] = {}
    resolution: dict[Resolution, Micros] = {}

    def price(self, route: Route, quality: Quality, resolution: Resolution | None) -> int:
        """Return the micro-dollar price of one run on `route`; `auto` quality is priced as `high`."""
        if route.resolutions:
            return self.resolution[resolution or Resolution.ONE_K]
        if route.sends_quality:
            return self.quality[Quality.HIGH if quality is Quality.AUTO else quality]
        if self.run is None:
            raise KeyError(f"no run price for {route.model}")
        return self.run

    def missing(self, route: Route) -> str | None:
        """Return the key this entry lacks for `route`, or None when it prices every option the route offers."""
        if route.resolutions:
            gaps = [r.value for r in route.resolutions if r not in self.resolution]
            return f'resolution."{gaps[0]}"' if gaps else None
        if route.sends_quality:
            wanted = {Quality.HIGH if q is Quality.AUTO else q for q in route.qualities}
            gaps = [q.value for q in Quality if q in wanted and q not in self.quality]
            return f"quality.{gaps[0]}" if gaps else None
        return "run" if self.run is None else None


RunPrices = dict[ProviderName, dict[ModelName, RunPrice]]

DEFAULT_RUN_PRICES: RunPrices = {
    ProviderName.RUNBASE: {
        ModelName.GPT_IMAGE_1: RunPrice.model_validate({"run": "0.05"}),
        ModelName.GPT_IMAGE_1_5: RunPrice.model_validate({"quality": {"medium": "0.03", "high": "0.16"}}),
        ModelName.GPT_IMAGE_2: RunPrice.model_validate({"resolution": {"1K": "0.05", "2K": "0.07", "4K": "0.12"}}),
    }
}
"""Runbase's documented prices per run (runbase-api.md §3), used when `[run_prices]` leaves them out."""


class RunPricesConfig(_Section):
    """`[run_prices]`: per provider with fixed prices, per model (only Runbase has them)."""

    runbase: dict[ModelName, RunPrice] = DEFAULT_RUN_PRICES[ProviderName.RUNBASE]

    @model_validator(mode="after")
    def _complete(self) -> RunPricesConfig:
        for route in ROUTES:
            if route.provider is not ProviderName.RUNBASE:
                continue
            entry = self.runbase.get(route.model)
            if entry is None:
                raise ValueError(f'no price for run_prices.runbase."{route.model}"')
            gap = entry.missing(route)
            if gap is not None:
                raise ValueError(f'no price for run_prices.runbase."{route.model}".{gap}')
        return self

    def for_provider(self, provider: ProviderName) -> Mapping[ModelName, RunPrice] | None:
        """Return the fixed prices of `provider`, or None for one that reports its own cost per image (Runware)."""
        return self.runbase if provider is ProviderName.RUNBASE else None


def build_routing(configured: Iterable[ProviderName], orders: ProvidersConfig) -> Routing:
    """Build the routing for the providers whose key is set, in the order `[providers]` gives (defaults: §5.4)."""
    return Routing.build(configured, {model: order.order for model, order in orders.items()})
