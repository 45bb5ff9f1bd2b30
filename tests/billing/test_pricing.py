"""Pricing: the config's table per model x quality x size, GPT Image 1.5 input costs, auto as high."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.billing.errors import PricingError
from bot.billing.pricing import Pricing
from bot.catalog import MODEL_SPECS, ModelName, Quality, Size
from bot.errors import InvalidRequestError
from bot.settings import AppConfig, InputPrice


@pytest.fixture
def pricing(config: AppConfig) -> Pricing:
    return Pricing(config)


REFERENCE_TABLE: dict[ModelName, dict[Quality, tuple[int, int, int]]] = {
    # shared/reference/runware-api.md §6.2, per image, micro-dollars: 1024x1024, 1536x1024, 1024x1536.
    ModelName.GPT_IMAGE_1: {
        Quality.LOW: (11_000, 16_000, 16_000),
        Quality.MEDIUM: (42_000, 63_000, 63_000),
        Quality.HIGH: (167_000, 250_000, 250_000),
    },
    ModelName.GPT_IMAGE_1_MINI: {
        Quality.LOW: (5_000, 6_000, 6_000),
        Quality.MEDIUM: (11_000, 15_000, 15_000),
        Quality.HIGH: (36_000, 52_000, 52_000),
    },
    ModelName.GPT_IMAGE_1_5: {
        Quality.LOW: (9_000, 13_000, 13_000),
        Quality.MEDIUM: (34_000, 50_000, 51_000),
        Quality.HIGH: (133_000, 199_000, 200_000),
    },
}


def test_every_cell_of_the_price_table_matches_the_reference(config: AppConfig) -> None:
    """config/atelier.toml's [prices] is exactly the estimate table of runware-api.md §6.2: 27 cells, no more."""
    columns = (Size.SQUARE, Size.LANDSCAPE, Size.PORTRAIT)
    expected = {
        model: {quality: dict(zip(columns, cells, strict=True)) for quality, cells in qualities.items()}
        for model, qualities in REFERENCE_TABLE.items()
    }
    assert config.prices == expected


def test_input_prices_follow_the_reference_formula(config: AppConfig) -> None:
    """§6.2's pre-flight formula: GPT Image 1.5 adds $5 per million prompt tokens (4 characters a token) and $0.005
    per reference image, with 5-10 % headroom; the flat-priced models add nothing."""
    assert set(config.input_prices) == {ModelName.GPT_IMAGE_1_5}
    surcharge = config.input_prices[ModelName.GPT_IMAGE_1_5]
    assert (surcharge.text_per_million_tokens, surcharge.chars_per_token) == (5_000_000, 4)
    assert surcharge.per_reference_image == 5_000
    assert 5 <= surcharge.headroom_percent <= 10


@pytest.mark.parametrize(
    ("model", "quality", "size", "prompt", "refs", "measured"),
    [
        (ModelName.GPT_IMAGE_1, Quality.HIGH, Size.LANDSCAPE, 200, 0, 250_000),
        (ModelName.GPT_IMAGE_1, Quality.HIGH, Size.LANDSCAPE, 200, 3, 250_000),
        (ModelName.GPT_IMAGE_1_MINI, Quality.MEDIUM, Size.PORTRAIT, 100, 1, 15_000),
        (ModelName.GPT_IMAGE_1_MINI, Quality.MEDIUM, Size.LANDSCAPE, 100, 0, 15_000),
        (ModelName.GPT_IMAGE_1_MINI, Quality.MEDIUM, Size.SQUARE, 100, 8, 11_000),
    ],
)
def test_flat_priced_models_estimate_exactly_the_measured_cost(
    pricing: Pricing, model: ModelName, quality: Quality, size: Size, prompt: int, refs: int, measured: int
) -> None:
    """GPT Image 1 and Mini cost a flat price per image whatever the prompt and references (runware-api §6.1)."""
    assert pricing.estimate(model, quality, size, 1, prompt, refs) == measured


@pytest.mark.parametrize(
    ("size", "prompt", "refs", "measured"),
    [
        (Size.LANDSCAPE, 917, 0, 199_610),
        (Size.LANDSCAPE, 1201, 0, 199_840),
        (Size.PORTRAIT, 300, 1, 203_120),
        (Size.SQUARE, 200, 0, 133_920),
    ],
)
def test_gpt_image_1_5_estimate_covers_every_measured_cost(
    pricing: Pricing, size: Size, prompt: int, refs: int, measured: int
) -> None:
    """For 1.5 the estimate (table price + prompt and reference inputs + headroom) never undercuts the bill."""
    estimate = pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.HIGH, size, 1, prompt, refs)
    assert measured <= estimate <= measured * 1.25


