-- Schema version 7: where and who may generate, and the words a prompt may not contain (`/settings channels`,
-- `/settings roles`, `/settings blocklist`).
-- * access_rules: one row per channel (or category, or thread) and per role an admin allowed or denied. `kind` is
--   'channel' or 'role', `allowed` 1 (on the allow-list) or 0 (denied). A request's channel, then its parent channel,
--   then its category are looked up in that order: the first with a rule decides; with no rule there, the request is
--   allowed only if the server allows no channel at all (an empty allow-list means everywhere). Roles: a member with a
--   denied role is refused; otherwise, when roles are allowed, the member needs one of them.
-- * blocklist: one row per entry, `entry` as the admin wrote it and `normalised` (NFKC, case-folded, gaps collapsed
--   to one space) as the matcher compares it, unique per server.
-- Who changed what is in `audit_log`, written in the same transaction.

CREATE TABLE access_rules (
    guild_id   INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('channel', 'role')),
    target_id  INTEGER NOT NULL,
    allowed    INTEGER NOT NULL CHECK (allowed IN (0, 1)),
    updated_at INTEGER NOT NULL,
    updated_by INTEGER,
    PRIMARY KEY (guild_id, kind, target_id)
) WITHOUT ROWID;

CREATE TABLE blocklist (
    guild_id   INTEGER NOT NULL,
    normalised TEXT    NOT NULL,
    entry      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by INTEGER,
    PRIMARY KEY (guild_id, normalised)
) WITHOUT ROWID;
