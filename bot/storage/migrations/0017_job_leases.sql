-- Schema version 17: one job queue for every process on the database (issue 12; bot.storage.queue).
-- * `jobs.lease_owner`: the process (its `owner` id) running the job; NULL while nobody does.
-- * `jobs.lease_until` (Unix milliseconds, UTC): the owner's heartbeat renews it; once it has passed, any process may
--   claim the job (a `queued` or `submitted` one) and resume it by its stored task or run ids.
-- * `jobs.holds_slot`: 1 while the job holds a provider slot (claimed, its images not made yet); the global, per-member
--   and per-provider limits count these rows (with a live lease), so they hold across processes.
-- * `queue_turns`: per member, the turn of their last start (a counter); the member whose last start is oldest goes
--   next (the round-robin across members, shared by every process).

ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
ALTER TABLE jobs ADD COLUMN holds_slot INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_leased ON jobs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_slots ON jobs (member_id, provider) WHERE holds_slot = 1;

CREATE TABLE queue_turns (
    member_id INTEGER PRIMARY KEY,
    turn      INTEGER NOT NULL
);
