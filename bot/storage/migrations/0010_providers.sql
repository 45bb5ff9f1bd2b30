-- Schema version 10: more than one provider (Runware, Runbase) behind one catalog.
-- * `jobs.provider`: the provider the job runs on ('runware' or 'runbase', named in bot/catalog.py). Jobs stored
--   before this version ran on Runware. The worker and a restart continue a job on its own provider only.

ALTER TABLE jobs ADD COLUMN provider TEXT NOT NULL DEFAULT 'runware';
