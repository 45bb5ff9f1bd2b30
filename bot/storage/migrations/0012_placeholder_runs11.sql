-- Schema version 12: PLACEHOLDER on branch fix10b only, so that 0013 applies without a gap while branch runs11's
-- migration 0012 is not merged yet. It changes nothing. DELETE THIS FILE when merging runs11 (which brings the real 0012).
SELECT 1;
