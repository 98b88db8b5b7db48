-- +goose Up
-- Import jobs: one row per staged file, kept current by the import workflow.
CREATE TABLE import_jobs (
  import_id      VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workflow_id    VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type           VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  format         VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  state          VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  blob_key       VARCHAR(255) NOT NULL,
  content_sha256 CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  size_bytes     BIGINT       NOT NULL,
  max_rejects    BIGINT       NOT NULL,
  rows_read      BIGINT       NOT NULL DEFAULT 0,
  rows_written   BIGINT       NOT NULL DEFAULT 0,
  rows_unchanged BIGINT       NOT NULL DEFAULT 0,
  rows_rejected  BIGINT       NOT NULL DEFAULT 0,
  chunks_done    INT          NOT NULL DEFAULT 0,
  chunks_total   INT          NOT NULL DEFAULT 0,
  error          TEXT         NULL,
  created_at     DATETIME(6)  NOT NULL,
  updated_at     DATETIME(6)  NOT NULL,
  PRIMARY KEY (import_id),
  KEY idx_import_jobs_created (created_at),
  CONSTRAINT chk_import_jobs_state CHECK (state IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The chunk ledger: a chunk's row is written in the same transaction as the
-- chunk's data, so a retried or replayed chunk finds it and writes nothing.
CREATE TABLE import_chunks (
  import_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  chunk_no       INT         NOT NULL,
  first_record   BIGINT      NOT NULL,
  start_offset   BIGINT      NOT NULL,
  end_offset     BIGINT      NOT NULL,
  rows_read      BIGINT      NOT NULL,
  rows_written   BIGINT      NOT NULL,
  rows_unchanged BIGINT      NOT NULL,
  rows_rejected  BIGINT      NOT NULL,
  committed_at   DATETIME(6) NOT NULL,
  PRIMARY KEY (import_id, chunk_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE import_rejects (
  import_id VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  record_no BIGINT       NOT NULL,
  line_no   BIGINT       NOT NULL,
  code      VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  message   VARCHAR(512) NOT NULL,
  PRIMARY KEY (import_id, record_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Export jobs: chunked over primary-key ranges, resumable like imports.
CREATE TABLE export_jobs (
  export_id    VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  workflow_id  VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type         VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  format       VARCHAR(8)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  filters      TEXT         NOT NULL,
  state        VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  blob_key     VARCHAR(255) NULL,
  rows_written BIGINT       NOT NULL DEFAULT 0,
  chunks_done  INT          NOT NULL DEFAULT 0,
  chunks_total INT          NOT NULL DEFAULT 0,
  error        TEXT         NULL,
  created_at   DATETIME(6)  NOT NULL,
  updated_at   DATETIME(6)  NOT NULL,
  PRIMARY KEY (export_id),
  CONSTRAINT chk_export_jobs_state CHECK (state IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE export_chunks (
  export_id    VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  chunk_no     INT          NOT NULL,
  first_key    VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  last_key     VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  rows_written BIGINT       NOT NULL,
  part_key     VARCHAR(255) NOT NULL,
  committed_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (export_id, chunk_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE export_chunks;
DROP TABLE export_jobs;
DROP TABLE import_rejects;
DROP TABLE import_chunks;
DROP TABLE import_jobs;
