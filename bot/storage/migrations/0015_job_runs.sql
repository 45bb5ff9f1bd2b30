-- Schema version 15: Runbase runs, one row per image of a job (`job_runs`).
-- Runbase has no idempotency key and no way to list runs, so the row is written in state `creating` *before* the
-- create is sent and gets the run id once Runbase answered. A row found `creating` after a restart is a create whose
-- answer never arrived: it is marked `lost` and never sent again (the owner may have paid for it; the job is
-- charged the estimate's share for it). States: creating, created, succeeded, failed, lost, abandoned (a run the bot
-- stopped waiting for: it may still finish and be paid).
-- `cost`: micro-dollars, Runbase's `costUsd` as answered (for a lost run: what the job is charged for it).

CREATE TABLE job_runs (
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    state       TEXT    NOT NULL,
    run_id      TEXT    UNIQUE,
    cost        INTEGER CHECK (cost BETWEEN 0 AND 1000000000000),
    url         TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
