-- +goose Up
-- The key id of every encrypted column, read by the database itself from
-- the ciphertext header (internal/encryption: 0x01 | id length | id | ...),
-- so the keys in use are known without decrypting or scanning rows:
-- start-up reads the distinct ids of each column by skipping through these
-- indexes (an index dive per distinct id however many rows), `starter keys
-- status` counts them, and rotation finds the rows still under an old key.
-- A summary table kept by the writers could drift from the rows (a process
-- started before a rotation and still writing under the old key); a
-- generated column cannot. The columns are VIRTUAL (nothing is stored in
-- the row) and each index entry is a few bytes of id plus the primary key.
-- NULL: the column is NULL, or its header is not one this format knows.
ALTER TABLE orders
  ADD COLUMN customer_email_kid VARBINARY(32) AS (IF(SUBSTRING(customer_email, 1, 1) = 0x01,
    SUBSTRING(customer_email, 3, ASCII(SUBSTRING(customer_email, 2, 1))), NULL)) VIRTUAL,
  ADD COLUMN customer_phone_kid VARBINARY(32) AS (IF(SUBSTRING(customer_phone, 1, 1) = 0x01,
    SUBSTRING(customer_phone, 3, ASCII(SUBSTRING(customer_phone, 2, 1))), NULL)) VIRTUAL,
  ADD KEY idx_orders_email_kid (customer_email_kid),
  ADD KEY idx_orders_phone_kid (customer_phone_kid);

ALTER TABLE payments
  ADD COLUMN payment_details_kid VARBINARY(32) AS (IF(SUBSTRING(payment_details, 1, 1) = 0x01,
    SUBSTRING(payment_details, 3, ASCII(SUBSTRING(payment_details, 2, 1))), NULL)) VIRTUAL,
  ADD KEY idx_payments_details_kid (payment_details_kid);

-- +goose Down
ALTER TABLE payments
  DROP KEY idx_payments_details_kid,
  DROP COLUMN payment_details_kid;
ALTER TABLE orders
  DROP KEY idx_orders_phone_kid,
  DROP KEY idx_orders_email_kid,
  DROP COLUMN customer_phone_kid,
  DROP COLUMN customer_email_kid;
