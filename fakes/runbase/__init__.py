"""A fake Runbase REST API on 127.0.0.1 for tests (shared/reference/runbase-api.md).

It speaks the documented protocol of `https://runbase.net/api/v1`: `POST /runs` and `GET /runs/{id}` with a bearer
key, runs moving `pending → processing → succeeded / failed` (a failure refunded), `costUsd` in integer micro-dollars,
real Pillow images of the requested aspect ratio and resolution served by URL, references fetched from `image_urls`
(4 MB and the model's count), every documented error with its status, and the rate limit of 20 requests per 10 s per
key over creates and polls together. Tests inject faults with `FakeRunbase.fail_next` (among them an answer dropped
after the run was made) and read what happened through `requests`, `creates`, `polls`, `runs`, `charges`,
`refunds`, `total_charged_micros`, `max_in_any_window` and `rate_limited`.

Modules:

- `server`: `FakeRunbase` (aiohttp app, lifecycle, keys, inspection, the endpoints and their checks), `RecordedRequest`
- `catalog`: the models, their inputs, reference limits and prices, and the pixel sizes of results
- `validation`: the checks of a create body and the fetching of references
- `runs`: `Run` and its progress through the states
- `accounts`: `KeyAccount` (a key's limits), `RateWindow` (the sliding window), `max_in_any_window`
- `faults`: `Fault`, the queue `fail_next` fills, the documented error codes and bodies
"""

from fakes.runbase.accounts import KeyAccount, RateWindow, max_in_any_window
from fakes.runbase.catalog import MODELS, ModelSpec, pixel_size
from fakes.runbase.faults import ERRORS, Fault
from fakes.runbase.runs import Run
from fakes.runbase.server import DEFAULT_API_KEY, FakeRunbase, RecordedRequest

__all__ = [
    "DEFAULT_API_KEY",
    "ERRORS",
    "MODELS",
    "FakeRunbase",
    "Fault",
    "KeyAccount",
    "ModelSpec",
    "RateWindow",
    "RecordedRequest",
    "Run",
    "max_in_any_window",
    "pixel_size",
]
