"""Routes: the default order per key combination, `[providers]`, `choose` refusing or rerouting, per-route prices."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.billing.errors import PricingError
from bot.billing.pricing import Pricing
from bot.catalog import (
    ROUTES,
    Background,
    ModelName,
    NoRouteError,
    OutputFormat,
    ProviderName,
    Quality,
    Resolution,
    RouteRequest,
    Routing,
    Size,
)
from bot.settings import SettingsError, load_app_config, load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "config" / "atelier.toml"
RUNWARE, RUNBASE = ProviderName.RUNWARE, ProviderName.RUNBASE


def order(routing: Routing, model: ModelName) -> list[str]:
    return [route.provider.value for route in routing.routes(model)]


def settings_for(tmp_path: Path, keys: dict[str, str], config_text: str | None = None) -> Routing:
    path = tmp_path / "atelier.toml"
    path.write_text(config_text or CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    return load_settings({**keys, "ATELIER_CONFIG": str(path)}).routing()


def test_only_runware_serves_the_three_models_as_before(tmp_path: Path) -> None:
    """With only RUNWARE_API_KEY: Runware's three models, one route each, no GPT Image 2 (nothing changes)."""
    routing = settings_for(tmp_path, {"RUNWARE_API_KEY": "rw"})
    assert routing.models == (ModelName.GPT_IMAGE_1, ModelName.GPT_IMAGE_1_MINI, ModelName.GPT_IMAGE_1_5)
    for model in routing.models:
        assert order(routing, model) == ["runware"]
    assert not routing.serves(ModelName.GPT_IMAGE_2)
    assert routing.providers == (RUNWARE,)


def test_only_runbase_serves_every_model_it_has(tmp_path: Path) -> None:
    """With only RUNBASE_API_KEY: Runbase serves GPT Image 1, 1.5 and 2; Mini (Runware only) is not offered."""
    routing = settings_for(tmp_path, {"RUNBASE_API_KEY": "sk-rb"})
    assert routing.models == (ModelName.GPT_IMAGE_1, ModelName.GPT_IMAGE_1_5, ModelName.GPT_IMAGE_2)
    assert all(order(routing, model) == ["runbase"] for model in routing.models)
    assert routing.default_model(ModelName.GPT_IMAGE_1_MINI) is ModelName.GPT_IMAGE_1
    assert routing.default_model(ModelName.GPT_IMAGE_2) is ModelName.GPT_IMAGE_2


def test_both_keys_put_runware_first_and_runbase_after_where_it_serves_the_model(tmp_path: Path) -> None:
    routing = settings_for(tmp_path, {"RUNWARE_API_KEY": "rw", "RUNBASE_API_KEY": "sk-rb"})
    assert order(routing, ModelName.GPT_IMAGE_1) == ["runware", "runbase"]
    assert order(routing, ModelName.GPT_IMAGE_1_MINI) == ["runware"]
    assert order(routing, ModelName.GPT_IMAGE_1_5) == ["runware", "runbase"]
    assert order(routing, ModelName.GPT_IMAGE_2) == ["runbase"]
    assert routing.describe(ModelName.GPT_IMAGE_1) == "GPT Image 1: Runware -> Runbase"
    assert routing.describe(ModelName.GPT_IMAGE_2) == "GPT Image 2: Runbase"


def test_no_key_serves_nothing() -> None:
    routing = Routing.build([])
    assert routing.models == ()
    with pytest.raises(NoRouteError) as caught:
        routing.choose(ModelName.GPT_IMAGE_1, RouteRequest())
    assert caught.value.refusals == {} and "not available" in str(caught.value)


def test_the_providers_section_sets_the_order_and_can_turn_failover_off(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    old = '"gpt-image-1" = { primary = "runware", takeover = ["runbase"] }'
    assert old in text
    text = text.replace(old, '"gpt-image-1" = { primary = "runbase", takeover = ["runware"] }')
    text = text.replace(
        '"gpt-image-1.5" = { primary = "runware", takeover = ["runbase"] }', '"gpt-image-1.5" = { primary = "runware" }'
    )
    routing = settings_for(tmp_path, {"RUNWARE_API_KEY": "rw", "RUNBASE_API_KEY": "sk-rb"}, text)
    assert order(routing, ModelName.GPT_IMAGE_1) == ["runbase", "runware"]
    assert order(routing, ModelName.GPT_IMAGE_1_5) == ["runware"]
    # the same config with only the Runbase key: a model whose order names Runware alone is not served
    routing = settings_for(tmp_path, {"RUNBASE_API_KEY": "sk-rb"}, text)
    assert order(routing, ModelName.GPT_IMAGE_1) == ["runbase"]
    assert not routing.serves(ModelName.GPT_IMAGE_1_5)


def test_a_provider_that_does_not_serve_the_model_is_a_config_error(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8").replace(
        '"gpt-image-2" = { primary = "runbase" }', '"gpt-image-2" = { primary = "runware" }'
    )
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=r"providers: .*runware does not serve gpt-image-2"):
        load_app_config(path)


