"""Billing: what images cost and who may spend how much, in integer micro-dollars.

- `pricing`: pre-flight estimates from the config's price table.
- `budgets`: each server's budget rules (period, default and role allowances, member overrides, server cap).
- `ledger`: reserve before a generation, settle or release after, grant, status, and reconcile at start-up; money
  moves only through here, each operation one transaction (it creates the job row with its hold).
- `reports`: spend per member, model and day, and CSV export.
- `inputs`: checks for amounts, ids and job ids; `errors`: the billing errors.

Billing uses `bot.storage` (the ledger, budget and job queries), `bot.catalog`, `bot.clock`, `bot.money`,
`bot.errors` and `bot.settings`; it never imports `bot.jobs` or anything Discord.
"""
