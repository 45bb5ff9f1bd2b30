"""Routes: which provider serves which model, with which options, and how a request picks one.

A `Route` is one model on one provider: the provider's model id (a Runware AIR id, a Runbase `openai/…` id) and what
that provider offers for it (sizes, resolutions, qualities, backgrounds, formats, reference and prompt limits).
`ROUTES` is the table of every route there is (runware-api.md, runbase-api.md §3). `Routing` is the table as this
process has it configured: per model, its routes in order (primary first, then those that may take over), only for
providers whose key is set. `Routing.choose` returns the first route that can honour a request's options, or raises
`NoRouteError` saying what is possible instead. Adding a model or a route is a change to this table and the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.catalog.vocabulary import (
    MODEL_SPECS,
    Background,
    ModelName,
    OutputFormat,
    ProviderName,
    Quality,
    Resolution,
    Size,
)

__all__ = [
    "ROUTES",
    "NoRouteError",
    "Refusal",
    "Route",
    "RouteRequest",
    "Routing",
    "default_order",
]

RUNBASE_MAX_PROMPT_CHARS = 4000
"""Runbase documents 1–4000 prompt characters for GPT Image 1 (runbase-api.md §3); assumed for its other models."""
RUNBASE_MAX_REFERENCE_BYTES = 4 * 1024 * 1024
"""Runbase fetches each `image_urls` reference itself, up to 4 MB (read as MiB) each (runbase-api.md §3)."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The options of a request that a route must honour (what `Routing.choose` looks at)."""

    size: Size = Size.SQUARE
    quality: Quality = Quality.MEDIUM
    background: Background = Background.AUTO
    format: OutputFormat = OutputFormat.PNG
    resolution: Resolution | None = None
    """None: the member did not choose one (the model's default applies, 1K where it has a choice)."""
    references: int = 0
    largest_reference_bytes: int = 0
    """The size of the largest reference image as the member gave it (0: unknown or none)."""
    prompt_chars: int | None = None
    """The prompt's length in characters; None: not checked (the prompt is not known yet)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One option a route cannot honour: what was asked and what that route offers instead."""

    option: str
    """The option's name as members know it: `size`, `resolution`, `quality`, `background`, `format`,
    `references`, `reference size`, `prompt`."""
    asked: str
    possible: tuple[str, ...]
    """The values the route accepts (for limits: one text such as `at most 4`)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One model on one provider and the options that provider offers for it."""

    model: ModelName
    provider: ProviderName
    provider_model: str
    """The provider's id of the model: a Runware AIR id (`openai:1@1`) or a Runbase id (`openai/gpt-image-2`)."""
    sizes: tuple[Size, ...]
    aspect_ratios: tuple[str, ...]
    """The aspect ratios the provider itself names (a Runbase input); empty for a provider that takes pixel sizes."""
    resolutions: tuple[Resolution, ...]
    """Empty: the model has no resolution choice (only 1K, or leaving it out, is honoured)."""
    qualities: tuple[Quality, ...]
    backgrounds: tuple[Background, ...]
    formats: tuple[OutputFormat, ...]
    max_references: int
    max_reference_bytes: int | None
    """The largest reference the provider takes as it is; None: the bot sends references it has fitted itself."""
    min_prompt_chars: int
    max_prompt_chars: int
    sends_quality: bool = True
    """Whether the chosen quality goes to the provider (Runbase's GPT Image 1 and 2 have no quality input)."""

    @property
    def label(self) -> str:
        """`GPT Image 2 on Runbase`."""
        return f"{self.model.label} on {self.provider.label}"

    @property
    def default_resolution(self) -> Resolution | None:
        """The resolution used when the member chose none: 1K where the model offers a choice, else None."""
        return Resolution.ONE_K if self.resolutions else None

    def refusals(self, request: RouteRequest) -> list[Refusal]:
        """Every option of `request` this route cannot honour (empty: the route can run it)."""
        found: list[Refusal] = []

        def check(option: str, asked: str, offered: Sequence[str], ok: bool) -> None:
            if not ok:
                found.append(Refusal(option, asked, tuple(offered)))

        check("size", request.size.value, [s.value for s in self.sizes], request.size in self.sizes)
        if request.resolution is not None:
            offered = [r.value for r in self.resolutions] or [Resolution.ONE_K.value]
            check("resolution", request.resolution.value, offered, request.resolution.value in offered)
        check("quality", request.quality.value, [q.value for q in self.qualities], request.quality in self.qualities)
        check(
            "background",
            request.background.value,
            [b.value for b in self.backgrounds],
            request.background in self.backgrounds,
        )
        check("format", request.format.value, [f.value for f in self.formats], request.format in self.formats)
        check(
            "references",
            str(request.references),
            [f"at most {self.max_references}"],
            request.references <= self.max_references,
        )
        if self.max_reference_bytes is not None:
            check(
                "reference size",
                _megabytes(request.largest_reference_bytes),
                [f"images of at most {_megabytes(self.max_reference_bytes)}"],
                request.largest_reference_bytes <= self.max_reference_bytes,
            )
        if request.prompt_chars is not None:
            check(
                "prompt",
                f"{request.prompt_chars} characters",
                [f"{self.min_prompt_chars} to {self.max_prompt_chars} characters"],
                self.min_prompt_chars <= request.prompt_chars <= self.max_prompt_chars,
            )
        return found

    def can_honour(self, request: RouteRequest) -> bool:
        """Whether this route can run `request` as asked."""
        return not self.refusals(request)


