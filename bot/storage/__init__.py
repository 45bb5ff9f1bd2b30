"""Storage: the SQLite file and every query on it, one module per table group.

- `database`: `Database` (one connection, WAL, atomic units of work via `run()`, group commit) and `Repository`,
  the generic async face of a query class.
- `migrate`: the numbered SQL migrations in `migrations/`, applied in one transaction on open.
- `backup`: consistent copies through SQLite's online backup API (`atelier backup PATH`, and the copy of an existing
  file taken before a migration).
- `rows`: the row types and job states (a leaf: every package may import it without importing the queries).
- `jobs`: `jobs` and `job_results` (`JobQueries`; `JobRepository` for the job service and the cogs).
- `runs`: `job_runs`, a Runbase job's runs, stored before each create (`RunQueries`; `RunRepository` for the
  Runbase provider).
- `ledger`: the append-only `ledger`, its daily totals (member, server, pool), and the spend report's queries
  (`LedgerQueries`, `ReportQueries`; used inside `bot.billing` transactions only).
- `servers`: a server's budget settings, role and member rules, and generation options (`GuildSettingsQueries`,
  `BudgetRuleQueries`, `ServerOptionsQueries`; `ServerOptionsRepository` for `bot.jobs.options`).
- `meta`: the `meta` key/value table (`MetaQueries`; `MetaRepository` for the Discord client).
- `policy`: a server's channel and role rules and its blocklist (`PolicyQueries`, composed with the audit row in
  one transaction by `bot.moderation.policy`).
- `pools`: team pools per channel or category, the pools each hold counts against (`hold_pools`) and the
  once-per-period allowance warnings (`PoolQueries`, used inside `bot.billing` transactions).
- `audit`: the append-only `audit_log` of settings and budget changes (`AuditQueries`, written in the change's own
  transaction; `AuditRepository` for `/settings audit`).
- `moderation`: the mod-log and moderator role, place rules, and held requests with their one decision
  (`ModerationQueries`, `ModerationRepository`).
- `queue`: the job queue every process on the database shares (`QueueQueries`: claims under a lease, heartbeats,
  slots counted in the database, fairness) and `notify`, a NOTIFY sent in a unit's transaction.
- `notify`: `NotifyBus`, the one LISTEN connection per process that hands each NOTIFY to its subscribers.

Each query is written once, as a method of a `*Queries` class working on a connection inside `Database.run()`, so
that a service can compose several in one transaction (the ledger checks a budget, writes a hold and creates the job
row together). A `*Repository` exists only where production code makes such calls one at a time, and its methods
delegate to a query method. Storage imports nothing from the service packages (`bot.jobs`, `bot.billing`,
`bot.discord`, `cogs`): only `bot.catalog` and `bot.clock`.
"""
