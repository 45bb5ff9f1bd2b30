"""The task book of the fake Runware: accepted imageInference runs, their progress, results and bills; uploads.

A task is accepted (validated, duplicate UUID refused or, with `reject_duplicate_uuids` off, run again), then
completes `latency` seconds later with its images finishing one by one, evenly spread over that time. Nothing runs in
the background: `advance` materialises whatever has finished by now whenever someone looks (a poll, a sync wait, an
inspection). `get_response` answers a poll cumulatively (every finished item so far, plus one `processing` item until
done). Each finished image is stored, priced and billed; a run's first billed image makes it a paid task.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.money import usd_to_micros
from bot.settings import PriceTable
from fakes.runware.faults import Fault, FaultQueue, TaskError, error_object
from fakes.runware.images import (
    FORMATS,
    VARIANTS,
    StoredImage,
    as_png,
    decode_image,
    render_image,
    render_photo,
    variant_of,
)
from fakes.runware.prices import image_cost
from fakes.runware.validation import InferenceSpec, is_uuid, validate_inference

__all__ = ["Knobs", "TaskBook", "TaskState"]


class Knobs(Protocol):
    """The fake's settings the task book reads when it uses them (tests change them at any time)."""

    latency: float
    cost_override: float | None
    reject_duplicate_uuids: bool
    task_errors_as_envelope: bool
    photo_like: bool
    prices: PriceTable
    flagged_words: set[str]

    @property
    def base_url(self) -> str:
        """The origin of image URLs."""
        ...


@dataclass(slots=True)
class TaskState:
    """The server-side state of one accepted imageInference task."""

    task_uuid: str
    request: dict[str, Any]
    spec: InferenceSpec
    submitted_at: float
    """`time.monotonic()` at acceptance."""
    latency: float
    """Seconds from acceptance to completion, captured at acceptance."""
    cost_override: float | None
    failure: dict[str, Any] | None = None
    """The error the task is scheduled to end with (injected fault)."""
    results: list[dict[str, Any]] = field(default_factory=list)
    """Finished result items so far, as sync delivery returns them (no `status` key)."""
    error: dict[str, Any] | None = None
    """The error object once the task has failed."""
    cost_micros: int = 0
    """What the finished images cost, in micro-dollars."""

    @property
    def status(self) -> Literal["processing", "success", "error"]:
        """Where the task stands: `processing` until every image is done or it failed."""
        if self.error is not None:
            return "error"
        if len(self.results) >= self.spec.number_results:
            return "success"
        return "processing"

    @property
    def done(self) -> bool:
        """True once the task succeeded or failed."""
        return self.status != "processing"

    @property
    def deadline(self) -> float:
        """`time.monotonic()` value at which the task is complete."""
        return self.submitted_at + self.latency


