"""Billing: what a generation may cost, who may spend it, and the ledger that holds the money.

- `pricing`: estimates from the config's price table, in integer micro-dollars.
- `budgets`: a server's budget rules (period, allowances, member overrides, cap) and what a member may spend.
- `ledger`: reserve → settle or release, grants and status, each one transaction; reconciliation after a crash.
- `checks`: the ledger's judgements inside its transaction (does a hold fit the allowance and the cap; the
  once-per-period 80% warning); `outcomes`: what the ledger's operations return.
- `pools`: team budgets per channel or category (`/budget channel`), checked in the ledger's reservation.
- `reports`: spend per member, model, channel and day, the CSV of every charge; `chart`: the daily-spend PNG
  (matplotlib, Agg).
- `operator`: how the start-up reconcile treats a terminal `generate`'s hold (kept while it may run, then settled).
- `inputs`: checks for amounts and ids an admin gives; `errors`: the billing refusals, carrying data.

Billing depends on `bot.storage` and `bot.settings` only; the job service calls it, never the other way.
"""
