-- Atelier schema version 1: key/value meta, per-server budget settings and rules, jobs, and the append-only ledger.
-- Times are integer Unix milliseconds (UTC). Money is integer micro-dollars (1 USD = 1,000,000); 1e12 is the
-- largest amount accepted anywhere (bot/billing/money.py MAX_AMOUNT_MICROS).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- A server's budget settings. No row means "use the config file's [budget]"; the first change copies those values in.
CREATE TABLE guild_settings (
    guild_id          INTEGER PRIMARY KEY,
    period            TEXT    NOT NULL CHECK (period IN ('day', 'week', 'month')),
    default_allowance INTEGER NOT NULL CHECK (default_allowance BETWEEN 0 AND 1000000000000),
    server_cap        INTEGER CHECK (server_cap BETWEEN 0 AND 1000000000000),
    updated_at        INTEGER NOT NULL,
    updated_by        INTEGER
);

CREATE TABLE role_allowances (
    guild_id   INTEGER NOT NULL,
    role_id    INTEGER NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount BETWEEN 0 AND 1000000000000),
    updated_at INTEGER NOT NULL,
    updated_by INTEGER,
    PRIMARY KEY (guild_id, role_id)
) WITHOUT ROWID;

CREATE TABLE member_overrides (
    guild_id   INTEGER NOT NULL,
    member_id  INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('amount', 'unlimited', 'blocked')),
    amount     INTEGER CHECK (amount BETWEEN 0 AND 1000000000000),
    updated_at INTEGER NOT NULL,
    updated_by INTEGER,
    PRIMARY KEY (guild_id, member_id),
    CHECK ((kind = 'amount') = (amount IS NOT NULL))
) WITHOUT ROWID;

CREATE TABLE jobs (
    id                     TEXT    PRIMARY KEY,
    state                  TEXT    NOT NULL CHECK (state IN ('awaiting_approval', 'queued', 'submitted', 'succeeded',
                                                             'failed', 'cancelled', 'rejected')),
    guild_id               INTEGER,
    channel_id             INTEGER,
    member_id              INTEGER NOT NULL,
    model                  TEXT    NOT NULL,
    size                   TEXT    NOT NULL,
    quality                TEXT    NOT NULL,
    background             TEXT    NOT NULL,
    format                 TEXT    NOT NULL,
    count                  INTEGER NOT NULL CHECK (count BETWEEN 1 AND 20),
    prompt                 TEXT    NOT NULL,
    extras                 TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(extras)),
    parent_job_id          TEXT    REFERENCES jobs (id) ON DELETE SET NULL,
    estimate               INTEGER NOT NULL CHECK (estimate BETWEEN 0 AND 1000000000000),
    cost                   INTEGER CHECK (cost BETWEEN 0 AND 1000000000000),
    task_uuid              TEXT    UNIQUE,
    error                  TEXT,
    interaction_token      TEXT,
    interaction_expires_at INTEGER,
    result_message_id      INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    finished_at            INTEGER,
    delivered_at           INTEGER
);

CREATE INDEX jobs_unfinished ON jobs (created_at) WHERE state IN ('awaiting_approval', 'queued', 'submitted');
CREATE INDEX jobs_member_recent ON jobs (guild_id, member_id, created_at);
CREATE INDEX jobs_parent ON jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;

-- The money ledger. Rows are only ever inserted; the operations are the kinds:
--   hold     amount = the estimate, reserved until the job is settled or released;
--   settle   amount = the actual cost (spent); `released` = the part of the hold it ends (the estimate, or 0 if the
--            hold had already been released); `overrun` = the part of the cost no hold covered;
--   release  amount = released = the estimate, ended without a charge;
--   grant    amount = an addition (+) or deduction (-) for the member's current period, with a reason.
-- spent = sum(settle.amount); reserved = sum(hold.amount) - sum(released); granted = sum(grant.amount).
-- Per job there is at most one row of each kind (the unique index is the idempotency key that makes settle and
-- release safe to repeat). `job_id` has no foreign key on purpose: a hold may be written before its job row, and
-- must outlive a deleted job. `effective_at` decides which budget period a row counts in: a job's settle and release
-- rows carry its hold's instant, so a job is charged to the period its reservation was checked against.
CREATE TABLE ledger (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    member_id    INTEGER NOT NULL,
    job_id       TEXT,
    kind         TEXT    NOT NULL CHECK (kind IN ('hold', 'settle', 'release', 'grant')),
    amount       INTEGER NOT NULL,
    released     INTEGER NOT NULL DEFAULT 0 CHECK (released BETWEEN 0 AND 1000000000000),
    overrun      INTEGER NOT NULL DEFAULT 0 CHECK (overrun BETWEEN 0 AND amount OR overrun = 0),
    reason       TEXT,
    actor_id     INTEGER,
    effective_at INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    CHECK ((kind = 'grant') = (job_id IS NULL)),
    CHECK (CASE kind
               WHEN 'hold'    THEN amount BETWEEN 0 AND 1000000000000 AND released = 0 AND overrun = 0
               WHEN 'settle'  THEN amount BETWEEN 0 AND 1000000000000
               WHEN 'release' THEN amount = released AND overrun = 0
               ELSE amount BETWEEN -1000000000000 AND 1000000000000 AND amount <> 0 AND released = 0
                    AND overrun = 0
           END)
);

CREATE UNIQUE INDEX ledger_job_kind ON ledger (job_id, kind) WHERE job_id IS NOT NULL;
CREATE INDEX ledger_grants ON ledger (guild_id, member_id, effective_at) WHERE kind = 'grant';

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;
