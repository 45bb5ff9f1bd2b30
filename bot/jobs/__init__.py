"""Jobs: requests as plain values, a fair durable queue, and the service that runs generations end to end.

- `service`: `GenerationService`, the facade the cogs and the composition root see (admit, reroll, edit, look-ups,
  cancel, resume, stop); it delegates to the modules below.
- `admission`: validation, de-duplication, estimate, confirmation, then reserve + store + queue (`Admission`);
  requests built from a stored job (reroll, edit).
- `references`: fetch, check, normalise and upload reference images (on the composition root's HTTP session); for
  Runbase, the Discord URLs checked against its limits.
- `worker`: run a job on its provider (`bot.providers`), post its result through `Delivery`, settle or release;
  cancel (`CancelResult`).
- `failover`: a queued job whose provider certainly did not take its work moves to its model's next route, within
  the budget (`Ledger.refit`); never after an unknown outcome.
- `unsure`: a job that made no image but may have cost the owner money: charged, failed, everyone told.
- `resume`: what a start does about unfinished jobs (`ResumeReport`); holds the crash-point table.
- `progress`: throttled progress edits.
- `tracking`: in-process bookkeeping of unfinished jobs (phase, times), shared by the modules above.
- `requests`: `GenerationRequest`, `ReferenceSource`, `DeliveryTarget`, `request_from_job`.
- `options`: `ServerOptions`, a server's own defaults and limits over the config's.
- `delivery`: the `Delivery` port the Discord wing implements, `ResultSummary`, `DeliveryError`.
- `modlog`: the `ModLog` port the Discord wing implements (held requests, quarantined results, log lines).
- `approvals`: held requests and quarantined results: post, approve / reject / expire atomically, publish, discard.
- `scheduler`: round-robin across members under a global and a per-member concurrency limit (`Scheduler`, one
  process), and `JobScheduler`, the face every scheduler offers.
- `shared`: `SharedScheduler`, the one queue of every process on a PostgreSQL database (claims, leases, NOTIFY
  wake-ups, cross-process cancel), and `share_caches`, the settings NOTIFY that drops cached server rows.
- `errors`: the service's refusals (`JobNotFoundError`, `JobNotCancellableError`, `ServiceNotReadyError`).
"""
