-- Schema version 11: PLACEHOLDER on branch fix10b only, so that 0013 applies without a gap while branch cat11's
-- migration 0011 is not merged yet. It changes nothing. DELETE THIS FILE when merging cat11 (which brings the real 0011).
SELECT 1;
