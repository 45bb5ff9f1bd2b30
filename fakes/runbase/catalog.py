"""What the fake Runbase knows of its GPT Image models (shared/reference/runbase-api.md §3): inputs, limits, prices.

Pixel sizes are not documented (reference §2: "take it from the bytes"); the fake's choice, stated here once:
GPT Image 1 and 1.5 give Runware's three sizes (`1:1` 1024x1024, `3:2` 1536x1024, `2:3` 1024x1536); GPT Image 2's
long side is 1024 (`1K`), 2048 (`2K`) or 3840 (`4K`, UHD), the short side following the aspect ratio (a multiple of 16).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MODELS", "ModelSpec", "pixel_size"]

MAX_PROMPT_CHARS = 4000
MAX_REFERENCE_BYTES = 4 * 1024 * 1024
"""The documented size limit of one `image_urls` reference (4 MB; read as MiB)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One Runbase model: the input keys it takes, their allowed values, its reference limit and its prices."""

    model_id: str
    aspect_ratios: tuple[str, ...]
    max_references: int
    prices: dict[str, int]
    """Price in micro-dollars per run, keyed by the value of `price_key` (or `""` for a flat price)."""
    price_key: str | None = None
    """The input whose value picks the price (`quality`, `resolution`), or None for one flat price."""
    options: dict[str, tuple[str, ...]] | None = None
    """Further enumerated inputs (`quality`, `resolution`) and their values."""
    defaults: dict[str, str] | None = None

    @property
    def input_keys(self) -> frozenset[str]:
        """Every input key the model accepts."""
        return frozenset({"prompt", "aspect_ratio", "image_urls", *(self.options or {})})

    def price(self, inputs: dict[str, str]) -> int:
        """The micro-dollar price of one run with these (validated) inputs."""
        if self.price_key is None:
            return self.prices[""]
        return self.prices[inputs[self.price_key]]


MODELS: dict[str, ModelSpec] = {
    spec.model_id: spec
    for spec in (
        ModelSpec("openai/gpt-image-1", ("1:1", "3:2", "2:3"), 5, {"": 50_000}),
        ModelSpec(
            "openai/gpt-image-1.5",
            ("1:1", "3:2", "2:3"),
            4,
            {"medium": 30_000, "high": 160_000},
            price_key="quality",
            options={"quality": ("medium", "high")},
            defaults={"quality": "medium"},
        ),
        ModelSpec(
            "openai/gpt-image-2",
            ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"),
            4,
            {"1K": 50_000, "2K": 70_000, "4K": 120_000},
            price_key="resolution",
            options={"resolution": ("1K", "2K", "4K")},
            defaults={"resolution": "1K"},
        ),
    )
}
"""The models the fake serves, by Runbase model id (reference §3)."""

_LONG_SIDE = {"1K": 1024, "2K": 2048, "4K": 3840}
_GPT_IMAGE_1_SIZES = {"1:1": (1024, 1024), "3:2": (1536, 1024), "2:3": (1024, 1536)}


def pixel_size(model_id: str, aspect_ratio: str, resolution: str | None = None) -> tuple[int, int]:
    """The (width, height) of a result for this model, aspect ratio and (GPT Image 2) resolution."""
    if model_id != "openai/gpt-image-2":
        return _GPT_IMAGE_1_SIZES[aspect_ratio]
    long_side = _LONG_SIDE[resolution or "1K"]
    across, down = (int(part) for part in aspect_ratio.split(":"))
    if across >= down:
        return long_side, _multiple_of_16(long_side * down / across)
    return _multiple_of_16(long_side * across / down), long_side


def _multiple_of_16(value: float) -> int:
    return max(16, round(value / 16) * 16)
