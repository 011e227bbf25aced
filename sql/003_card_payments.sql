-- 003_card_payments: the tables of card payments through external payment
-- gateways (PGs): card columns of payments, net-cancel, the reconciler's
-- queue, the PG interface log, idempotency keys.  The functions that use
-- them are in functions/40_payment.sql and functions/50_idem.sql, which
-- also state the payment states and the lock order.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- New columns are NULL or have a constant default: no table rewrite.
ALTER TABLE payments
    ADD COLUMN gateway             text,
    ADD COLUMN transaction_key     text,
    ADD COLUMN card_type           text,
    ADD COLUMN card_last4          char(4),
    ADD COLUMN reason              text,
    ADD COLUMN attempts            integer NOT NULL DEFAULT 0,
    ADD COLUMN next_check_at       timestamptz,
    ADD COLUMN decided_at          timestamptz,
    ADD COLUMN net_cancel          text,
    ADD COLUMN net_cancel_at       timestamptz,
    ADD COLUMN net_cancel_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN net_cancel_note     text,
    -- a CARD payment always names its PG, a BALANCE one never has card fields
    ADD CONSTRAINT payments_gateway_check CHECK ((method = 'CARD') = (gateway IS NOT NULL)),
    ADD CONSTRAINT payments_card_fields_check CHECK (method = 'CARD'
        OR (transaction_key IS NULL AND card_type IS NULL AND card_last4 IS NULL
            AND reason IS NULL AND net_cancel IS NULL)),
    -- never the whole card number: 4 digits at most
    ADD CONSTRAINT payments_card_last4_check CHECK (card_last4 ~ '^[0-9]{4}$'),
    ADD CONSTRAINT payments_pending_card_check CHECK (status <> 'PENDING' OR method = 'CARD'),
    ADD CONSTRAINT payments_decided_at_check CHECK (method <> 'CARD'
        OR (status = 'PENDING') = (decided_at IS NULL)),
    ADD CONSTRAINT payments_net_cancel_check CHECK (net_cancel IS NULL
        OR (net_cancel = 'REQUIRED' AND status IN ('SUCCESS', 'FAILED'))
        OR (net_cancel = 'DONE' AND status IN ('CANCELLED', 'FAILED'))),
    ADD CONSTRAINT payments_net_cancel_at_check CHECK ((net_cancel IS NULL) = (net_cancel_at IS NULL)),
    ADD CONSTRAINT payments_attempts_check CHECK (attempts >= 0 AND net_cancel_attempts >= 0);

-- Rows are updated a few times (lease, key, decision): leave room for HOT.
ALTER TABLE payments SET (fillfactor = 80);

-- "Paid at most once" counts applied payments only: an approval that arrives
-- for an order paid by another payment is recorded SUCCESS + net_cancel.
DROP INDEX payments_one_success_per_order_idx;
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_id)
    WHERE status = 'SUCCESS' AND net_cancel IS NULL;

-- At most one card payment in flight per order.
CREATE UNIQUE INDEX payments_one_pending_per_order_idx ON payments (order_id)
    WHERE status = 'PENDING';

-- The PG's key: callbacks and status polls find the payment by it.
CREATE UNIQUE INDEX payments_gateway_transaction_key_idx ON payments (gateway, transaction_key)
    WHERE transaction_key IS NOT NULL;

-- Reconciler queue (cm_card_due): pending payments, oldest first.  Partial:
-- as small as the set of payments in flight.
CREATE INDEX payments_pending_created_at_idx ON payments (created_at)
    WHERE status = 'PENDING';

-- Net-cancels still owed (cm_card_cancel_due).
CREATE INDEX payments_net_cancel_idx ON payments (net_cancel_at)
    WHERE net_cancel = 'REQUIRED';

-- Forward-only payment states: the trigger payments_forward_only and its
-- function are in functions/40_payment.sql (they are (re)created after the
-- versioned migrations, once the function exists).

-- Every exchange with a PG.  A log: no foreign keys (a log row must never be
-- refused, and must survive whatever happens to what it points at); bodies
-- are masked again by cm_pg_log whatever the caller did.
CREATE TABLE payment_interface_request_log (
    id            bigserial   PRIMARY KEY,
    payment_id    bigint,
    order_id      bigint,
    gateway       text,
    attempt       integer,
    direction     text        NOT NULL CHECK (direction IN ('OUT', 'IN')),
    operation     text        NOT NULL CHECK (operation IN ('CREATE', 'STATUS', 'LIST', 'CANCEL', 'CALLBACK')),
    method        text,
    url           text,
    http_status   integer,
    latency_ms    integer,
    request_body  text,
    response_body text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- "What happened to payment N": its exchanges in order.
CREATE INDEX payment_interface_request_log_payment_idx
    ON payment_interface_request_log (payment_id, id) WHERE payment_id IS NOT NULL;
-- Retention by time: rows are appended in time order, BRIN is tiny.
CREATE INDEX payment_interface_request_log_created_at_idx
    ON payment_interface_request_log USING brin (created_at);

-- Idempotency-Key (IETF draft) per user.  IN_FLIGHT from cm_idem_begin until
-- cm_idem_finish stores the response (DONE) or drops the key (5xx).
CREATE TABLE idempotency_keys (
    user_id       bigint      NOT NULL,
    idem_key      text        NOT NULL CHECK (idem_key ~ '^[ -~]{1,255}$'),
    route         text        NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
    request_hash  text        NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    state         text        NOT NULL CHECK (state IN ('IN_FLIGHT', 'DONE')),
    http_status   integer     CHECK (http_status BETWEEN 100 AND 599),
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idem_key),
    CHECK ((state = 'DONE') = (http_status IS NOT NULL))
);

-- cm_idem_purge: oldest first.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
