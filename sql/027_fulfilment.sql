-- 027_fulfilment: the shared schema of issue 13 (fulfilment and money
-- out).  Three parts of the module build on it, each with its own
-- migration and function file for what only it uses:
--   shipping and purchase confirmation (028, functions/7x_shipping.sql),
--   cancellations, returns and refunds (029),
--   settlement and payouts (030).
-- This file holds what more than one of them reads or writes.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- ---------------------------------------------------------------------------
-- An order part's own states.  Until it is paid a part follows its order
-- (trigger orders_parts_status, functions/98_parts.sql: a part moves with
-- the order only from the order's old status, so a part that went its own
-- way, PREPARING or a part cancelled alone, stays).  After PAID the
-- seller moves it forward: PAID -> PREPARING -> SHIPPED -> DELIVERED ->
-- PURCHASE_CONFIRMED; CANCELLED before it ships.  Each step stamps its
-- time.  refunded_amount is what was given back of the part's payment
-- amount, across every method (refunds below): never more than was paid.
ALTER TABLE order_parts
    ADD COLUMN prepared_at     timestamptz,
    ADD COLUMN shipped_at      timestamptz,
    ADD COLUMN delivered_at    timestamptz,
    ADD COLUMN confirmed_at    timestamptz,
    ADD COLUMN cancelled_at    timestamptz,
    ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT order_parts_status_check
        CHECK (status IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS', 'WAITING_FOR_DEPOSIT',
                          'PAID', 'PAYMENT_FAILED', 'CANCELLED',
                          'PREPARING', 'SHIPPED', 'DELIVERED', 'PURCHASE_CONFIRMED')),
    ADD CONSTRAINT order_parts_refunded_check
        CHECK (refunded_amount BETWEEN 0 AND payment_amount),
    ADD CONSTRAINT order_parts_steps_check
        CHECK ((status NOT IN ('PREPARING', 'SHIPPED', 'DELIVERED', 'PURCHASE_CONFIRMED')
                OR prepared_at IS NOT NULL)
           AND (status NOT IN ('SHIPPED', 'DELIVERED', 'PURCHASE_CONFIRMED') OR shipped_at IS NOT NULL)
           AND (status NOT IN ('DELIVERED', 'PURCHASE_CONFIRMED') OR delivered_at IS NOT NULL)
           AND ((status = 'PURCHASE_CONFIRMED') = (confirmed_at IS NOT NULL)));

-- A store's parts by state (the sellers' list with ?status=).
CREATE INDEX order_parts_store_status_idx ON order_parts (store_id, status, id DESC)
    WHERE store_id IS NOT NULL;
-- Delivered parts waiting for their automatic confirmation.
CREATE INDEX order_parts_delivered_idx ON order_parts (delivered_at)
    WHERE status = 'DELIVERED';
-- Confirmed parts by confirmation time (settlement).
CREATE INDEX order_parts_confirmed_idx ON order_parts (store_id, confirmed_at)
    WHERE status = 'PURCHASE_CONFIRMED';

