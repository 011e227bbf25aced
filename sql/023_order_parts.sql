-- 023_order_parts: an order's seller parts (sub-orders) and its shipping
-- address (issue 12 section 2).  Functions in functions/98_parts.sql.
--
-- A part is the share of one seller's store in an order (store_id NULL:
-- the platform's own products), made in the order's transaction.  Its
-- amounts are the order's split by store: the parts of an order sum
-- exactly to the order's total, discount and payment amounts
-- (cm__order_parts_make allocates the coupon's discount; t/174 checks the
-- sums).  status follows the order's (a trigger) until issue 13 gives
-- parts their own shipping states.  Orders made before this migration
-- have no parts.  A part goes with its order (ON DELETE CASCADE), which
-- is kept 5 years (90_retention.sql): an operator archiving an old order
-- deletes its items, then the order.
CREATE TABLE order_parts (
    id              bigserial   PRIMARY KEY,
    order_id        bigint      NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    store_id        bigint      REFERENCES stores (id),
    status          text        NOT NULL,
    total_amount    bigint      NOT NULL CHECK (total_amount >= 0),
    discount_amount bigint      NOT NULL CHECK (discount_amount BETWEEN 0 AND total_amount),
    payment_amount  bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_parts_amounts_check CHECK (payment_amount = total_amount - discount_amount),
    CONSTRAINT order_parts_store_key UNIQUE NULLS NOT DISTINCT (order_id, store_id)
);

-- A store's parts, newest first (the sellers' list).
CREATE INDEX order_parts_store_idx ON order_parts (store_id, id DESC) WHERE store_id IS NOT NULL;

ALTER TABLE order_items ADD COLUMN part_id bigint REFERENCES order_parts (id);
CREATE INDEX order_items_part_id_idx ON order_items (part_id) WHERE part_id IS NOT NULL;

-- The shipping address of an order: the buyer's address book entry at
-- ordering time, or the one given with the order.  recipient, phone,
-- address1, address2 and memo are cm_pii ciphertexts, sealed by the
-- module to a column and a row: sealed_in names the table whose column
-- names they were sealed under and sealed_id the row (an address given
-- with the order: this table and this row's id; the address book's
-- default: copied as they are, user_addresses and its id).  The zip code
-- is in clear, as in the book.  A withdrawal deletes the user's rows; the
-- orders keep their amounts.
CREATE TABLE order_addresses (
    id           bigserial   PRIMARY KEY,
    order_id     bigint      NOT NULL UNIQUE REFERENCES orders (id) ON DELETE CASCADE,
    user_id      bigint      NOT NULL REFERENCES users (id),
    sealed_in    text        NOT NULL CHECK (sealed_in IN ('order_addresses', 'user_addresses')),
    sealed_id    bigint      NOT NULL,
    recipient_ct text        NOT NULL,
    phone_ct     text        NOT NULL,
    zip_code     text        NOT NULL CHECK (zip_code ~ '^[0-9]{5}$'),
    address1_ct  text        NOT NULL,
    address2_ct  text,
    memo_ct      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT order_addresses_pii_ct_check CHECK (
        cm__pii_ct_ok(recipient_ct) AND cm__pii_ct_ok(phone_ct) AND cm__pii_ct_ok(address1_ct)
        AND cm__pii_ct_ok(address2_ct) AND cm__pii_ct_ok(memo_ct))
);

CREATE INDEX order_addresses_user_id_idx ON order_addresses (user_id);
