-- Schema version 5: when the job's task was last POSTed to Runware.
-- * `jobs.task_sent_at` (Unix milliseconds, UTC): written before every POST of the job's imageInference task (the
--   first one and every re-POST of the same task UUID after an ambiguous failure, in this process or after a
--   restart), so it is never earlier than needed: it is the time of the latest POST, taken just before the write
--   that precedes it. A restart that finds the job submitted without an acknowledgement counts Runware's
--   late-registration window (twice the request timeout) from here: a POST still on its way when the process died
--   is waited for, whichever POST it was. NULL means no POST was recorded: either none was sent, or the job was
--   submitted before this version; the restart then counts from `updated_at` (set when the task UUID was stored).

ALTER TABLE jobs ADD COLUMN task_sent_at INTEGER;
