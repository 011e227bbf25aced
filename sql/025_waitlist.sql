-- 025_waitlist: the first-come restock queue (issue 12 section 4).  A buyer
-- waits for a SOLD_OUT variant; stock that comes back (a seller's restock,
-- an order cancelled, expired or failed) is held for the waiting entries in
-- arrival order (functions/76_waitlist.sql).  Held units are out of the
-- variant's stock, with their own ledger reasons.
--
-- status: WAITING (in line), HELD (held units reserved for it until
-- held_at + commerce_waitlist_hold), ORDERED (its holder ordered the
-- variant), EXPIRED (the hold ran out), LEFT (the buyer left).
CREATE TABLE waitlist_entries (
    id          bigserial   PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id),
    -- a deleted product (one nobody ordered) takes its line with it
    product_id  bigint      NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    variant_id  bigint      NOT NULL REFERENCES product_variants (id) ON DELETE CASCADE,
    quantity    integer     NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    status      text        NOT NULL DEFAULT 'WAITING'
                            CHECK (status IN ('WAITING', 'HELD', 'ORDERED', 'EXPIRED', 'LEFT')),
    held        integer     NOT NULL DEFAULT 0 CHECK (held >= 0),
    held_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- a hold is 1..quantity units with its start; nothing else holds any
    CHECK ((status = 'HELD') = (held > 0)),
    CHECK (status <> 'HELD' OR held_at IS NOT NULL),
    CHECK (held <= quantity)
);

-- One live entry per buyer and variant (WAITLIST_DUPLICATE).
CREATE UNIQUE INDEX waitlist_entries_live_idx ON waitlist_entries (user_id, variant_id)
    WHERE status IN ('WAITING', 'HELD');
-- The line of a variant, in arrival order.
CREATE INDEX waitlist_entries_line_idx ON waitlist_entries (variant_id, id)
    WHERE status = 'WAITING';
-- The holds, oldest first (the expiry job).
CREATE INDEX waitlist_entries_held_idx ON waitlist_entries (held_at)
    WHERE status = 'HELD';
-- A buyer's entries, newest first.
CREATE INDEX waitlist_entries_user_idx ON waitlist_entries (user_id, id);

-- The ledger's reasons: those of 014 and the queue's two.  WAITLIST_HOLD
-- takes units out of the variant for a hold; WAITLIST_RELEASE gives a
-- hold's units back (ordered by its holder, left, expired).
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_reason_check;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_reason_check
    CHECK (reason IN ('INITIAL', 'ORDER', 'ORDER_EXPIRED', 'PAYMENT_FAILED', 'SELLER_SET',
                      'SELLER_ADJUST', 'OPERATOR', 'WAITLIST_HOLD', 'WAITLIST_RELEASE'));
