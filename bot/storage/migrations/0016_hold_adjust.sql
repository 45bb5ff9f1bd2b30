-- Schema version 16: a hold can be re-reserved at a new estimate (failover to another provider, `Ledger.refit`).
-- * A new ledger kind, `adjust`: `amount` = the signed change of the job's hold (+: more is held, -: surplus freed),
--   `adjust_seq` = 1, 2, ... per job (its own unique index, the idempotency key of each adjustment). It carries the
--   hold's `effective_at` and `pool_id`, so it counts in the same period, day and pools as the hold.
--   A job's held amount = its hold + the sum of its adjusts; its settle or release row ends exactly that.
--   reserved = sum(hold.amount) + sum(adjust.amount) - sum(released).
-- * SQLite cannot change a CHECK constraint in place, so `ledger` is rebuilt (every row copied unchanged, ids kept)
--   with its indexes and its append-only and totals triggers; the daily totals need no change (no adjust exists yet).

DROP TRIGGER IF EXISTS hold_pools_day_totals;
DROP TRIGGER IF EXISTS ledger_pool_day_totals;
DROP TRIGGER IF EXISTS ledger_day_totals;
DROP TRIGGER IF EXISTS ledger_no_update;
DROP TRIGGER IF EXISTS ledger_no_delete;

CREATE TABLE ledger_v16 (
    id           INTEGER PRIMARY KEY,
    guild_id     INTEGER NOT NULL,
    member_id    INTEGER NOT NULL,
    job_id       TEXT,
    kind         TEXT    NOT NULL CHECK (kind IN ('hold', 'settle', 'release', 'grant', 'adjust')),
    amount       INTEGER NOT NULL,
    released     INTEGER NOT NULL DEFAULT 0 CHECK (released BETWEEN 0 AND 1000000000000),
    overrun      INTEGER NOT NULL DEFAULT 0 CHECK (overrun BETWEEN 0 AND amount OR overrun = 0),
    reason       TEXT,
    actor_id     INTEGER,
    effective_at INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    pool_id      INTEGER,
    adjust_seq   INTEGER CHECK (adjust_seq >= 1),
    CHECK ((kind = 'grant') = (job_id IS NULL)),
    CHECK ((kind = 'adjust') = (adjust_seq IS NOT NULL)),
    CHECK (CASE kind
               WHEN 'hold'    THEN amount BETWEEN 0 AND 1000000000000 AND released = 0 AND overrun = 0
               WHEN 'settle'  THEN amount BETWEEN 0 AND 1000000000000
               WHEN 'release' THEN amount = released AND overrun = 0
               WHEN 'adjust'  THEN amount BETWEEN -1000000000000 AND 1000000000000 AND amount <> 0 AND released = 0
                                   AND overrun = 0
               ELSE amount BETWEEN -1000000000000 AND 1000000000000 AND amount <> 0 AND released = 0
                    AND overrun = 0
           END)
);

INSERT INTO ledger_v16 (id, guild_id, member_id, job_id, kind, amount, released, overrun, reason, actor_id,
                        effective_at, created_at, pool_id)
SELECT id, guild_id, member_id, job_id, kind, amount, released, overrun, reason, actor_id, effective_at, created_at,
       pool_id
FROM ledger;

DROP TABLE ledger;

ALTER TABLE ledger_v16 RENAME TO ledger;

CREATE UNIQUE INDEX ledger_job_kind ON ledger (job_id, kind) WHERE job_id IS NOT NULL AND kind <> 'adjust';
CREATE UNIQUE INDEX ledger_job_adjust ON ledger (job_id, adjust_seq) WHERE kind = 'adjust';
CREATE INDEX ledger_grants ON ledger (guild_id, member_id, effective_at) WHERE kind = 'grant';
CREATE INDEX ledger_settles ON ledger (guild_id, effective_at) WHERE kind = 'settle';

CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN
    SELECT RAISE(ABORT, 'the ledger is append-only');
END;

CREATE TRIGGER ledger_day_totals AFTER INSERT ON ledger
BEGIN
    INSERT INTO member_day_totals (guild_id, member_id, day, spent, reserved, granted)
    VALUES (NEW.guild_id, NEW.member_id, NEW.effective_at / 86400000,
            CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.kind IN ('hold', 'adjust') THEN NEW.amount ELSE -NEW.released END,
            CASE WHEN NEW.kind = 'grant' THEN NEW.amount ELSE 0 END)
    ON CONFLICT (guild_id, member_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved,
        granted = granted + excluded.granted;
    INSERT INTO guild_day_totals (guild_id, day, spent, reserved, granted)
    VALUES (NEW.guild_id, NEW.effective_at / 86400000,
            CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.kind IN ('hold', 'adjust') THEN NEW.amount ELSE -NEW.released END,
            CASE WHEN NEW.kind = 'grant' THEN NEW.amount ELSE 0 END)
    ON CONFLICT (guild_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved,
        granted = granted + excluded.granted;
END;

CREATE TRIGGER ledger_pool_day_totals AFTER INSERT ON ledger
WHEN NEW.job_id IS NOT NULL AND NEW.kind IN ('hold', 'adjust', 'settle', 'release')
BEGIN
    INSERT INTO pool_day_totals (guild_id, pool_id, day, spent, reserved)
    SELECT NEW.guild_id, hp.pool_id, NEW.effective_at / 86400000,
           CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
           CASE WHEN NEW.kind IN ('hold', 'adjust') THEN NEW.amount ELSE -NEW.released END
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
           SUM(CASE WHEN l.kind IN ('hold', 'adjust') THEN l.amount ELSE -l.released END)
    FROM ledger AS l WHERE l.job_id = NEW.job_id AND l.kind IN ('hold', 'adjust', 'settle', 'release')
    GROUP BY l.guild_id, l.effective_at / 86400000
    ON CONFLICT (guild_id, pool_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved;
END;
