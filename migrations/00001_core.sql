-- +goose Up
-- Core ledger tables. Money is BIGINT minor units; sensitive columns hold
-- AES-256-GCM ciphertext (see internal/encryption), never plaintext.
-- Ids use a binary collation so 'A1' and 'a1' are different orders.
-- Secondary indexes are only those a look-up needs (every one slows bulk
-- loads): exports and downloads walk primary-key ranges and filter.
CREATE TABLE orders (
  order_id            VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_amount        BIGINT       NOT NULL,
  currency            CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  -- ENUMs are fixed width, so a status change updates the row in place.
  order_status        ENUM('PENDING', 'COMPLETED') NOT NULL DEFAULT 'PENDING',
  paid_amount         BIGINT       NOT NULL DEFAULT 0,
  customer_email      VARBINARY(512) NULL,
  customer_phone      VARBINARY(256) NULL,
  customer_email_bidx BINARY(8)    NULL,
  created_at          DATETIME(6)  NOT NULL,
  updated_at          DATETIME(6)  NOT NULL,
  PRIMARY KEY (order_id),
  KEY idx_orders_email_bidx (customer_email_bidx),
  CONSTRAINT chk_orders_amount CHECK (order_amount > 0),
  CONSTRAINT chk_orders_paid CHECK (paid_amount >= 0),
  CONSTRAINT chk_orders_status_set CHECK (order_status <> '')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE payments (
  payment_id      VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_id        VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  payment_amount  BIGINT       NOT NULL,
  currency        CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payment_status  ENUM('PENDING', 'SUCCESS', 'FAILED') NOT NULL,
  payment_method  VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  payment_details VARBINARY(512) NULL,
  gateway_ref     VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  failure_reason  VARCHAR(255) NULL,
  created_at      DATETIME(6)  NOT NULL,
  updated_at      DATETIME(6)  NOT NULL,
  PRIMARY KEY (payment_id),
  UNIQUE KEY uq_payments_gateway_ref (gateway_ref),
  KEY idx_payments_order_status (order_id, payment_status),
  CONSTRAINT fk_payments_order FOREIGN KEY (order_id) REFERENCES orders (order_id),
  CONSTRAINT chk_payments_amount CHECK (payment_amount > 0),
  CONSTRAINT chk_payments_status_set CHECK (payment_status <> ''),
  CONSTRAINT chk_payments_method CHECK (payment_method IN ('CARD', 'UPI', 'NETBANKING', 'WALLET', 'BANK_TRANSFER', 'CASH', 'VOUCHER'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Append-only audit of every payment status change. applied = 0 marks an
-- event that was refused (a contradicting callback or settlement) and kept
-- only as evidence.
CREATE TABLE payment_events (
  event_id    BIGINT       NOT NULL AUTO_INCREMENT,
  payment_id  VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  order_id    VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  from_status VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  to_status   VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  source      VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reference   VARCHAR(191) NULL,
  applied     BOOLEAN      NOT NULL DEFAULT TRUE,
  note        VARCHAR(255) NULL,
  created_at  DATETIME(6)  NOT NULL,
  PRIMARY KEY (event_id),
  KEY idx_payment_events_payment (payment_id, event_id),
  CONSTRAINT chk_payment_events_source CHECK (source IN ('import', 'api', 'gateway'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE payment_events;
DROP TABLE payments;
DROP TABLE orders;
