-- Schema version 18: indexes for lookups that read whole tables (issue 14): the ledger rows of one job, and the two
-- sweeps that run every minute.
-- Since version 16 the only index on `job_id` is partial (`kind <> 'adjust'`), which a lookup by job alone cannot use:
-- every settle, release and repeated reserve (`entries_for_job`, `guild_of_job`) and the open-hold searches read the
-- whole table, a cost that grew with the ledger (a year of a busy server: every job's charge scanning millions of
-- rows). A plain index on `job_id` serves them all on both engines.

CREATE INDEX ledger_by_job ON ledger (job_id);

-- The two sweeps that run every minute read the whole `jobs` table too: the approval expiry (jobs awaiting approval
-- past their time) and the search for flagged results whose mod-log post is missing. Each gets an index of its own.
CREATE INDEX jobs_awaiting_approval ON jobs (created_at) WHERE state = 'awaiting_approval';
CREATE INDEX moderation_holds_unposted ON moderation_holds (created_at) WHERE decision IS NULL AND message_id IS NULL;