def test_gpt_image_1_5_input_formula_is_exact_integer_arithmetic(pricing: Pricing) -> None:
    """917 chars -> ceil(917/4) = 230 tokens x $5/1M = $0.00115; (0.199 + 0.00115) x 1.10 = $0.220165."""
    assert pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.HIGH, Size.LANDSCAPE, 1, 917, 0) == 220_165
    # one reference adds $0.005 before headroom: (0.200 + ceil(10/4)=3 tokens -> 0.000015 + 0.005) x 1.1
    assert pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.HIGH, Size.PORTRAIT, 1, 10, 1) == 225_517


def test_estimates_round_up_to_the_next_micro_dollar(config: AppConfig) -> None:
    """A fraction of a micro-dollar is always rounded up, never down."""
    inputs = {ModelName.GPT_IMAGE_1_5: InputPrice(text_per_million_tokens=1, chars_per_token=1, headroom_percent=0)}
    pricing = Pricing(config.model_copy(update={"input_prices": inputs}))
    base = pricing.per_image(ModelName.GPT_IMAGE_1_5, Quality.LOW, Size.SQUARE)
    # one token at $1/1M is 1e-6 of a micro-dollar: still one whole micro-dollar more
    assert pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.LOW, Size.SQUARE, 1, 1, 0) == base + 1
    assert pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.LOW, Size.SQUARE, 1, 0, 0) == base


@pytest.mark.parametrize("model", list(MODEL_SPECS))
def test_auto_quality_is_priced_as_high(pricing: Pricing, model: ModelName) -> None:
    """`auto` is unknown until Runware answers, so it is estimated at the worst case, `high`."""
    for size in Size:
        assert pricing.estimate(model, Quality.AUTO, size, 1, 500, 1) == pricing.estimate(
            model, Quality.HIGH, size, 1, 500, 1
        )


def test_count_multiplies_the_per_image_estimate(pricing: Pricing) -> None:
    """Four images cost four times one image (1.5 inputs counted per image)."""
    one = pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.MEDIUM, Size.SQUARE, 1, 600, 2)
    assert pricing.estimate(ModelName.GPT_IMAGE_1_5, Quality.MEDIUM, Size.SQUARE, 4, 600, 2) == 4 * one
    assert pricing.estimate("gpt-image-1-mini", "low", "1024x1024", 3, 5, 0) == 15_000


def test_estimate_request_reads_the_request_fields(pricing: Pricing) -> None:
    """Any object with model, quality, size, count, prompt and references can be priced."""

    @dataclass
    class Request:
        model: ModelName = ModelName.GPT_IMAGE_1_5
        quality: Quality = Quality.AUTO
        size: Size = Size.LANDSCAPE
        count: int = 1
        prompt: str = "x" * 917
        references: tuple[str, ...] = ()

    assert pricing.estimate_request(Request()) == 220_165


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("dall-e-3", "high", "1024x1024", 1, 10, 0), "Unknown model"),
        (("gpt-image-1", "ultra", "1024x1024", 1, 10, 0), "Unknown quality"),
        (("gpt-image-1", "high", "512x512", 1, 10, 0), "Unknown size"),
        (("gpt-image-1", "high", "1024x1024", 0, 10, 0), "count"),
        (("gpt-image-1", "high", "1024x1024", 5, 10, 0), "count"),
        (("gpt-image-1", "high", "1024x1024", True, 10, 0), "count"),
        (("gpt-image-1", "high", "1024x1024", 1, -1, 0), "prompt length"),
        (("gpt-image-1", "high", "1024x1024", 1, 10, 17), "reference"),
    ],
)
def test_unpriceable_requests_raise_a_clear_error(pricing: Pricing, args: tuple[object, ...], message: str) -> None:
    """Unknown names and out-of-range numbers are refused with a sentence a user can act on."""
    with pytest.raises(PricingError, match=message) as raised:
        pricing.estimate(*args)  # type: ignore[arg-type]
    assert isinstance(raised.value, InvalidRequestError)
