-- Schema version 12: intentionally empty. The number was reserved for a branch that did not land; databases already
-- at schema 12 or later have applied it, so it stays (migrations are numbered without gaps) and changes nothing.
SELECT 1;
