-- Schema version 8: approvals, safety quarantine and the mod-log (moderated team channels).
-- * `moderation_settings`: per server, the mod-log channel (NULL: logging off) and the moderator role (NULL: only
--   Manage Messages and Manage Server decide).
-- * `moderation_channels`: per channel or category, its approval rule (`approval_mode` NULL: no rule here, else
--   `off`, `over` with `approval_above` in micro-dollars, or `all`) and its safety rule (`safety` NULL: no rule here,
--   0 off, 1 on). A thread follows its parent channel, a channel its category: the first place with a rule wins.
-- * `moderation_holds`: one row per request held for a moderator (`kind` `approval`) or result quarantined
--   (`kind` `safety`), with where its mod-log message is and how it was decided (`decision` NULL: undecided).
--   A decision is taken by one UPDATE ... WHERE decision IS NULL, so two moderators clicking at once get one winner.
-- * `job_results.nsfw`: Runware's `NSFWContent` for the image (NULL: not checked), so a restart that delivers from
--   stored results still quarantines a flagged one.

CREATE TABLE moderation_settings (
    guild_id          INTEGER PRIMARY KEY,
    modlog_channel_id INTEGER,
    moderator_role_id INTEGER,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE moderation_channels (
    guild_id       INTEGER NOT NULL,
    channel_id     INTEGER NOT NULL,
    approval_mode  TEXT CHECK (approval_mode IN ('off', 'over', 'all')),
    approval_above INTEGER CHECK (approval_above >= 0),
    safety         INTEGER CHECK (safety IN (0, 1)),
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
) WITHOUT ROWID;

CREATE TABLE moderation_holds (
    job_id         TEXT    PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    guild_id       INTEGER NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('approval', 'safety')),
    channel_id     INTEGER,
    message_id     INTEGER,
    decision       TEXT CHECK (decision IN ('approved', 'rejected', 'expired')),
    decided_by     INTEGER,
    reason         TEXT,
    decided_at     INTEGER,
    created_at     INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE job_results ADD COLUMN nsfw INTEGER;
