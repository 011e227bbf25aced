-- 029_refunds: cancellations, returns and refunds (issue 13 section 3),
-- over the shared schema of 027_fulfilment.sql.  Functions:
-- functions/72_refund.sql.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- ---------------------------------------------------------------------------
-- The ledger's reasons: those of 014 and 025, and the two of this issue's
-- section 3.  ORDER_CANCELLED gives a cancelled (paid or unpaid) order's
-- or part's units back; RETURN_RESTOCK puts the undamaged units of a
-- received return back on sale (the seller says how many).
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_reason_check;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_reason_check
    CHECK (reason IN ('INITIAL', 'ORDER', 'ORDER_EXPIRED', 'PAYMENT_FAILED', 'SELLER_SET',
                      'SELLER_ADJUST', 'OPERATOR', 'WAITLIST_HOLD', 'WAITLIST_RELEASE',
                      'ORDER_CANCELLED', 'RETURN_RESTOCK'));

-- ---------------------------------------------------------------------------
-- A return's units, per ordered variant; restocked: how many of them the
-- seller put back on sale (the others were damaged), set once.
ALTER TABLE order_returns
    ADD COLUMN decision_note text CHECK (char_length(decision_note) BETWEEN 1 AND 500),
    ADD COLUMN restocked_at  timestamptz,
    ADD CONSTRAINT order_returns_restock_check
        CHECK (restocked_at IS NULL OR status IN ('RECEIVED', 'REFUNDED'));

CREATE TABLE order_return_items (
    return_id   bigint  NOT NULL REFERENCES order_returns (id) ON DELETE CASCADE,
    variant_id  bigint  NOT NULL REFERENCES product_variants (id),
    product_id  bigint  NOT NULL,
    quantity    integer NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    amount      bigint  NOT NULL CHECK (amount >= 0),
    restocked   integer CHECK (restocked BETWEEN 0 AND quantity),
    PRIMARY KEY (return_id, variant_id)
);

-- ---------------------------------------------------------------------------
-- Gateway cancels (CARD, EASY_PAY, TRANSFER refunds) are carried out by
-- the refund job: attempts counted when handed out, next_attempt_at the
-- lease and then the backoff; note: the gateway's last answer.
ALTER TABLE refunds
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN note            text CHECK (char_length(note) <= 200),
    ADD CONSTRAINT refunds_gateway_pending_check
        CHECK (status <> 'PENDING' OR method IN ('CARD', 'EASY_PAY', 'TRANSFER'));

DROP INDEX refunds_pending_idx;
CREATE INDEX refunds_pending_idx ON refunds (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX refunds_payment_idx ON refunds (payment_id) WHERE payment_id IS NOT NULL;
