"""Runbase: a typed client for its REST API (contract: shared/reference/runbase-api.md), one image per run.

- `transport`: the one seam where every request goes, failures translated, the key scrubbed.
- `client`: `RunbaseClient`: create a run (never sent twice when its answer is lost), poll it through the limiter,
  download results, check the key without spending.
- `limiter`: `RunbaseLimiter`, one per key: at most 20 requests in any 10 s, shared fairly by creates and polls,
  adaptive poll cadence, backoff on 429.
- `models`: the create body and the run answers; `costUsd` read as exact integer micro-dollars.
- `errors`: the exception tree, on the categories of `bot.runware.errors` so both providers are handled alike.
"""
