-- 019_cart_addresses: the cart and the address book (issue 12 sections 1
-- and 2).  Functions in functions/18_cart.sql.
--
-- The cart: one carts row per user who ever put something in it (the row
-- every writer of the cart locks first), and its lines.  A line names a
-- variant at most once (the primary key: two concurrent PUTs of one
-- variant cannot make two lines) and holds one of the slots 1..100,
-- unique per user: whatever writes the rows, a cart cannot hold more than
-- 100 lines (the pigeonhole, as user_coupons' seq).  price_at_add is the
-- variant's price when the line was last set, to flag a price change.
CREATE TABLE carts (
    user_id    bigint      PRIMARY KEY REFERENCES users (id),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    user_id      bigint      NOT NULL REFERENCES carts (user_id),
    variant_id   bigint      NOT NULL REFERENCES product_variants (id),
    slot         smallint    NOT NULL CHECK (slot BETWEEN 1 AND 100),
    quantity     integer     NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    price_at_add bigint      NOT NULL CHECK (price_at_add >= 0),
    added_at     timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, variant_id),
    CONSTRAINT cart_items_slot_key UNIQUE (user_id, slot)
);

-- The address book: at most 10 entries per user (slot 1..10, unique per
-- user), at most one default (the partial unique index; the functions keep
-- exactly one whenever the book is not empty).  recipient, phone,
-- address1, address2 and memo are cm_pii ciphertexts (the module encrypts
-- them, bound to the column and the user's id, like stores' accounts);
-- the zip code is kept in clear (5 digits, a delivery zone, not a person).
CREATE TABLE user_addresses (
    id           bigserial   PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    slot         smallint    NOT NULL CHECK (slot BETWEEN 1 AND 10),
    recipient_ct text        NOT NULL,
    phone_ct     text        NOT NULL,
    zip_code     text        NOT NULL CHECK (zip_code ~ '^[0-9]{5}$'),
    address1_ct  text        NOT NULL,
    address2_ct  text,
    memo_ct      text,
    is_default   boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_addresses_slot_key UNIQUE (user_id, slot),
    CONSTRAINT user_addresses_pii_ct_check CHECK (
        cm__pii_ct_ok(recipient_ct) AND cm__pii_ct_ok(phone_ct) AND cm__pii_ct_ok(address1_ct)
        AND cm__pii_ct_ok(address2_ct) AND cm__pii_ct_ok(memo_ct))
);

CREATE UNIQUE INDEX user_addresses_one_default_idx ON user_addresses (user_id) WHERE is_default;