def _megabytes(size: int) -> str:
    """Write a size as `4 MB` or `5.2 MB` (MiB, as the providers' limits are read)."""
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MB"


_ALL_SIZES = tuple(Size)
_RUNWARE_QUALITIES = tuple(Quality)
_RUNWARE_BACKGROUNDS = tuple(Background)
_RUNWARE_FORMATS = tuple(OutputFormat)
_RUNBASE_BACKGROUNDS = (Background.AUTO, Background.OPAQUE)
"""Runbase documents no `background` input: nothing transparent can be asked for."""
_RUNBASE_FORMATS = (OutputFormat.PNG,)
"""Runbase's output format cannot be chosen (runbase-api.md §2); its results are PNG files."""


def _runware(model: ModelName) -> Route:
    spec = MODEL_SPECS[model]
    return Route(
        model=model,
        provider=ProviderName.RUNWARE,
        provider_model=spec.air,
        sizes=_ALL_SIZES,
        aspect_ratios=(),
        resolutions=(),
        qualities=_RUNWARE_QUALITIES,
        backgrounds=_RUNWARE_BACKGROUNDS,
        formats=_RUNWARE_FORMATS,
        max_references=spec.max_reference_images,
        max_reference_bytes=None,
        min_prompt_chars=spec.min_prompt_chars,
        max_prompt_chars=spec.max_prompt_chars,
    )


def _runbase(
    model: ModelName,
    *,
    aspect_ratios: tuple[str, ...] = ("1:1", "3:2", "2:3"),
    resolutions: tuple[Resolution, ...] = (),
    qualities: tuple[Quality, ...] = tuple(Quality),
    sends_quality: bool = False,
    max_references: int = 4,
) -> Route:
    return Route(
        model=model,
        provider=ProviderName.RUNBASE,
        provider_model=f"openai/{model.value}",
        sizes=_ALL_SIZES,
        aspect_ratios=aspect_ratios,
        resolutions=resolutions,
        qualities=qualities,
        backgrounds=_RUNBASE_BACKGROUNDS,
        formats=_RUNBASE_FORMATS,
        max_references=max_references,
        max_reference_bytes=RUNBASE_MAX_REFERENCE_BYTES,
        min_prompt_chars=1,
        max_prompt_chars=RUNBASE_MAX_PROMPT_CHARS,
        sends_quality=sends_quality,
    )


ROUTES: tuple[Route, ...] = (
    _runware(ModelName.GPT_IMAGE_1),
    _runware(ModelName.GPT_IMAGE_1_MINI),
    _runware(ModelName.GPT_IMAGE_1_5),
    # GPT Image 1 on Runbase has no quality input: every quality is accepted, none is sent, one price per run.
    _runbase(ModelName.GPT_IMAGE_1, max_references=5),
    _runbase(ModelName.GPT_IMAGE_1_5, qualities=(Quality.MEDIUM, Quality.HIGH), sends_quality=True),
    # GPT Image 2 has no quality input either; its price follows the resolution.
    _runbase(
        ModelName.GPT_IMAGE_2,
        aspect_ratios=("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"),
        resolutions=tuple(Resolution),
    ),
)
"""Every route there is, Runware's first; a model's order in a `Routing` comes from the config."""


def default_order(model: ModelName) -> tuple[ProviderName, ...]:
    """Return the providers that serve `model`, Runware first (contract §5.4: Runware is each model's first route)."""
    return tuple(provider for provider in ProviderName if find_route(model, provider) is not None)


def find_route(model: ModelName, provider: ProviderName, routes: Iterable[Route] | None = None) -> Route | None:
    """Return the route of `model` on `provider` in `routes` (default: the whole catalog), or None if it has none."""
    candidates = ROUTES if routes is None else routes
    return next((route for route in candidates if route.model is model and route.provider is provider), None)


