"""Typed models of Runware's `imageInference` task for the GPT Image models, and of what comes back.

The request side is strict: `ImageInferenceRequest` enforces the models' rules (sizes, prompt length, reference
count, transparency needs PNG/WEBP) when it is built, so a bad request is refused before any money moves, with an
`ImageRequestError` that names the field. The response side is loose: wire items keep unknown fields and a
free-form error `code`, because Runware adds fields and codes over time. Money crosses this boundary exactly once:
a result's float `cost` becomes integer micro-dollars through `Decimal(str(cost))`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from bot.catalog import AIR_TO_MODEL, MAX_COUNT, MODEL_SPECS, Background, ModelName, OutputFormat, Quality, Size
from bot.errors import InvalidRequestError
from bot.money import MoneyError, usd_to_micros

log = logging.getLogger(__name__)


class ImageRequestError(InvalidRequestError):
    """A generation request breaks a model rule; raised before anything is sent. `field` names the option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field

    @classmethod
    def from_validation_error(cls, exc: ValidationError) -> ImageRequestError:
        """Turn pydantic's report into one clear sentence about the first problem."""
        return cls.from_details(exc.errors()[0])

    @classmethod
    def from_details(cls, error: ErrorDetails) -> ImageRequestError:
        """Build the error for one pydantic error entry, prefixed with the option it concerns."""
        field = str(error["loc"][0]) if error["loc"] else "request"
        label = _FIELD_LABELS.get(field, field)
        message = error["msg"].removeprefix("Value error, ")
        return cls(field, f"{label}: {message[:1].lower()}{message[1:]}")


class OutputType(StrEnum):
    """How Runware returns each image: a URL to download, raw base64, or a data URI."""

    URL = "URL"
    BASE64 = "base64Data"
    DATA_URI = "dataURI"


_FIELD_LABELS = {
    "model": "model",
    "prompt": "prompt",
    "size": "size",
    "quality": "quality",
    "background": "background",
    "count": "count",
    "format": "format",
    "reference_images": "reference images",
    "output_quality": "output quality",
    "output_type": "output type",
}
_FORMAT_ALIASES = {"jpeg": OutputFormat.JPG}


def _choices(values: Iterable[str]) -> str:
    items = list(values)
    return ", ".join(items[:-1]) + f" or {items[-1]}" if len(items) > 1 else items[0]


