-- Schema version 13: a hold counts against every team pool of its places (nested pools).
-- * `hold_pools`: the pools a job's hold was checked against and counts against (its channel's, its thread's parent
--   channel's, its category's: every one that had a pool when it was reserved). Written in the reservation's
--   transaction, right after the hold; the hold's settle and release rows then count against the same pools, even if
--   a pool is removed or changed later. `ledger.pool_id` keeps the innermost of them (the spend report's place).
-- * The `pool_day_totals` trigger of migration 0009 now adds every hold, settle and release row of a job to each of
--   its `hold_pools`; a `hold_pools` row added after the job's rows adds those rows to its pool, so the totals are the
--   same whichever is written first.
-- * Holds made before this version counted against their `ledger.pool_id` only: that is their one `hold_pools` row.

CREATE TABLE hold_pools (
    job_id  TEXT    NOT NULL,
    pool_id INTEGER NOT NULL,
    PRIMARY KEY (job_id, pool_id)
) WITHOUT ROWID;

INSERT INTO hold_pools (job_id, pool_id)
SELECT job_id, pool_id FROM ledger WHERE kind = 'hold' AND pool_id IS NOT NULL AND job_id IS NOT NULL;

DROP TRIGGER IF EXISTS ledger_pool_day_totals;

CREATE TRIGGER ledger_pool_day_totals AFTER INSERT ON ledger
WHEN NEW.job_id IS NOT NULL AND NEW.kind IN ('hold', 'settle', 'release')
BEGIN
    INSERT INTO pool_day_totals (guild_id, pool_id, day, spent, reserved)
    SELECT NEW.guild_id, hp.pool_id, NEW.effective_at / 86400000,
           CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind = 'hold' THEN NEW.amount ELSE -NEW.released END
    FROM hold_pools AS hp WHERE hp.job_id = NEW.job_id
    ON CONFLICT (guild_id, pool_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved;
END;

CREATE TRIGGER hold_pools_day_totals AFTER INSERT ON hold_pools
BEGIN
    INSERT INTO pool_day_totals (guild_id, pool_id, day, spent, reserved)
    SELECT l.guild_id, NEW.pool_id, l.effective_at / 86400000,
           SUM(CASE WHEN l.kind = 'settle' THEN l.amount ELSE 0 END),
           SUM(CASE WHEN l.kind = 'hold' THEN l.amount ELSE -l.released END)
    FROM ledger AS l WHERE l.job_id = NEW.job_id AND l.kind IN ('hold', 'settle', 'release')
    GROUP BY l.guild_id, l.effective_at / 86400000
    ON CONFLICT (guild_id, pool_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved;
END;