class NoRouteError(LookupError):
    """No configured route can honour a request; carries what each route (or the model) refuses.

    `refusals` is empty when no configured provider serves the model at all; then `served` names the models
    that are.
    """

    def __init__(
        self,
        model: ModelName,
        refusals: Mapping[ProviderName, Sequence[Refusal]],
        served: Sequence[ModelName],
    ) -> None:
        self.model = model
        self.refusals: dict[ProviderName, tuple[Refusal, ...]] = {k: tuple(v) for k, v in refusals.items()}
        self.served = tuple(served)
        super().__init__(self.sentence())

    @property
    def options(self) -> tuple[str, ...]:
        """The options some route refused, in the order they were checked (each once)."""
        seen: dict[str, None] = {}
        for found in self.refusals.values():
            for refusal in found:
                seen.setdefault(refusal.option, None)
        return tuple(seen)

    def possible(self, option: str) -> tuple[str, ...]:
        """Every value of `option` that some configured route offers (in the routes' order)."""
        values: dict[str, None] = {}
        for found in self.refusals.values():
            for refusal in found:
                if refusal.option == option:
                    for value in refusal.possible:
                        values.setdefault(value, None)
        return tuple(values)

    def sentence(self) -> str:
        """One plain sentence: what cannot be done and what can (`transparent background is not available …`)."""
        if not self.refusals:
            names = ", ".join(model.value for model in self.served) or "none"
            return f"{self.model.label} is not available here; the models on offer: {names}."
        parts = []
        for refusal in next(iter(self.refusals.values())):
            possible = self.possible(refusal.option)
            if refusal.option in ("references", "reference size", "prompt"):
                parts.append(f"{refusal.option} ({refusal.asked}): {self.model.label} takes {' or '.join(possible)}")
            else:
                choices = " or ".join(possible)
                parts.append(
                    f"{refusal.asked} {refusal.option} is not available for {self.model.label}; choose {choices}"
                )
        return "; ".join(parts) + "."


@dataclass(frozen=True)
class Routing:
    """The configured routes: per model, in order (primary first, then those that may take over)."""

    by_model: Mapping[ModelName, tuple[Route, ...]]
    _order: tuple[ModelName, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        served = tuple(model for model in ModelName if self.by_model.get(model))
        object.__setattr__(self, "_order", served)

    @classmethod
    def build(
        cls,
        configured: Iterable[ProviderName],
        orders: Mapping[ModelName, Sequence[ProviderName]] | None = None,
        *,
        table: Sequence[Route] = ROUTES,
    ) -> Routing:
        """Routes for the providers whose key is set; `orders` (the `[providers]` config) sets each model's order.

        A model left out of `orders` gets `default_order` (Runware first, Runbase taking over). A provider named in
        an order without a route for that model, or without a key, is skipped.
        """
        keys = frozenset(configured)
        by_model: dict[ModelName, tuple[Route, ...]] = {}
        for model in ModelName:
            order = (orders or {}).get(model, default_order(model))
            routes = []
            for provider in order:
                route = find_route(model, provider, table)
                if provider in keys and route is not None and route not in routes:
                    routes.append(route)
            if routes:
                by_model[model] = tuple(routes)
        return cls(by_model)

    @property
    def models(self) -> tuple[ModelName, ...]:
        """The models some configured provider serves, in the catalog's order (what the slash choices offer)."""
        return self._order

    @property
    def providers(self) -> tuple[ProviderName, ...]:
        """The providers some route uses."""
        return tuple(p for p in ProviderName if any(r.provider is p for rs in self.by_model.values() for r in rs))

    def serves(self, model: ModelName) -> bool:
        """Whether some configured provider serves `model`."""
        return bool(self.by_model.get(model))

    def routes(self, model: ModelName) -> tuple[Route, ...]:
        """Return the routes of `model` in order (empty when no configured provider serves it)."""
        return self.by_model.get(model, ())

    def route(self, model: ModelName, provider: ProviderName | str) -> Route | None:
        """Return the configured route of `model` on `provider`, or None."""
        return find_route(model, ProviderName(provider), self.routes(model))

    def choose(self, model: ModelName, request: RouteRequest) -> Route:
        """Return the first route of `model` that can honour `request`; raise `NoRouteError` naming what is possible."""
        routes = self.routes(model)
        refusals: dict[ProviderName, list[Refusal]] = {}
        for route in routes:
            found = route.refusals(request)
            if not found:
                return route
            refusals[route.provider] = found
        raise NoRouteError(model, refusals, self.models)

    def after(self, model: ModelName, provider: ProviderName | str, request: RouteRequest) -> Route | None:
        """Return the next route after `provider` for `model` that can honour `request` (failover), or None."""
        routes = self.routes(model)
        names = [route.provider.value for route in routes]
        if str(provider) not in names:
            return None
        return next((r for r in routes[names.index(str(provider)) + 1 :] if r.can_honour(request)), None)

    def describe(self, model: ModelName) -> str:
        """`GPT Image 1: Runware -> Runbase` (the `/settings show` line of one model)."""
        order = " -> ".join(route.provider.label for route in self.routes(model)) or "not served"
        return f"{model.label}: {order}"

    def default_model(self, preferred: ModelName) -> ModelName:
        """`preferred` when it is served, else the first served model (or `preferred` when none is)."""
        if self.serves(preferred) or not self._order:
            return preferred
        return self._order[0]
