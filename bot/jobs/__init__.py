"""Jobs: requests as plain values, a fair durable queue, and the service that runs generations end to end.

- `requests`: `GenerationRequest`, `ReferenceSource`, `DeliveryTarget`, `resolve_defaults`.
- `delivery`: the `Delivery` port the Discord cogs implement, `ResultSummary`, `DeliveryError`.
- `scheduler`: round-robin across members under a global and a per-member concurrency limit.
- `service`: `GenerationService` (admit, cancel, queue, resume, reroll, edit); its module docstring holds the
  crash-point table.
- `state`: the job states of contract §2.
- `errors`: the service's refusals (`JobNotFoundError`, `JobNotCancellableError`, `ServiceNotReadyError`).
"""
