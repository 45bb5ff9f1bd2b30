-- Schema version 5: when the job's task was last POSTed to Runware.
-- * `jobs.task_sent_at` (Unix milliseconds, UTC): written before every POST of the job's imageInference task (the
--   first one and every re-POST of the same task UUID after an ambiguous failure, in this process or after a
--   restart); the POST is sent only once it is stored. The time is taken just before that write, so it precedes
--   the POST by the write's duration (milliseconds, small against the window below). A restart that finds the job
--   submitted without an acknowledgement counts Runware's late-registration window (twice the request timeout) from
--   here, so a POST still on its way when the process died is waited for, whichever POST it was.
--   NULL means no POST was recorded: none was sent since this version (each is recorded first), or the job was
--   submitted before it. The restart then counts from `updated_at`, set when the task UUID was stored just before
--   the first POST (what earlier versions did).

ALTER TABLE jobs ADD COLUMN task_sent_at INTEGER;
