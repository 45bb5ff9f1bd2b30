-- Schema version 2: per-day running totals kept by a trigger, so a budget check reads at most 31 rows for the member
-- and 31 for the server however long the ledger grows (every period is a whole number of UTC days); plus an index for
-- the spend reports. Existing ledger rows are folded in, so a file at version 1 upgrades with correct totals.
-- `day` is whole days since 1970-01-01 UTC: effective_at / 86,400,000.

CREATE TABLE member_day_totals (
    guild_id  INTEGER NOT NULL,
    member_id INTEGER NOT NULL,
    day       INTEGER NOT NULL,
    spent     INTEGER NOT NULL DEFAULT 0,
    reserved  INTEGER NOT NULL DEFAULT 0,
    granted   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, member_id, day)
) WITHOUT ROWID;

CREATE TABLE guild_day_totals (
    guild_id INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    spent    INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    granted  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (guild_id, day)
) WITHOUT ROWID;

INSERT INTO member_day_totals (guild_id, member_id, day, spent, reserved, granted)
SELECT guild_id, member_id, effective_at / 86400000,
       SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'hold' THEN amount ELSE -released END),
       SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END)
FROM ledger
GROUP BY guild_id, member_id, effective_at / 86400000;

INSERT INTO guild_day_totals (guild_id, day, spent, reserved, granted)
SELECT guild_id, effective_at / 86400000,
       SUM(CASE WHEN kind = 'settle' THEN amount ELSE 0 END),
       SUM(CASE WHEN kind = 'hold' THEN amount ELSE -released END),
       SUM(CASE WHEN kind = 'grant' THEN amount ELSE 0 END)
FROM ledger
GROUP BY guild_id, effective_at / 86400000;

CREATE TRIGGER ledger_day_totals AFTER INSERT ON ledger
BEGIN
    INSERT INTO member_day_totals (guild_id, member_id, day, spent, reserved, granted)
    VALUES (NEW.guild_id, NEW.member_id, NEW.effective_at / 86400000,
            CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.kind = 'hold' THEN NEW.amount ELSE -NEW.released END,
            CASE WHEN NEW.kind = 'grant' THEN NEW.amount ELSE 0 END)
    ON CONFLICT (guild_id, member_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved,
        granted = granted + excluded.granted;
    INSERT INTO guild_day_totals (guild_id, day, spent, reserved, granted)
    VALUES (NEW.guild_id, NEW.effective_at / 86400000,
            CASE WHEN NEW.kind = 'settle' THEN NEW.amount ELSE 0 END,
            CASE WHEN NEW.kind = 'hold' THEN NEW.amount ELSE -NEW.released END,
            CASE WHEN NEW.kind = 'grant' THEN NEW.amount ELSE 0 END)
    ON CONFLICT (guild_id, day) DO UPDATE SET
        spent = spent + excluded.spent,
        reserved = reserved + excluded.reserved,
        granted = granted + excluded.granted;
END;

CREATE INDEX ledger_settles ON ledger (guild_id, effective_at) WHERE kind = 'settle';
