-- +goose Up
-- The name of an import's uploaded file (the multipart file name, or the
-- CLI's --name or file base name), so operators can tell imports apart by
-- more than their content hash. User-chosen text, cleaned and capped by
-- importer.CleanFileName; NULL when the upload named none.
ALTER TABLE import_jobs
  ADD COLUMN file_name VARCHAR(255) NULL AFTER format;

-- +goose Down
ALTER TABLE import_jobs
  DROP COLUMN file_name;
