-- Schema version 18: the ledger's rows of one job found by an index, not a scan of the whole ledger (issue 14).
-- Since version 16 the only index on `job_id` is partial (`kind <> 'adjust'`), which a lookup by job alone cannot use:
-- every settle, release and repeated reserve (`entries_for_job`, `guild_of_job`) and the open-hold searches read the
-- whole table, a cost that grew with the ledger (a year of a busy server: every job's charge scanning millions of
-- rows). A plain index on `job_id` serves them all on both engines.

CREATE INDEX ledger_by_job ON ledger (job_id);
