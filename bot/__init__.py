"""Atelier: a Discord bot for GPT Image generations on Runware with per-member spend budgets.

The packages, from the leaves up (`docs/architecture.md` has the whole map and what each may import):
- leaves: `catalog` (the product's vocabulary), `clock`, `money` (integer micro-dollars), `errors`, `exit_codes`,
  `log`;
- `settings`: the typed configuration (environment, `.env`, the TOML file);
- `storage`: SQLite, one module per table group; `images`: decoding and fitting; `runware`: the provider's client;
- `billing`: prices, budgets, the ledger; `jobs`: from a request to a settled job, behind `GenerationService`;
- `discord`: the Discord wing (client, command tree, delivery, embeds, views), the only package here that imports
  discord.py (the cogs in `cogs/` are the other edge);
- `app`: the composition root; `cli`: the command line (`python -m bot`).
"""

__version__ = "0.1.0"
