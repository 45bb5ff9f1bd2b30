-- Schema version 3: what the job queue needs to be durable and to build on earlier results.
-- * `jobs.task_acked_at`: when Runware acknowledged the task. A job in `submitted` with a task UUID but no ack may
--   have died before its POST, so a restart asks Runware about the UUID and submits it (under the same UUID) only if
--   Runware does not know it; with an ack, a restart only ever polls.
-- * `job_results`: every image a job produced, by index, with Runware's imageUUID (usable directly as a reference
--   for edits) and URL, and its reported cost. Written as soon as the task finishes, before delivery, so a restart
--   delivers from here without asking Runware again.
-- * Indexes for collapsing duplicate requests (the fingerprint lives in `extras`) and for finding the job behind a
--   result message.

ALTER TABLE jobs ADD COLUMN task_acked_at INTEGER;

CREATE TABLE job_results (
    job_id      TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL CHECK (idx >= 0),
    image_uuid  TEXT    NOT NULL,
    image_url   TEXT,
    cost        INTEGER CHECK (cost BETWEEN 0 AND 1000000000000),
    seed        INTEGER,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;

CREATE INDEX jobs_fingerprint ON jobs (member_id, json_extract(extras, '$.fingerprint'), created_at);
CREATE INDEX jobs_result_message ON jobs (result_message_id) WHERE result_message_id IS NOT NULL;
