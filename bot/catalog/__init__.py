"""The product's catalog: its vocabulary (models, sizes, resolutions, ...) and the routes that serve each model.

- `vocabulary`: the fixed names of the contract (§5.3): `ModelName`, `Size`, `Resolution`, `Quality`,
  `Background`, `OutputFormat`, `Period`, `ProviderName`, and Runware's `MODEL_SPECS` (AIR ids, prompt rules).
- `routes`: `Route` (one model on one provider and what it offers), `ROUTES` (every route there is), `Routing`
  (per model the configured routes in order; `choose` picks the first that can honour a request) and
  `NoRouteError` (what is possible instead).

A leaf of the house: it imports nothing else of the project. Every name is re-exported here, so
`from bot.catalog import ModelName` works as it always has.
"""

from bot.catalog.routes import (
    ROUTES,
    NoRouteError,
    Refusal,
    Route,
    RouteRequest,
    Routing,
    default_order,
    find_route,
)
from bot.catalog.vocabulary import (
    AIR_TO_MODEL,
    MAX_COUNT,
    MODEL_SPECS,
    Background,
    ModelName,
    ModelSpec,
    OutputFormat,
    Period,
    ProviderName,
    Quality,
    Resolution,
    Size,
)

__all__ = [
    "AIR_TO_MODEL",
    "MAX_COUNT",
    "MODEL_SPECS",
    "ROUTES",
    "Background",
    "ModelName",
    "ModelSpec",
    "NoRouteError",
    "OutputFormat",
    "Period",
    "ProviderName",
    "Quality",
    "Refusal",
    "Resolution",
    "Route",
    "RouteRequest",
    "Routing",
    "Size",
    "default_order",
    "find_route",
]
