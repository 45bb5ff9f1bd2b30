"""Moderation: the rules of moderated team channels, as plain values and services (no `discord` import).

- `errors`: the policy's refusals (not allowed in this channel or with these roles, a blocklisted prompt).

The Discord edge (`cogs`) shows these rules to admins and members; `bot.jobs` asks them before any money moves.
"""