class ImageInferenceRequest(BaseModel):
    """One `imageInference` task for a GPT Image model, validated against the model's rules when it is built.

    Construct it with plain values (strings are accepted for the enums, and an AIR id such as `openai:1@2` for the
    model). Any rule broken raises `ImageRequestError` (an `InvalidRequestError`), never a bare pydantic error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelName
    prompt: str
    size: Size = Size.SQUARE
    quality: Quality = Quality.AUTO
    background: Background = Background.AUTO
    count: int = Field(default=1, ge=1, le=MAX_COUNT)
    format: OutputFormat = OutputFormat.PNG
    reference_images: tuple[str, ...] = ()
    output_quality: int = Field(default=95, ge=20, le=99)
    output_type: OutputType = OutputType.URL
    check_content: bool = False
    """Ask Runware to check the output (`safety.checkContent`); each result then says whether it was flagged."""

    if not TYPE_CHECKING:
        # Kept out of the type checker's view so the pydantic plugin still types the keyword arguments.
        def __init__(self, **data: Any) -> None:
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise ImageRequestError.from_validation_error(exc) from None

    @field_validator("model", mode="before")
    @classmethod
    def _known_model(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, ModelName):
            text = value.strip()
            if text in AIR_TO_MODEL:
                return AIR_TO_MODEL[text]
            if text.lower() not in {name.value for name in MODEL_SPECS}:
                raise ImageRequestError("model", f"unknown model {value!r}; choose {_choices(MODEL_SPECS)}")
            return ModelName(text.lower())
        return value

    @field_validator("size", mode="before")
    @classmethod
    def _offered_size(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, Size):
            text = value.strip().lower().replace("×", "x")
            if text not in {size.value for size in Size}:
                raise ImageRequestError("size", f"size {value!r} is not offered; choose {_choices(Size)}")
            return Size(text)
        return value

    @field_validator("quality", "background", mode="before")
    @classmethod
    def _enum_choice(cls, value: Any, info: Any) -> Any:
        enum: type[StrEnum] = Quality if info.field_name == "quality" else Background
        if isinstance(value, str) and not isinstance(value, enum):
            text = value.strip().lower()
            if text not in {member.value for member in enum}:
                raise ImageRequestError(
                    info.field_name, f"{info.field_name} {value!r} is not offered; choose {_choices(enum)}"
                )
            return enum(text)
        return value

    @field_validator("format", mode="before")
    @classmethod
    def _format_choice(cls, value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, OutputFormat):
            text = value.strip().lower().lstrip(".")
            if text in _FORMAT_ALIASES:
                return _FORMAT_ALIASES[text]
            if text not in {member.value for member in OutputFormat}:
                raise ImageRequestError("format", f"format {value!r} is not offered; choose {_choices(OutputFormat)}")
            return OutputFormat(text)
        return value

    @field_validator("count", mode="before")
    @classmethod
    def _count_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= MAX_COUNT:
            raise ImageRequestError("count", f"count must be between 1 and {MAX_COUNT} (got {value})")
        return value

    @field_validator("reference_images", mode="before")
    @classmethod
    def _reference_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ImageRequestError(
                "reference_images", "reference images must be a list of image UUIDs, URLs or data URIs"
            )
        if isinstance(value, Iterable):
            items = list(value)
            for item in items:
                if not isinstance(item, str) or not item.strip():
                    raise ImageRequestError(
                        "reference_images", "each reference image must be a non-empty image UUID, URL or data URI"
                    )
            return tuple(items)
        return value

    @model_validator(mode="after")
    def _model_rules(self) -> ImageInferenceRequest:
        if self.model not in MODEL_SPECS:
            raise ImageRequestError(
                "model", f"{self.model.label} is not served by Runware; choose {_choices(MODEL_SPECS)}"
            )
        spec = MODEL_SPECS[self.model]
        if not self.prompt.strip():
            raise ImageRequestError("prompt", "the prompt is empty; describe the image you want")
        if len(self.prompt) < spec.min_prompt_chars:
            raise ImageRequestError(
                "prompt", f"{spec.label} needs a prompt of at least {spec.min_prompt_chars} characters"
            )
        if len(self.prompt) > spec.max_prompt_chars:
            raise ImageRequestError(
                "prompt",
                f"the prompt has {len(self.prompt):,} characters; {spec.label} accepts at most "
                f"{spec.max_prompt_chars:,}",
            )
        if len(self.reference_images) > spec.max_reference_images:
            raise ImageRequestError(
                "reference_images",
                f"{len(self.reference_images)} reference images given; {spec.label} accepts at most "
                f"{spec.max_reference_images}",
            )
        if self.background is Background.TRANSPARENT and self.format is OutputFormat.JPG:
            raise ImageRequestError(
                "format",
                "a transparent background needs png or webp output (jpg has no alpha channel); "
                "choose format png or webp, or another background",
            )
        return self

    @property
    def air(self) -> str:
        """The Runware AIR id of the model (`openai:1@2`, ...)."""
        return MODEL_SPECS[self.model].air

    def to_payload(self, task_uuid: str) -> dict[str, Any]:
        """Serialise to the task object Runware expects on the wire (async delivery, cost always included)."""
        payload: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": task_uuid,
            "model": self.air,
            "positivePrompt": self.prompt,
            "width": self.size.width,
            "height": self.size.height,
            "numberResults": self.count,
            "outputType": self.output_type.value,
            "outputFormat": self.format.runware,
            "outputQuality": self.output_quality,
            "includeCost": True,
            "deliveryMethod": "async",
            "providerSettings": {"openai": {"quality": self.quality.value, "background": self.background.value}},
        }
        if self.check_content:
            payload["safety"] = {"checkContent": True}
        if self.reference_images:
            payload["inputs"] = {"referenceImages": list(self.reference_images)}
        return payload


class WireError(BaseModel):
    """One error object as Runware sends it; the code is free-form and unknown fields are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    code: str = ""
    message: str = ""
    parameter: str | list[str] | None = None
    task_type: str | None = Field(default=None, alias="taskType")
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    documentation: str | None = None


