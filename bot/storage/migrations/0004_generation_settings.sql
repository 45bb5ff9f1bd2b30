-- Schema version 4: a server's own generation defaults and limits (set with /settings defaults and /settings limits).
-- Every column but the key may be NULL, meaning "not set here: use the config file's value". The two groups are
-- changed (and reset) separately, so each records who changed it last and when (Unix milliseconds, UTC).
-- * defaults: model, size, quality, background, format, count: what /imagine and /edit use for an option the member
--   left out. A transparent background never goes with jpg (jpg has no alpha channel).
-- * limits: max_count (most images per request; the code also holds it to the config's `limits.max_count`, which
--   can change after it was stored) and confirm_above (estimates above it, in micro-dollars, ask for confirmation).
-- The value lists mirror bot/catalog.py (contract §5.3); a new choice there needs a migration here.

CREATE TABLE generation_settings (
    guild_id            INTEGER PRIMARY KEY,
    model               TEXT    CHECK (model IN ('gpt-image-1', 'gpt-image-1-mini', 'gpt-image-1.5')),
    size                TEXT    CHECK (size IN ('1024x1024', '1536x1024', '1024x1536')),
    quality             TEXT    CHECK (quality IN ('auto', 'low', 'medium', 'high')),
    background          TEXT    CHECK (background IN ('auto', 'opaque', 'transparent')),
    format              TEXT    CHECK (format IN ('png', 'jpg', 'webp')),
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
