-- Placeholder for schema version 0007, which the policy10 branch adds (its own migration file replaces this one at merge:
-- delete this file then). Migrations are numbered without gaps, so the pools branch (0009) needs a version 0007.
SELECT 1;
