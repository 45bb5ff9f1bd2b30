"""Runs of the fake Runbase: `pending` → `processing` → `succeeded` (an image served by URL) or `failed` (refunded).

Each run is moved along by a background task over the fake's `pending_seconds` and `processing_seconds` (captured at
creation). The price is deducted from the balance when the run is made and refunded in full when it fails; a failed
run's `costUsd` then reads 0 (the reference leaves it open and tells clients to count a failed run as $0).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from fakes.runbase.catalog import pixel_size
from fakes.runware.images import FORMATS, render_image

__all__ = ["Run", "RunStatus"]

RunStatus = Literal["pending", "processing", "succeeded", "failed"]


def iso(moment: dt.datetime) -> str:
    """Runbase's timestamp form: `2026-06-01T12:00:04.200Z`."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(slots=True)
class Run:
    """One run as the fake keeps it."""

    run_id: str
    key: str
    model: str
    inputs: dict[str, Any]
    price_micros: int
    created_at: dt.datetime
    status: RunStatus = "pending"
    refunded: bool = False
    completed_at: dt.datetime | None = None
    output_urls: list[str] = field(default_factory=list)
    error: Any = None
    """What a failed run reports as `error`: a string or `{message, code}`."""
    fail_with: Any = None
    """Set at creation when a `FAIL_RUN` fault hit the run: the `error` it will end with."""
    polls: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """The (width, height) of this run's result."""
        return pixel_size(self.model, self.inputs.get("aspect_ratio", "1:1"), self.inputs.get("resolution"))

    @property
    def cost_micros(self) -> int:
        """What `costUsd` reads now: the price, or 0 once the run failed and was refunded."""
        return 0 if self.refunded else self.price_micros

    def answer(self, *, created: bool = False) -> dict[str, Any]:
        """The JSON body of the create answer (`created`) or of `GET /runs/{id}`."""
        body: dict[str, Any] = {"id": self.run_id, "model": self.model, "status": self.status}
        body["costUsd"] = self.cost_micros
        if created:
            return body
        if self.status == "succeeded":
            body["output"] = {"urls": list(self.output_urls)}
        if self.status == "failed":
            body["error"] = self.error
        body["createdAt"] = iso(self.created_at)
        if self.completed_at is not None:
            body["completedAt"] = iso(self.completed_at)
        return body


async def advance(
    run: Run,
    *,
    pending_seconds: float,
    processing_seconds: float,
    output_format: str,
    file_url: str,
    store: dict[str, tuple[bytes, str]],
    on_refund: Any,
) -> None:
    """Move `run` through its states; a success renders and stores its image, a failure refunds."""
    await asyncio.sleep(pending_seconds)
    run.status = "processing"
    await asyncio.sleep(processing_seconds)
    if run.fail_with is not None:
        run.error = run.fail_with
        run.refunded = True
        on_refund(run)
        run.status = "failed"
    else:
        width, height = run.size
        _, extension, content_type = FORMATS[output_format]
        variant = sum(run.run_id.encode()) % 32
        data = await asyncio.to_thread(render_image, width, height, output_format, False, variant)
        name = f"{run.run_id}.{extension}"
        store[name] = (data, content_type)
        run.output_urls = [f"{file_url}/{name}"]
        run.status = "succeeded"
    run.completed_at = dt.datetime.now(dt.UTC)
