"""The Discord wing: everything that speaks discord.py besides the cogs.

- `client`: `AtelierBot`, intents, extensions, command sync, where discord.py sends its requests.
- `tree`: the command tree's one error handler, `defer_public`, `send_ephemeral`.
- `delivery`: `DiscordDelivery`, the job service's way to post statuses and results.
- `embeds`: every embed the bot shows.
- `views`: the persistent buttons (dynamic items), the confirmation store and the change modal.
"""