def test_a_missing_runbase_price_is_a_config_error(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8")
    assert '"4K" = "0.12"' in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace('"4K" = "0.12"', ""), encoding="utf-8")
    with pytest.raises(SettingsError, match=r'no price for run_prices.runbase."gpt-image-2".resolution."4K"'):
        load_app_config(path)


BOTH = Routing.build([RUNWARE, RUNBASE])
ONLY_RUNBASE = Routing.build([RUNBASE])


def test_a_transparent_background_on_gpt_image_2_is_refused_naming_what_is_possible() -> None:
    with pytest.raises(NoRouteError) as caught:
        BOTH.choose(ModelName.GPT_IMAGE_2, RouteRequest(background=Background.TRANSPARENT))
    error = caught.value
    assert error.options == ("background",)
    assert error.possible("background") == ("auto", "opaque")
    assert str(error) == "transparent background is not available for GPT Image 2; choose auto or opaque."


def test_a_transparent_background_reroutes_to_runware_where_it_serves_the_model() -> None:
    """Runbase first for GPT Image 1, but only Runware offers transparency: the request goes to Runware."""
    routing = Routing.build([RUNWARE, RUNBASE], {ModelName.GPT_IMAGE_1: (RUNBASE, RUNWARE)})
    assert routing.choose(ModelName.GPT_IMAGE_1, RouteRequest()).provider is RUNBASE
    request = RouteRequest(background=Background.TRANSPARENT)
    assert routing.choose(ModelName.GPT_IMAGE_1, request).provider is RUNWARE
    request = RouteRequest(format=OutputFormat.WEBP)
    assert routing.choose(ModelName.GPT_IMAGE_1, request).provider is RUNWARE
    # with Runbase alone, the same request is refused
    with pytest.raises(NoRouteError, match="transparent background is not available for GPT Image 1"):
        ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_1, RouteRequest(background=Background.TRANSPARENT))


def test_resolutions_are_gpt_image_2s_and_1k_is_everyones() -> None:
    for resolution in Resolution:
        route = BOTH.choose(ModelName.GPT_IMAGE_2, RouteRequest(resolution=resolution))
        assert route.provider_model == "openai/gpt-image-2"
    assert BOTH.choose(ModelName.GPT_IMAGE_2, RouteRequest()).default_resolution is Resolution.ONE_K
    assert BOTH.choose(ModelName.GPT_IMAGE_1, RouteRequest(resolution=Resolution.ONE_K)).provider is RUNWARE
    assert BOTH.choose(ModelName.GPT_IMAGE_1, RouteRequest()).default_resolution is None
    with pytest.raises(NoRouteError) as caught:
        BOTH.choose(ModelName.GPT_IMAGE_1, RouteRequest(resolution=Resolution.TWO_K))
    assert str(caught.value) == "2K resolution is not available for GPT Image 1; choose 1K."


def test_runbase_qualities_references_and_prompt_limits() -> None:
    with pytest.raises(NoRouteError) as caught:
        ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_1_5, RouteRequest(quality=Quality.LOW))
    assert str(caught.value) == "low quality is not available for GPT Image 1.5; choose medium or high."
    assert BOTH.choose(ModelName.GPT_IMAGE_1_5, RouteRequest(quality=Quality.LOW)).provider is RUNWARE
    # GPT Image 1 on Runbase takes any quality (it has no quality input) and up to five references
    assert ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_1, RouteRequest(quality=Quality.LOW, references=5))
    with pytest.raises(NoRouteError, match=r"references \(5\): GPT Image 2 takes at most 4"):
        ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_2, RouteRequest(references=5))
    with pytest.raises(NoRouteError) as caught:
        ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_2, RouteRequest(references=1, largest_reference_bytes=5 << 20))
    assert str(caught.value) == "reference size (5 MB): GPT Image 2 takes images of at most 4 MB."
    # Runware takes large references (the bot fits them itself): with both keys, GPT Image 1.5 goes there
    big = RouteRequest(references=1, largest_reference_bytes=5 << 20)
    assert BOTH.choose(ModelName.GPT_IMAGE_1_5, big).provider is RUNWARE
    with pytest.raises(NoRouteError, match="prompt"):
        ONLY_RUNBASE.choose(ModelName.GPT_IMAGE_2, RouteRequest(prompt_chars=4001))
    # a prompt too long for Runbase goes to Runware where Runware serves the model
    assert BOTH.choose(ModelName.GPT_IMAGE_1, RouteRequest(prompt_chars=10_000)).provider is RUNWARE


