-- Schema version 9: team budgets (`/budget channel`) and the once-per-period allowance warning.
-- * `channel_pools`: a pool per channel or category (`pool_id` is that channel's or category's id) per budget period;
--   every generation in it (a category's: in its channels; a thread's: in its parent) must also fit the pool.
-- * `ledger.pool_id`: the pool a hold was reserved in (NULL: none); its settle and release rows carry the same id, so
--   a job counts against the pool it was checked against even if the pool is removed or changed later.
-- * `pool_day_totals`: per-day running totals per pool kept by a trigger, like `member_day_totals` (migration 0002),
--   so a pool check reads at most 31 rows however long the ledger grows.
-- * `allowance_warnings`: the periods in which a member was told they passed 80% of their allowance (once each).

CREATE TABLE channel_pools (
    guild_id   INTEGER NOT NULL,
    pool_id    INTEGER NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount BETWEEN 0 AND 1000000000000),
    updated_at INTEGER NOT NULL,
    updated_by INTEGER,
    PRIMARY KEY (guild_id, pool_id)
) WITHOUT ROWID;

ALTER TABLE ledger ADD COLUMN pool_id INTEGER;

CREATE TABLE pool_day_totals (
    guild_id INTEGER NOT NULL,
    pool_id  INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    spent    INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, pool_id, day)
) WITHOUT ROWID;

CREATE TRIGGER ledger_pool_day_totals AFTER INSERT ON ledger WHEN NEW.pool_id IS NOT NULL
BEGIN
    INSERT INTO pool_day_totals (guild_id, pool_id, day, spent, reserved)
    VALUES (NEW.guild_id, NEW.pool_id, NEW.effective_at / 86400000,
            CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.kind = 'hold' THEN NEW.amount ELSE -NEW.released END)
    ON CONFLICT (guild_id, pool_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved;
END;

CREATE TABLE allowance_warnings (
    guild_id     INTEGER NOT NULL,
    member_id    INTEGER NOT NULL,
    period_start INTEGER NOT NULL,
    warned_at    INTEGER NOT NULL,
    PRIMARY KEY (guild_id, member_id, period_start)
) WITHOUT ROWID;
