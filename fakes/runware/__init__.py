"""A fake Runware REST API on 127.0.0.1 for tests and benchmarks (shared/reference/runware-api.md §1-7).

It speaks the same protocol as `https://api.runware.ai/v1`: a JSON array of tasks per POST, bearer authentication,
`{"data": [...]}` / `{"errors": [...]}` envelopes, sync and async delivery with cumulative `getResponse` polling,
`imageUpload`, and the GPT Image validation rules. Outputs are real Pillow images of the requested size and format,
served from the same app. Tests inject faults with `FakeRunware.fail_next` and inspect what the client sent through
`requests`, `tasks_submitted`, `submissions_of`, `polls_of`, `paid_tasks` and `total_cost_micros`; `drain` waits for the
requests that `REGISTER_LATE` holds. `python -m fakes.runware --port 0 --latency 0.5` serves it standalone.

Modules:

- `server`: `FakeRunware` (aiohttp app, lifecycle, inspection, the `/v1` endpoint and its envelopes), `RecordedRequest`
- `tasks`: `TaskBook` and `TaskState` (accepted runs, progress over the latency, getResponse, imageUpload, billing)
- `validation`: `validate_inference` and `InferenceSpec` (GPT Image's parameter rules and error codes)
- `faults`: `Fault`, the queue `fail_next` fills, and every error object and error answer
- `prices`: the cost of one image (price table, GPT Image 1.5 surcharge, `cost_override`)
- `images`: `render_image`, `render_photo`, decoding uploads and references
- `admin`: the `/_fake/...` control surface; `standalone` and `__main__`: the process of its own
"""

from fakes.runware.faults import Fault
from fakes.runware.images import PHOTO_VARIANTS, StoredImage, render_image, render_photo
from fakes.runware.server import DEFAULT_API_KEY, FakeRunware, RecordedRequest
from fakes.runware.standalone import main
from fakes.runware.tasks import TaskState
from fakes.runware.validation import InferenceSpec

__all__ = [
    "DEFAULT_API_KEY",
    "PHOTO_VARIANTS",
    "FakeRunware",
    "Fault",
    "InferenceSpec",
    "RecordedRequest",
    "StoredImage",
    "TaskState",
    "main",
    "render_image",
    "render_photo",
]
