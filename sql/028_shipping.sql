-- 028_shipping: what only shipping and purchase confirmation need (issue
-- 13 section 1 and 2) besides the shared schema of 027_fulfilment.sql.
-- Functions: functions/71_shipping.sql.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- ---------------------------------------------------------------------------
-- A parcel's history as its carrier tells it (pushed, then confirmed by a
-- pull, or pulled by the poll job): one row per (level, time).  The same
-- event told twice inserts nothing; an event older than the parcel's level
-- is history, never a step back (shipments.level only moves forward).
CREATE TABLE shipment_events (
    id          bigserial   PRIMARY KEY,
    shipment_id bigint      NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    level       smallint    NOT NULL CHECK (level BETWEEN 1 AND 6),
    event_time  timestamptz NOT NULL,
    kind        text        NOT NULL CHECK (char_length(kind) <= 100),
    location    text        NOT NULL CHECK (char_length(location) <= 100),
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shipment_events_key UNIQUE (shipment_id, level, event_time)
);

-- ---------------------------------------------------------------------------
-- The poll job's lease: the job hands a parcel to one instance until
-- lease_until (FOR UPDATE SKIP LOCKED then this column), so two instances
-- never register or poll the same parcel at once.
ALTER TABLE shipments ADD COLUMN lease_until timestamptz;
