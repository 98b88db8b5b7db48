-- +goose Up
-- Idempotency-Key on POST /orders and POST /orders/{id}/payments: the first
-- answer to a key, per caller (the SHA-256 of its bearer token) and route,
-- replayed to every retry with the same key and request; the same key with
-- another request is refused. status is 0 while the first request runs.
-- The answer can hold customer data, so it is stored encrypted.
-- Retention: a key is honoured for 24 hours after created_at; older rows
-- are replaced when their key comes again and purged by the API server
-- (internal/api/idempotency.go, idempotencyRetention).
CREATE TABLE idempotency_keys (
  token_hash   BINARY(32)   NOT NULL,
  route        VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  idem_key     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  request_hash BINARY(32)   NOT NULL,
  status       SMALLINT     NOT NULL DEFAULT 0,
  response     MEDIUMBLOB   NULL,
  created_at   DATETIME(6)  NOT NULL,
  PRIMARY KEY (token_hash, route, idem_key),
  KEY idx_idempotency_keys_created (created_at)
);

-- +goose Down
DROP TABLE idempotency_keys;
