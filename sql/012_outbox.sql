-- 012_outbox: the transactional outbox (issue 10).  Every domain event is a
-- row of outbox, written by the SQL functions (functions/95_outbox.sql and
-- the triggers it binds) in the transaction of the change it reports.  The
-- relay of the module (src/domain/event/) delivers each event to every
-- sink whose filter it matches, one outbox_delivery row per event and sink,
-- leased with FOR UPDATE SKIP LOCKED so that any number of instances share
-- the work.  See sql/README.md, "Outbox".
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- The events.  seq is the delivery order: an event's seq is taken under a
-- transaction-scoped advisory lock of its aggregate (cm__outbox_emit), so
-- the events of one aggregate are numbered in commit order.  id is the
-- event id the sinks see (and the Idempotency-Key of a delivery).
CREATE TABLE outbox (
    seq            bigserial   PRIMARY KEY,
    id             uuid        NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    aggregate_type text        NOT NULL CHECK (aggregate_type ~ '^[a-z_]{1,32}$'),
    aggregate_id   bigint      NOT NULL,
    type           text        NOT NULL CHECK (type ~ '^[a-z_]{1,31}\.[a-z_]{1,31}$'),
    payload        jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The sinks that exist: registered (and their filters kept current) by the
-- relay of every instance that configures them.  An event is fanned out,
-- when it is written, to the sinks registered then whose filter takes it.
CREATE TABLE outbox_sink (
    name          text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,31}$'),
    types         text[]      NOT NULL CHECK (cardinality(types) BETWEEN 1 AND 32),
    registered_at timestamptz NOT NULL DEFAULT now(),
    seen_at       timestamptz NOT NULL DEFAULT now()
);

-- One event for one sink: PENDING (to send: due at next_at, or leased
-- until lease_until by the relay run holding lease_token), DELIVERED, or
-- DEAD (the dead-letter queue: last_error, attempts and the times kept).
-- aggregate_type/_id and created_at are copied from the event so that the
-- relay's head-of-aggregate query and the gauges read this table alone.
CREATE TABLE outbox_delivery (
    id               bigserial   PRIMARY KEY,
    -- no foreign key to outbox_sink: its check would take FOR KEY SHARE on
    -- the sink's one row in every transaction that writes an event, all at
    -- once (MultiXacts on a hot row); the rows are made from outbox_sink
    -- by cm__outbox_emit, and sinks are never deleted
    sink             text        NOT NULL,
    seq              bigint      NOT NULL REFERENCES outbox (seq) ON DELETE CASCADE,
    aggregate_type   text        NOT NULL,
    aggregate_id     bigint      NOT NULL,
    type             text        NOT NULL,
    created_at       timestamptz NOT NULL,
    state            text        NOT NULL DEFAULT 'PENDING'
                                 CHECK (state IN ('PENDING', 'DELIVERED', 'DEAD')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    replays          integer     NOT NULL DEFAULT 0 CHECK (replays >= 0),
    next_at          timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_token      uuid,
    last_error       text        CHECK (length(last_error) <= 300),
    first_attempt_at timestamptz,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    UNIQUE (sink, seq),
    CHECK ((state = 'DELIVERED') = (delivered_at IS NOT NULL)),
    CHECK ((state = 'DEAD') = (dead_at IS NOT NULL)),
    CHECK ((lease_until IS NULL) = (lease_token IS NULL)),
    CHECK (state = 'PENDING' OR lease_until IS NULL)
);

-- The relay: the pending rows of a sink in delivery order, and the earlier
-- pending row of the same aggregate (the head check).  Both partial: the
-- delivered rows, the bulk of the table, are in neither.
CREATE INDEX outbox_delivery_pending_idx ON outbox_delivery (sink, seq)
    WHERE state = 'PENDING';
CREATE INDEX outbox_delivery_pending_agg_idx
    ON outbox_delivery (sink, aggregate_type, aggregate_id, seq)
    WHERE state = 'PENDING';

-- The dead-letter queue, newest first.
CREATE INDEX outbox_delivery_dead_idx ON outbox_delivery (dead_at DESC, id DESC)
    WHERE state = 'DEAD';

-- Replays of dead events are audited.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check
    CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH', 'REFRESH_REUSE', 'LOGOUT',
                     'WITHDRAW', 'ROLE_CHANGE', 'EVENT_REPLAY'));
