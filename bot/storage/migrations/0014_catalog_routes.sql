-- Schema version 14: the catalog is data (bot/catalog/routes.py), not part of the schema.
-- * `generation_settings` is rebuilt without the CHECK constraints that repeated the catalog's value lists (model,
--   size, quality, background, format): adding a model or a route is now a catalog and config change only. The code
--   validates every value against the catalog before it is stored. The count and money bounds stay, and so does the
--   rule that a transparent background never goes with jpg (jpg has no alpha channel). Every row is kept as it is.
-- * `jobs.resolution`: the resolution a job was asked at ('1K', '2K', '4K') on a model that offers one (GPT Image 2);
--   NULL for the other models and for every job stored before this version. `jobs.provider` names the provider of
--   the route the job was admitted on.

CREATE TABLE generation_settings_v14 (
    guild_id            INTEGER PRIMARY KEY,
    model               TEXT,
    size                TEXT,
    quality             TEXT,
    background          TEXT,
    format              TEXT,
    count               INTEGER CHECK (count BETWEEN 1 AND 4),
    defaults_changed_at INTEGER,
    defaults_changed_by INTEGER,
    max_count           INTEGER CHECK (max_count BETWEEN 1 AND 4),
    confirm_above       INTEGER CHECK (confirm_above BETWEEN 0 AND 1000000000000),
    limits_changed_at   INTEGER,
    limits_changed_by   INTEGER,
    CHECK (NOT (background = 'transparent' AND format = 'jpg')),
    CHECK (count IS NULL OR max_count IS NULL OR count <= max_count)
);

INSERT INTO generation_settings_v14 (
    guild_id, model, size, quality, background, format, count, defaults_changed_at, defaults_changed_by,
    max_count, confirm_above, limits_changed_at, limits_changed_by
)
SELECT guild_id, model, size, quality, background, format, count, defaults_changed_at, defaults_changed_by,
       max_count, confirm_above, limits_changed_at, limits_changed_by
FROM generation_settings;

DROP TABLE generation_settings;

ALTER TABLE generation_settings_v14 RENAME TO generation_settings;

ALTER TABLE jobs ADD COLUMN resolution TEXT;
