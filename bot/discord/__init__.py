"""The Discord wing: everything that speaks discord.py besides the cogs (which get what they need from `Services`).

- `client`: `AtelierBot` (builds the services through the composition root's factory, with itself as the delivery's
  client), `Services`, intents, extensions, command sync, where discord.py sends its requests.
- `intents`: reply editing: `[discord] reply_editing` (auto, true, false) and the application's flags decide the
  Message Content intent (`decide`); `ReplyEditingState` and its words; `check`'s look-up of the flags.
- `tree`: the command tree's one error handler; the sentences for domain errors (`user_sentence`, Discord markup
  such as a budget's reset time is written here), `defer_public`, `send_ephemeral`.
- `delivery`: `DiscordDelivery`, the job service's `Delivery` port: results, progress, failures, statuses, built by
  the composition root with a job look-up.
- `tokens`: interaction tokens: `TOKEN_LIFETIME`, `TOKEN_MARGIN`, `delivery_target`, editing an original response,
  refused (dead) tokens.
- `handover`: a status on show is handed over to the channel before its token stops being used.
- `posting`: channel replies, permission checks and their sentences, uploads, reply references, message links.
- `locks`: one job's message is edited by one task at a time, never after its last word.
- `statuses`: the words of a job's status (queued, running, posting, handed over, cancelled, failed).
- `embeds`: every embed the bot shows, a result's card among them.
- `views`: the persistent buttons (dynamic items), the confirmation store and the change modal.
- `modlog`: `DiscordModLog`, the job service's `ModLog` port: the mod-log's cards, its permission check.
- `modlog_views`: the mod-log's buttons (Approve, Reject, Delete), the reason modal, who may decide.

Imports run one way: `delivery` → `handover` → `tokens` → `posting` → `views` → `tree`; `client` → `delivery`,
`intents`.
"""
