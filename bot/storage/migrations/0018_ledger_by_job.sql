-- Schema version 18: indexes for lookups that read whole tables (issue 14): the ledger rows of one job, the two
-- sweeps that run every minute, a member's unfinished jobs (`/queue`) and the shared queue's last turn.
-- Since version 16 the only index on `job_id` is partial (`kind <> 'adjust'`), which a lookup by job alone cannot use:
-- every settle, release and repeated reserve (`entries_for_job`, `guild_of_job`) and the open-hold searches read the
-- whole table, a cost that grew with the ledger (a year of a busy server: every job's charge scanning millions of
-- rows). A plain index on `job_id` serves them all on both engines.

CREATE INDEX ledger_by_job ON ledger (job_id);

-- The two sweeps that run every minute read the whole `jobs` table too: the approval expiry (jobs awaiting approval
-- past their time) and the search for flagged results whose mod-log post is missing. Each gets an index of its own.
CREATE INDEX jobs_awaiting_approval ON jobs (created_at) WHERE state = 'awaiting_approval';
CREATE INDEX moderation_holds_unposted ON moderation_holds (created_at) WHERE decision IS NULL AND message_id IS NULL;

-- `/queue` (and its Cancel buttons) found a member's unfinished jobs by reading all of the member's jobs in the
-- server; the predicate is the one of `jobs_unfinished`, word for word (SQLite uses a partial index only then).
CREATE INDEX jobs_member_unfinished ON jobs (guild_id, member_id, created_at)
    WHERE state IN ('awaiting_approval', 'queued', 'submitted');

-- Every claim on the shared queue (PostgreSQL) takes the next turn, MAX(turn), which read every member's row.
CREATE INDEX queue_turns_turn ON queue_turns (turn);
