"""The fixed vocabulary of the product: models, sizes, qualities, backgrounds and formats (contract §5.3)."""

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

    @classmethod
    def from_dimensions(cls, width: int, height: int) -> Size:
        """Return the size for a width and height, or raise ValueError."""
        return cls(f"{width}x{height}")


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
    """What differs between the models: the Runware AIR id and the prompt-length rule."""

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

AIR_TO_MODEL: dict[str, ModelName] = {spec.air: name for name, spec in MODEL_SPECS.items()}

MAX_COUNT = 4
"""The largest `count` a Discord command offers (contract §5.3); Runware itself allows up to 20."""


class Period(StrEnum):
    """Budget periods; all reset at 00:00 UTC (weeks on Monday, months on the 1st)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
