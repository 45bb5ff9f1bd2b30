"""What the fake Runware charges per image: the project's price table, plus GPT Image 1.5's input surcharge.

`image_cost` gives dollars per finished image, rounded to 5 decimals as Runware reports `cost`: the price table's
figure for the model, quality (`auto` priced as `high`) and size, plus, for GPT Image 1.5, the prompt tokens
(characters / 4 at $5 per million) and $0.0027 per reference image (both fitted to the seeds). `cost_override`
replaces all of it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from bot.catalog import AIR_TO_MODEL, Quality, Size
from bot.money import MICROS_PER_USD
from bot.settings import PriceTable, load_app_config
from fakes.config_file import project_config
from fakes.runware.validation import InferenceSpec

__all__ = ["default_prices", "image_cost"]

TEXT_USD_PER_MILLION_TOKENS = Decimal(5)
"""GPT Image 1.5 prompt surcharge: characters / 4 tokens at $5 per million tokens (fitted to the seeds)."""
CHARS_PER_TOKEN = 4
REFERENCE_IMAGE_USD = Decimal("0.0027")
"""GPT Image 1.5 surcharge per reference image (fitted to the seeds; the config estimates more, on purpose)."""
SURCHARGED_MODELS = frozenset({"openai:4@1"})


def default_prices() -> PriceTable:
    """The price table of the project's config file."""
    return load_app_config(project_config()).prices


def image_cost(spec: InferenceSpec, prices: PriceTable, cost_override: float | None) -> float:
    """Dollars per image: the price table (auto as high), plus the 1.5 input surcharge, to 5 decimals."""
    if cost_override is not None:
        return float(cost_override)
    quality = Quality(spec.quality)
    if quality is Quality.AUTO:
        quality = Quality.HIGH
    size = Size.from_dimensions(spec.width, spec.height)
    amount = Decimal(prices[AIR_TO_MODEL[spec.model]][quality][size]) / MICROS_PER_USD
    if spec.model in SURCHARGED_MODELS:
        tokens = Decimal(len(spec.prompt)) / CHARS_PER_TOKEN
        amount += tokens * TEXT_USD_PER_MILLION_TOKENS / 1_000_000
        amount += len(spec.references) * REFERENCE_IMAGE_USD
    return float(amount.quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP))
