-- Placeholder for schema version 0008, which the approvals10 branch adds (its own migration file replaces this one at merge:
-- delete this file then). Migrations are numbered without gaps, so the pools branch (0009) needs a version 0008.
SELECT 1;