class WireItem(BaseModel):
    """One item of a response's `data` array: an ACK, a result, a progress marker or a failed generation."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    task_type: str | None = Field(default=None, alias="taskType")
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    status: str | None = None
    image_uuid: str | None = Field(default=None, alias="imageUUID")
    image_url: str | None = Field(default=None, alias="imageURL")
    image_base64_data: str | None = Field(default=None, alias="imageBase64Data")
    image_data_uri: str | None = Field(default=None, alias="imageDataURI")
    cost: Any = None  # dollars as Runware sent them; `cost_to_micros` converts (or, if unusable, drops) them once
    seed: int | None = None
    nsfw_content: bool | None = Field(default=None, alias="NSFWContent")
    result_index: int | None = Field(default=None, alias="resultIndex")
    error: WireError | None = None

    @field_validator("error", mode="before")
    @classmethod
    def _error_text(cls, value: Any) -> Any:
        # Some envelopes carry the error as a bare string; keep it as the message.
        return {"message": value} if isinstance(value, str) else value

    @property
    def failed(self) -> bool:
        """True for a generation that ended in an error."""
        return (self.status or "").lower() in ("error", "failed") or self.error is not None

    @property
    def is_image(self) -> bool:
        """True for a finished image: it has an image UUID and some form of the image, and did not fail."""
        has_image = bool(self.image_url or self.image_base64_data or self.image_data_uri)
        return bool(self.image_uuid) and has_image and not self.failed

    @property
    def pending(self) -> bool:
        """True for an item that says the generation is still running (`processing`, `queued`, `pending`, ...)."""
        status = (self.status or "").lower()
        return bool(status) and status not in ("success", "error", "failed") and not self.is_image


def parse_items(data: Any) -> list[WireItem]:
    """Parse a `data` value (a list, a single object, or nothing) into wire items; non-objects are skipped."""
    raw = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return [WireItem.model_validate(item) for item in raw if isinstance(item, dict)]


def cost_to_micros(cost: object) -> int | None:
    """Convert Runware's dollar `cost` to micro-dollars once, exactly, through `Decimal(str(cost))`.

    A cost that is not a non-negative amount is treated as not reported (None, logged): the image it came with was
    still produced and paid for, so it is kept; the caller then charges from the estimate instead.
    """
    if cost is None or isinstance(cost, bool):
        return None
    micros: int | None
    try:
        micros = usd_to_micros(Decimal(str(cost)))
    except (InvalidOperation, MoneyError):
        micros = None
    if micros is None or micros < 0:
        log.warning("Runware reported an unusable cost %r; treating it as not reported", cost)
        return None
    return micros


class ImageResult(BaseModel):
    """One generated image: where to get it, and what Runware charged for it in micro-dollars (if reported)."""

    model_config = ConfigDict(frozen=True)

    task_uuid: str
    image_uuid: str
    url: str | None = None
    base64_data: str | None = None
    data_uri: str | None = None
    cost_micros: int | None = None
    seed: int | None = None
    nsfw: bool | None = None

    @classmethod
    def from_wire(cls, item: WireItem, *, task_uuid: str | None = None) -> ImageResult:
        """Build a result from a successful wire item (see `WireItem.is_image`)."""
        uuid = item.task_uuid or task_uuid
        if not uuid or not item.image_uuid:
            raise ValueError("a result item needs taskUUID and imageUUID")
        return cls(
            task_uuid=uuid,
            image_uuid=item.image_uuid,
            url=item.image_url,
            base64_data=item.image_base64_data,
            data_uri=item.image_data_uri,
            cost_micros=cost_to_micros(item.cost),
            seed=item.seed,
            nsfw=item.nsfw_content,
        )

    def inline_bytes(self) -> bytes | None:
        """Return the image bytes when Runware sent them inline (base64 or data URI); None when there is only a URL."""
        encoded = self.base64_data
        if encoded is None and self.data_uri is not None:
            _, _, encoded = self.data_uri.partition(",")
        if encoded is None:
            return None
        try:
            return base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            return None


def image_results(items: Iterable[WireItem], *, task_uuid: str | None = None) -> list[ImageResult]:
    """Return the finished images among `items` (for `task_uuid` if given), de-duplicated by image UUID."""
    seen: dict[str, ImageResult] = {}
    for item in items:
        if not item.is_image:
            continue
        if task_uuid is not None and item.task_uuid not in (None, task_uuid):
            continue
        result = ImageResult.from_wire(item, task_uuid=task_uuid)
        seen.setdefault(result.image_uuid, result)
    return list(seen.values())


def total_cost_micros(images: Sequence[ImageResult]) -> int | None:
    """Return the sum of the reported costs, or None unless Runware reported a cost for every image.

    A partial sum would under-charge: the caller prices the images from its estimate instead.
    """
    costs = [image.cost_micros for image in images]
    if not costs or any(cost is None for cost in costs):
        return None
    return sum(cost for cost in costs if cost is not None)


class GenerationResult(BaseModel):
    """The outcome of one finished task: its UUID, its images, and the total cost Runware reported."""

    model_config = ConfigDict(frozen=True)

    task_uuid: str
    images: tuple[ImageResult, ...]
    cost_micros: int | None


class UploadedImage(BaseModel):
    """An image stored on Runware by `imageUpload`; the UUID can be used as a reference image."""

    model_config = ConfigDict(frozen=True)

    image_uuid: str
    image_url: str | None = None
