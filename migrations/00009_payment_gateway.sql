-- +goose Up
-- The gateway a live attempt was sent to (POST /orders/{id}/payments'
-- gateway, by default the only configured one): only that gateway's
-- callbacks may settle it. NULL for imported payments and for attempts
-- recorded before this version, which any configured gateway may settle
-- as before. Added last and NULL, so the change is instant on a large
-- table.
ALTER TABLE payments
  ADD COLUMN gateway VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;

-- An early result is kept per gateway, so one gateway's result cannot take
-- the place of another's (the attempt applies its own gateway's and
-- refuses the others, with an audit event), and rows left behind by
-- attempts that never came are swept by age (ledger.InboxRetention),
-- oldest first, through the index on received_at.
ALTER TABLE gateway_inbox
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (payment_id, gateway),
  ADD KEY idx_gateway_inbox_received (received_at);

-- +goose Down
-- One result per payment again: keep the alphabetically first gateway's.
DELETE i FROM gateway_inbox i JOIN gateway_inbox j ON j.payment_id = i.payment_id AND j.gateway < i.gateway;
ALTER TABLE gateway_inbox
  DROP KEY idx_gateway_inbox_received,
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (payment_id);
ALTER TABLE payments
  DROP COLUMN gateway;
