"""The Discord extensions (loaded by `bot.discord.client.EXTENSIONS`) and the helpers they share.

Extensions (each has a top-level `setup()`; none imports another):
- `account`: `/balance` and `/queue`;
- `budget`: `/budget …` (admins);
- `settings`: `/settings …` (admins);
- `generation`: `/imagine`, `/edit`, Edit image, reply editing and the buttons of Atelier's messages, through one
  request flow (a package: `flow`, `answers`, `imagine`, `edit`, `references`).

Helpers (no `setup()`): `_checks` (checks the cogs run themselves), `_context` (the bot's services, a member's role
ids), `_admin` (the log line of an admin's change), `_options` (option types, choices and parsers).
"""
