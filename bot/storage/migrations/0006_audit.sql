-- Schema version 6: the audit trail of a server's settings and budgets (`/settings audit`).
-- One row per change: who (`actor_id`, NULL for the bot itself), which area (`budget`, `settings`, `moderation`),
-- which setting (a short name such as `period` or `role allowance <@&123>`), the value before and after as the
-- words an admin reads (NULL: not set), and when (Unix milliseconds, UTC). Rows are only ever inserted, in the same
-- transaction as the change they describe.

CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    actor_id   INTEGER,
    area       TEXT    NOT NULL,
    setting    TEXT    NOT NULL,
    before     TEXT,
    after      TEXT,
    created_at INTEGER NOT NULL
);

CREATE INDEX audit_log_recent ON audit_log (guild_id, id);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