-- ---------------------------------------------------------------------------
-- A buyer's return of (some units of) a delivered part.  REQUESTED by the
-- buyer, APPROVED or REJECTED by the seller; an approved return's parcel
-- comes back through a carrier (a shipment with return_id); when the
-- carrier shows it delivered the return is RECEIVED and its refund runs,
-- then REFUNDED.  029 adds what else it needs (its items).
CREATE TABLE order_returns (
    id          bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    part_id     bigint      NOT NULL REFERENCES order_parts (id) ON DELETE CASCADE,
    user_id     bigint      NOT NULL REFERENCES users (id),
    status      text        NOT NULL
                            CHECK (status IN ('REQUESTED', 'APPROVED', 'REJECTED', 'RECEIVED', 'REFUNDED')),
    reason      text        NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    amount      bigint      NOT NULL CHECK (amount >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    received_at timestamptz,
    refunded_at timestamptz,
    CHECK ((status = 'REQUESTED') = (decided_at IS NULL)),
    CHECK (status NOT IN ('RECEIVED', 'REFUNDED') OR received_at IS NOT NULL),
    CHECK ((status = 'REFUNDED') = (refunded_at IS NOT NULL))
);

CREATE INDEX order_returns_part_idx ON order_returns (part_id);
CREATE INDEX order_returns_order_idx ON order_returns (order_id);
-- At most one open return per part at a time.
CREATE UNIQUE INDEX order_returns_open_idx ON order_returns (part_id)
    WHERE status IN ('REQUESTED', 'APPROVED', 'RECEIVED');

-- ---------------------------------------------------------------------------
-- A parcel a carrier tracks: a part going out (return_id NULL) or a
-- return coming back.  level is the carrier's (Sweet Tracker's 1..6, 6 =
-- delivered); it only moves forward.  registered_at: the carrier
-- acknowledged the push registration.  last_event_at: the newest carrier
-- event seen (pushed or pulled); the poll job looks at shipments whose
-- events stopped.
CREATE TABLE shipments (
    id              bigserial   PRIMARY KEY,
    part_id         bigint      NOT NULL REFERENCES order_parts (id) ON DELETE CASCADE,
    return_id       bigint      REFERENCES order_returns (id) ON DELETE CASCADE,
    carrier         text        NOT NULL CHECK (carrier IN ('CJ', 'LOTTE', 'HANJIN')),
    tracking_number text        NOT NULL CHECK (tracking_number ~ '^[0-9]{9,14}$'),
    level           smallint    NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 6),
    registered_at   timestamptz,
    last_event_at   timestamptz,
    polled_at       timestamptz,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT shipments_tracking_key UNIQUE (carrier, tracking_number),
    CHECK ((level = 6) = (delivered_at IS NOT NULL))
);

-- One outgoing parcel per part, one parcel per return.
CREATE UNIQUE INDEX shipments_part_out_idx ON shipments (part_id) WHERE return_id IS NULL;
CREATE UNIQUE INDEX shipments_return_idx ON shipments (return_id) WHERE return_id IS NOT NULL;
-- Parcels still travelling, by their last news (the poll job).
CREATE INDEX shipments_open_idx ON shipments (coalesce(last_event_at, created_at))
    WHERE level < 6;

-- ---------------------------------------------------------------------------
-- Money given back to a buyer: one row per method of one refund (a
-- cancellation of an order or of parts, or a return).  BALANCE and POINTS
-- are given back in the refund's transaction (DONE at once, with their
-- ledger rows); CARD and EASY_PAY through the gateway's cancel (PENDING
-- until it answers, the interface log records it).  The sum of a part's
-- rows that are not FAILED is its refunded_amount (checked by the suite's
-- reconciliation query).  settled_in: the settlement whose payout it was
-- deducted from (030 adds the foreign key).
CREATE TABLE refunds (
    id          bigserial   PRIMARY KEY,
    order_id    bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    part_id     bigint      NOT NULL REFERENCES order_parts (id) ON DELETE CASCADE,
    return_id   bigint      REFERENCES order_returns (id) ON DELETE CASCADE,
    payment_id  bigint      REFERENCES payments (id),
    kind        text        NOT NULL CHECK (kind IN ('CANCEL', 'RETURN')),
    method      text        NOT NULL
                            CHECK (method IN ('BALANCE', 'POINTS', 'CARD', 'EASY_PAY', 'TRANSFER')),
    amount      bigint      NOT NULL CHECK (amount > 0),
    status      text        NOT NULL CHECK (status IN ('PENDING', 'DONE', 'FAILED')),
    settled_in  bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    CHECK ((status = 'PENDING') = (done_at IS NULL)),
    CHECK (kind <> 'RETURN' OR return_id IS NOT NULL)
);

CREATE INDEX refunds_order_idx ON refunds (order_id);
CREATE INDEX refunds_part_idx ON refunds (part_id);
-- Gateway cancels still waiting for their answer (the retry job).
CREATE INDEX refunds_pending_idx ON refunds (created_at) WHERE status = 'PENDING';
