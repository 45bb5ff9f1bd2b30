"""Moderation: the rules of moderated team channels, as plain values and services (no `discord` import).

- `errors`: the policy's refusals (not allowed in this channel or with these roles, a blocklisted prompt).
- `approvals`: the mod-log, moderators, approval and safety rules of a request's places (`ModerationRules`).

The Discord edge (`cogs`) shows these rules to admins and members; `bot.jobs` asks them before any money moves.
"""
