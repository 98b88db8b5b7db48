-- +goose Up
-- What the export feature needs beyond the tables of version 2, which no
-- code wrote before: the export's parameters as a key (one running export
-- per set of parameters: active_key is set while it runs, and NULLs do not
-- collide in a unique index), whether its file shows sensitive fields
-- unmasked (then only pii tokens may fetch it), and the file's size.
ALTER TABLE export_jobs
  ADD COLUMN params_key  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '' AFTER filters,
  ADD COLUMN active_key  CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER params_key,
  ADD COLUMN pii         BOOLEAN NOT NULL DEFAULT FALSE AFTER active_key,
  ADD COLUMN rows_total  BIGINT NULL AFTER rows_written,
  ADD COLUMN file_bytes  BIGINT NULL AFTER blob_key,
  ADD UNIQUE KEY uq_export_jobs_active (active_key),
  ADD KEY idx_export_jobs_created (created_at);

-- +goose Down
ALTER TABLE export_jobs
  DROP KEY idx_export_jobs_created,
  DROP KEY uq_export_jobs_active,
  DROP COLUMN file_bytes,
  DROP COLUMN rows_total,
  DROP COLUMN pii,
  DROP COLUMN active_key,
  DROP COLUMN params_key;
