"""Health and metrics: what the bot measures about itself, and the small HTTP server that shows it.

No `discord` and none of the project's other packages: the places that know (the job worker and admission, the
ledger, the Runware transport, the Discord wing) call the hooks of `bot.observability.metrics` and
`bot.observability.health`; the composition root (`bot.app`) installs a fresh `Metrics` and starts the server when
`ATELIER_METRICS_PORT` is set.

- `bot.observability.metrics` — `Metrics`: one Prometheus registry and its counters, gauges and histograms; the
  process's current instance (`current()`, `install()`).
- `bot.observability.health` — `Health`: gateway connected, provider reachable recently, the database pinged on
  demand; the verdict `/healthz` serves.
- `bot.observability.server` — `ObservabilityServer`: `/healthz` and `/metrics` with aiohttp on the bot's loop.
"""
