"""Typed Runbase requests and answers (reference §2): a create body, and the run a create or a poll answers with.

`costUsd` is already integer micro-dollars (40000 = $0.04): it is read here as an exact integer, never a float; a
value that is not a whole number is refused as a malformed answer. A failed run counts as $0 (`charged_micros`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["GPT_IMAGE_MODELS", "CreateRun", "Run", "RunInput", "RunOutput", "RunStatus"]

RunStatus = Literal["pending", "processing", "succeeded", "failed"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed"})

GPT_IMAGE_MODELS = ("openai/gpt-image-1", "openai/gpt-image-1.5", "openai/gpt-image-2")
"""The Runbase model ids of the GPT Image family (reference §3)."""


class RunInput(BaseModel):
    """The `input` of a create: only the keys the reference lists; a key left as None is not sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field(min_length=1)
    aspect_ratio: str | None = None
    quality: str | None = None
    resolution: str | None = None
    image_urls: tuple[str, ...] | None = None

    def to_payload(self) -> dict[str, Any]:
        """Return the JSON object to send (keys left unset are omitted)."""
        payload = self.model_dump(exclude_none=True)
        if "image_urls" in payload:
            payload["image_urls"] = list(payload["image_urls"])
        return payload


class CreateRun(BaseModel):
    """A `POST /runs` body: one model, one input (one image per run)."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(min_length=1)
    input: RunInput

    def to_payload(self) -> dict[str, Any]:
        """Return the JSON body to send."""
        return {"model": self.model, "input": self.input.to_payload()}


class RunOutput(BaseModel):
    """The `output` of a succeeded run."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    urls: tuple[str, ...] = ()


class Run(BaseModel):
    """A run as a create or `GET /runs/{id}` answers it."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: str = Field(min_length=1)
    status: str
    """`pending`, `processing`, `succeeded` or `failed` (another word is kept, and read as still running)."""
    model: str | None = None
    cost_micros: int = Field(default=0, alias="costUsd", ge=0)
    """`costUsd`: integer micro-dollars, exactly as Runbase sent it."""
    output: RunOutput | None = None
    error: Any = None
    """Why a failed run failed: a string or `{message, code}` (its type is not documented)."""
    created_at: str | None = Field(default=None, alias="createdAt")
    completed_at: str | None = Field(default=None, alias="completedAt")

    @field_validator("cost_micros", mode="before")
    @classmethod
    def _whole_micros(cls, value: Any) -> Any:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("costUsd must be a whole number of micro-dollars")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"costUsd must be a whole number of micro-dollars, not {value!r}")
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.isdigit()):
                raise ValueError(f"costUsd must be a whole number of micro-dollars, not {value!r}")
            return int(text)
        return value

    @property
    def done(self) -> bool:
        """Whether the run has ended (succeeded or failed)."""
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        """Whether the run produced its image."""
        return self.status == "succeeded"

    @property
    def urls(self) -> tuple[str, ...]:
        """The result URLs (empty unless succeeded)."""
        return self.output.urls if self.output is not None else ()

    @property
    def charged_micros(self) -> int:
        """What the run costs the owner: `costUsd`, except a failed run, which Runbase refunds, counts as 0."""
        return 0 if self.status == "failed" else self.cost_micros
