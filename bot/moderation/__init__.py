"""Moderation: the rules of moderated team channels, as plain values and services (no `discord` import).

- `errors`: the policy's refusals (not allowed in this channel or with these roles, a blocklisted prompt).
- `policy`: `Policy`, a server's channel and role rules and its blocklist: checked first in admission from an
  in-memory cache (`PolicyCache`, dropped on every change), changed with an audit row in the same transaction.
- `blocklist`: the matcher (`normalise`, `entry_key`, `Blocklist`): NFKC + case-fold, whole words and phrases
  with boundaries that hold for any script, one regular expression per server.
- `approvals`: the mod-log, moderators, approval and safety rules of a request's places (`ModerationRules`; the
  place rules cached per server like the policy, dropped on every change).

The Discord edge (`cogs`) shows these rules to admins and members; `bot.jobs` asks them before any money moves.
"""
