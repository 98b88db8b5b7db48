-- +goose Up
-- Orders whose payment workflow is open. Bulk imports that change such an
-- order signal its workflow so it can complete; others need no signal.
CREATE TABLE order_workflows (
  order_id   VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  opened_at  DATETIME(6) NOT NULL,
  PRIMARY KEY (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Gateway results for payments the service has not seen yet: kept, then
-- applied when the attempt arrives, so none is lost.
CREATE TABLE gateway_inbox (
  payment_id     VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  gateway        VARCHAR(64)  NOT NULL,
  status         VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- The amount as the gateway sent it ("12.30"): the currency needed to
  -- read it in minor units is known only when the attempt arrives.
  amount_text    VARCHAR(40)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  gateway_ref    VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  failure_reason VARCHAR(255) NULL,
  received_at    DATETIME(6)  NOT NULL,
  PRIMARY KEY (payment_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE gateway_inbox;
DROP TABLE order_workflows;
