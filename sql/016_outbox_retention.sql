-- Retention of delivered events (sql/functions/90_retention.sql, kind
-- "outbox"): an event goes once every delivery of it is DELIVERED.  Its
-- deliveries go with it (ON DELETE CASCADE): the cascade and the purge's
-- "none left to deliver" check find them by event, and the purge finds old
-- events by time (rows are appended in time order: BRIN).
CREATE INDEX outbox_delivery_seq_idx ON outbox_delivery (seq);
CREATE INDEX outbox_created_at_idx ON outbox USING brin (created_at);