class TaskBook:
    """Every accepted task, stored image, paid run and micro-dollar of one fake Runware."""

    def __init__(self, knobs: Knobs, faults: FaultQueue) -> None:
        self._knobs = knobs
        self._faults = faults
        self.tasks: dict[str, TaskState] = {}
        """The latest run of each accepted imageInference taskUUID."""
        self._replaced: list[TaskState] = []
        """Earlier runs of a taskUUID submitted again while `reject_duplicate_uuids` is off; they still finish."""
        self.task_uuids: set[str] = set()
        """Every taskUUID accepted, imageInference and imageUpload alike."""
        self.images: dict[str, StoredImage] = {}
        self._paid: list[str] = []
        self._cost_micros = 0

    def reset(self) -> None:
        """Forget every task, image and bill."""
        self.tasks.clear()
        self._replaced.clear()
        self.task_uuids.clear()
        self.images.clear()
        self._paid.clear()
        self._cost_micros = 0

    @property
    def paid(self) -> list[str]:
        """TaskUUIDs of the runs billed so far, in order of first billing (call `advance_all` first)."""
        return list(self._paid)

    @property
    def cost_micros(self) -> int:
        """What every image finished so far cost, in micro-dollars (call `advance_all` first)."""
        return self._cost_micros

    # ---------------------------------------------------------------- imageInference

    def submit_inference(self, task: dict[str, Any]) -> TaskState:
        """Accept an imageInference task (or raise `TaskError`); a queued task fault decides how it ends."""
        knobs = self._knobs
        spec = validate_inference(task, self.images)
        task_uuid = str(task["taskUUID"])
        if task_uuid in self.task_uuids and (knobs.reject_duplicate_uuids or task_uuid not in self.tasks):
            raise TaskError("duplicateTaskUUID", f"A task with taskUUID {task_uuid} was already submitted.", "taskUUID")
        earlier = self.tasks.get(task_uuid)
        if earlier is not None:
            self._replaced.append(earlier)
        state = TaskState(
            task_uuid=task_uuid,
            request=task,
            spec=spec,
            submitted_at=time.monotonic(),
            latency=max(0.0, float(knobs.latency)),
            cost_override=knobs.cost_override,
        )
        fault = self._faults.take_for_task()
        if fault == Fault.CONTENT_POLICY:
            state.failure = error_object(
                "contentPolicyViolation",
                "The prompt was rejected by the provider's content policy.",
                parameter="positivePrompt",
                task_type="imageInference",
                task_uuid=task_uuid,
            )
        elif fault == Fault.TASK_TIMEOUT:
            state.failure = error_object(
                "timeoutProvider",
                "The provider did not finish the task in time.",
                task_type="imageInference",
                task_uuid=task_uuid,
            )
        self.task_uuids.add(task_uuid)
        self.tasks[task_uuid] = state
        return state

    def advance_all(self) -> None:
        """`advance` every run, replaced ones included."""
        for state in [*self._replaced, *self.tasks.values()]:
            self.advance(state)

    def advance(self, state: TaskState, *, force: bool = False) -> None:
        """Materialise whatever has finished by now; images finish one by one, evenly spread over the latency."""
        if state.done:
            return
        elapsed = time.monotonic() - state.submitted_at
        if state.failure is not None:
            if force or elapsed >= state.latency:
                state.error = state.failure
            return
        count = state.spec.number_results
        while len(state.results) < count:
            index = len(state.results)
            if not force and elapsed < state.latency * (index + 1) / count:
                break
            state.results.append(self._finish_image(state, index))

    def _finish_image(self, state: TaskState, index: int) -> dict[str, Any]:
        knobs = self._knobs
        spec = state.spec
        transparent = spec.background == "transparent"
        quality = spec.output_quality if spec.output_format != "PNG" else 95
        render = render_photo if knobs.photo_like else render_image
        data = render(spec.width, spec.height, spec.output_format, transparent, variant_of(spec.prompt, index), quality)
        _, extension, content_type = FORMATS[spec.output_format]
        image_uuid = str(uuid.uuid4())
        self.images[image_uuid] = StoredImage(data, content_type, extension)
        item: dict[str, Any] = {"taskType": "imageInference", "taskUUID": state.task_uuid, "imageUUID": image_uuid}
        if spec.output_type == "URL":
            item["imageURL"] = f"{knobs.base_url}/image/{image_uuid}.{extension}"
        elif spec.output_type == "base64Data":
            item["imageBase64Data"] = base64.b64encode(data).decode("ascii")
        else:
            item["imageDataURI"] = f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"
        if spec.check_content:
            prompt = spec.prompt.casefold()
            item["NSFWContent"] = any(word.casefold() in prompt for word in knobs.flagged_words)
        cost = image_cost(spec, knobs.prices, state.cost_override)
        if spec.include_cost:
            item["cost"] = cost
        micros = usd_to_micros(cost)
        state.cost_micros += micros
        self._cost_micros += micros
        if not state.results:  # the run's first billed image makes it a paid task
            self._paid.append(state.task_uuid)
        return item

    # ---------------------------------------------------------------- getResponse and imageUpload

    def get_response(self, task: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """Answer a poll: every finished item so far, plus a `processing` item until the run is done."""
        for key in task:
            if key not in ("taskType", "taskUUID"):
                raise TaskError("unknownParameter", f"Unknown parameter '{key}' for getResponse.", key)
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
        if not is_uuid(task_uuid):
            raise TaskError("invalidTaskUUID", "taskUUID must be a UUID.", "taskUUID")
        state = self.tasks.get(task_uuid)
        if state is None:
            raise TaskError("taskFailedOrNotFound", f"No task found with taskUUID {task_uuid}.")
        self.advance(state)
        if state.error is not None:
            if self._knobs.task_errors_as_envelope:
                return "errors", [state.error]
            item = {"taskType": "imageInference", "taskUUID": task_uuid, "status": "error", "error": state.error}
            return "data", [item]
        items = [{**result, "status": "success"} for result in state.results]
        if not state.done:
            items.append({"taskType": "imageInference", "taskUUID": task_uuid, "status": "processing"})
        return "data", items

    def upload(self, task: dict[str, Any]) -> dict[str, Any]:
        """Store an uploaded image (an URL gets a rendered stand-in) as PNG under a new imageUUID."""
        task_uuid = task.get("taskUUID")
        if task_uuid is None:
            raise TaskError("missingParameter", "Missing required parameter 'taskUUID'.", "taskUUID")
        if not is_uuid(task_uuid):
            raise TaskError("invalidTaskUUID", "taskUUID must be a UUID.", "taskUUID")
        for key in task:
            if key not in ("taskType", "taskUUID", "image"):
                raise TaskError("unknownParameter", f"Unknown parameter '{key}' for imageUpload.", key)
        image = task.get("image")
        if image is None:
            raise TaskError("missingParameter", "Missing required parameter 'image'.", "image")
        if not isinstance(image, str) or not image:
            raise TaskError("invalidImage", "image must be a URL, a data URI or base64 data.", "image")
        if task_uuid in self.task_uuids:
            raise TaskError("duplicateTaskUUID", f"A task with taskUUID {task_uuid} was already submitted.", "taskUUID")
        if image.startswith(("http://", "https://")):
            digest = int.from_bytes(hashlib.sha256(image.encode()).digest()[:4], "big")
            data = render_image(1024, 1024, "PNG", False, digest % VARIANTS)
        else:
            raw = decode_image(image)
            if raw is None:
                raise TaskError("invalidImage", "image is not a decodable image.", "image")
            data = as_png(raw)
        image_uuid = str(uuid.uuid4())
        self.images[image_uuid] = StoredImage(data, "image/png", "png")
        self.task_uuids.add(task_uuid)
        return {
            "taskType": "imageUpload",
            "taskUUID": task_uuid,
            "imageUUID": image_uuid,
            "imageURL": f"{self._knobs.base_url}/image/{image_uuid}.png",
        }