def test_failover_takes_the_next_route_that_can_honour_the_request() -> None:
    request = RouteRequest()
    after = BOTH.after(ModelName.GPT_IMAGE_1, RUNWARE, request)
    assert after is not None and after.provider is RUNBASE
    assert BOTH.after(ModelName.GPT_IMAGE_1, RUNBASE, request) is None
    assert BOTH.after(ModelName.GPT_IMAGE_1_MINI, RUNWARE, request) is None
    assert BOTH.after(ModelName.GPT_IMAGE_1, RUNWARE, RouteRequest(background=Background.TRANSPARENT)) is None


def test_sizes_are_aspect_ratios_on_runbase() -> None:
    assert [size.aspect_ratio for size in Size] == ["1:1", "3:2", "2:3"]
    for route in ROUTES:
        if route.provider is RUNBASE:
            assert {size.aspect_ratio for size in route.sizes} <= set(route.aspect_ratios)


@pytest.fixture
def pricing() -> Pricing:
    return Pricing(load_app_config(CONFIG))


def test_runbase_estimates_are_its_fixed_prices_per_run(pricing: Pricing) -> None:
    def runbase(model: ModelName, quality: Quality, count: int = 1, resolution: Resolution | None = None) -> int:
        return pricing.estimate(model, quality, Size.LANDSCAPE, count, 900, 2, provider=RUNBASE, resolution=resolution)

    assert runbase(ModelName.GPT_IMAGE_1, Quality.LOW) == 50_000
    assert runbase(ModelName.GPT_IMAGE_1, Quality.HIGH, count=3) == 150_000
    assert runbase(ModelName.GPT_IMAGE_1_5, Quality.MEDIUM) == 30_000
    assert runbase(ModelName.GPT_IMAGE_1_5, Quality.HIGH) == 160_000
    assert runbase(ModelName.GPT_IMAGE_1_5, Quality.AUTO) == 160_000
    assert runbase(ModelName.GPT_IMAGE_2, Quality.MEDIUM) == 50_000
    assert runbase(ModelName.GPT_IMAGE_2, Quality.MEDIUM, resolution=Resolution.ONE_K) == 50_000
    assert runbase(ModelName.GPT_IMAGE_2, Quality.MEDIUM, resolution=Resolution.TWO_K) == 70_000
    assert runbase(ModelName.GPT_IMAGE_2, Quality.HIGH, count=4, resolution=Resolution.FOUR_K) == 480_000
    with pytest.raises(PricingError, match="no quality low"):
        runbase(ModelName.GPT_IMAGE_1_5, Quality.LOW)
    with pytest.raises(PricingError, match="not served by Runware"):
        pricing.estimate(ModelName.GPT_IMAGE_2, Quality.HIGH, Size.SQUARE, 1, 10, 0)
    with pytest.raises(PricingError, match="not served by Runbase"):
        pricing.estimate(ModelName.GPT_IMAGE_1_MINI, Quality.HIGH, Size.SQUARE, 1, 10, 0, provider=RUNBASE)


def test_runware_estimates_are_unchanged_by_routes(pricing: Pricing) -> None:
    """The default provider is Runware, priced from the table as before (GPT Image 1 high landscape: $0.25)."""
    assert pricing.estimate(ModelName.GPT_IMAGE_1, Quality.HIGH, Size.LANDSCAPE, 1, 10, 0) == 250_000
    assert pricing.estimate(ModelName.GPT_IMAGE_1, Quality.HIGH, Size.LANDSCAPE, 1, 10, 0, provider=RUNWARE) == 250_000


def test_run_prices_in_the_config_are_exact_micro_dollars(tmp_path: Path) -> None:
    text = CONFIG.read_text(encoding="utf-8").replace('"2K" = "0.07"', '"2K" = "0.070001"')
    path = tmp_path / "atelier.toml"
    path.write_text(text, encoding="utf-8")
    prices = load_app_config(path).run_prices.runbase
    assert prices[ModelName.GPT_IMAGE_2].resolution[Resolution.TWO_K] == 70_001
    assert prices[ModelName.GPT_IMAGE_1].run == 50_000
