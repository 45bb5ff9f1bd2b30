"""The fixed vocabulary of the product: models, sizes, resolutions, qualities, backgrounds and formats (contract §5.3).

Which provider serves which model with which options is `bot.catalog.routes`; this module only names things.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProviderName(StrEnum):
    """The image providers Atelier speaks to; the values are stored on each job and named in `[providers]`."""

    RUNWARE = "runware"
    RUNBASE = "runbase"

    @property
    def label(self) -> str:
        """The provider's name as shown to people."""
        return self.value.capitalize()


class ModelName(StrEnum):
    """User-facing model names; the values are part of the interface contract."""

    GPT_IMAGE_1 = "gpt-image-1"
    GPT_IMAGE_1_MINI = "gpt-image-1-mini"
    GPT_IMAGE_1_5 = "gpt-image-1.5"
    GPT_IMAGE_2 = "gpt-image-2"

    @property
    def label(self) -> str:
        """The model's name as shown to people (`GPT Image 1 Mini`)."""
        return _MODEL_LABELS[self]


_MODEL_LABELS = {
    ModelName.GPT_IMAGE_1: "GPT Image 1",
    ModelName.GPT_IMAGE_1_MINI: "GPT Image 1 Mini",
    ModelName.GPT_IMAGE_1_5: "GPT Image 1.5",
    ModelName.GPT_IMAGE_2: "GPT Image 2",
}


class Size(StrEnum):
    """The three output sizes every GPT Image model accepts."""

    SQUARE = "1024x1024"
    LANDSCAPE = "1536x1024"
    PORTRAIT = "1024x1536"

    @property
    def width(self) -> int:
        """Width in pixels."""
        return int(self.value.split("x")[0])

    @property
    def height(self) -> int:
        """Height in pixels."""
        return int(self.value.split("x")[1])

    @property
    def aspect_ratio(self) -> str:
        """The size as an aspect ratio (`1:1`, `3:2`, `2:3`), as providers that take ratios name it."""
        return _ASPECT_RATIOS[self]

    @classmethod
    def from_dimensions(cls, width: int, height: int) -> Size:
        """Return the size for a width and height, or raise ValueError."""
        return cls(f"{width}x{height}")


_ASPECT_RATIOS = {Size.SQUARE: "1:1", Size.LANDSCAPE: "3:2", Size.PORTRAIT: "2:3"}


class Resolution(StrEnum):
    """Output resolution of models that offer one (GPT Image 2): the long side about 1K, 2K or 4K pixels."""

    ONE_K = "1K"
    TWO_K = "2K"
    FOUR_K = "4K"


class Quality(StrEnum):
    """OpenAI rendering quality; `auto` is priced as `high`."""

    AUTO = "auto"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Background(StrEnum):
    """Background handling; `transparent` needs PNG or WEBP output."""

    AUTO = "auto"
    OPAQUE = "opaque"
    TRANSPARENT = "transparent"


class OutputFormat(StrEnum):
    """Output file formats offered to users (lower-case, as in the contract)."""

    PNG = "png"
    JPG = "jpg"
    WEBP = "webp"

    @property
    def runware(self) -> str:
        """The value Runware expects in `outputFormat`."""
        return self.value.upper()

    @property
    def extension(self) -> str:
        """File name extension without the dot."""
        return self.value


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as Runware serves it: the AIR id and the prompt-length rule (`bot.catalog.routes` builds on these)."""

    name: ModelName
    air: str
    label: str
    min_prompt_chars: int
    max_prompt_chars: int = 32_000
    max_reference_images: int = 16


MODEL_SPECS: dict[ModelName, ModelSpec] = {
    ModelName.GPT_IMAGE_1: ModelSpec(ModelName.GPT_IMAGE_1, "openai:1@1", "GPT Image 1", 1),
    ModelName.GPT_IMAGE_1_MINI: ModelSpec(ModelName.GPT_IMAGE_1_MINI, "openai:1@2", "GPT Image 1 Mini", 1),
    ModelName.GPT_IMAGE_1_5: ModelSpec(ModelName.GPT_IMAGE_1_5, "openai:4@1", "GPT Image 1.5", 2),
}
"""The models Runware serves, by name (GPT Image 2 is not among them: only Runbase has it)."""

AIR_TO_MODEL: dict[str, ModelName] = {spec.air: name for name, spec in MODEL_SPECS.items()}

MAX_COUNT = 4
"""The largest `count` a Discord command offers (contract §5.3); Runware itself allows up to 20."""


class Period(StrEnum):
    """Budget periods; all reset at 00:00 UTC (weeks on Monday, months on the 1st)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
