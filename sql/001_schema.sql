-- 001_schema: users, products, orders, order items, payments, balance ledger.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
-- Amounts are integer KRW in bigint.  CHECK constraints make the invariants
-- (no negative balance or stock, consistent order amounts) impossible to
-- violate whatever the caller does; the functions (sql/functions/) raise
-- business errors before a CHECK would fire.

-- users and products are small and their rows are updated by every charge,
-- payment and order (balance, stock).  fillfactor leaves room on each page
-- so those updates stay HOT (no new index entries, no index bloat).

-- Users: the id is the JWT `sub`, so it is supplied, not generated.
CREATE TABLE users (
    id         bigint      PRIMARY KEY,
    name       text        NOT NULL,
    balance    bigint      NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

CREATE TABLE products (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL,
    price      bigint      NOT NULL CHECK (price >= 0 AND price <= 1000000000000),
    stock      integer     NOT NULL CHECK (stock >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);

CREATE TABLE orders (
    id              bigserial   PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id),
    status          text        NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS',
                                                           'PAID', 'PAYMENT_FAILED', 'CANCELLED')),
    total_amount    bigint      NOT NULL CHECK (total_amount >= 0),
    discount_amount bigint      NOT NULL DEFAULT 0 CHECK (discount_amount >= 0),
    payment_amount  bigint      NOT NULL CHECK (payment_amount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (discount_amount <= total_amount),
    CHECK (payment_amount = total_amount - discount_amount)
);

-- Orders of a user (FK from users, "my orders" listings later).
CREATE INDEX orders_user_id_idx ON orders (user_id, id);

-- Expiry job: oldest unpaid orders first.  Partial, so it stays as small as
-- the set of pending orders however large the table grows.
CREATE INDEX orders_pending_created_at_idx ON orders (created_at)
    WHERE status = 'PENDING_PAYMENT';

-- Lines of an order; the primary key (order_id, product_id) serves the
-- "items of an order, by product id" lookup.  name and unit_price are
-- snapshots of the product at order time.
CREATE TABLE order_items (
    order_id   bigint  NOT NULL REFERENCES orders (id),
    product_id bigint  NOT NULL REFERENCES products (id),
    name       text    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 999),
    unit_price bigint  NOT NULL CHECK (unit_price >= 0),
    amount     bigint  NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (order_id, product_id),
    CHECK (amount = unit_price * quantity)
);

CREATE TABLE payments (
    id         bigserial   PRIMARY KEY,
    order_id   bigint      NOT NULL REFERENCES orders (id),
    method     text        NOT NULL CHECK (method IN ('BALANCE', 'CARD')),
    status     text        NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILED', 'CANCELLED')),
    amount     bigint      NOT NULL CHECK (amount > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Latest payment of an order (ORDER BY id DESC LIMIT 1).
CREATE INDEX payments_order_id_idx ON payments (order_id, id);

-- An order is paid at most once.
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_id)
    WHERE status = 'SUCCESS';

-- Every balance movement with the balance after it (the transaction log).
-- amount is signed: + CHARGE / REFUND, - PAYMENT.
CREATE TABLE balance_ledger (
    id            bigserial   PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES users (id),
    kind          text        NOT NULL CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND')),
    amount        bigint      NOT NULL,
    balance_after bigint      NOT NULL CHECK (balance_after >= 0),
    order_id      bigint      REFERENCES orders (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'PAYMENT' AND amount < 0) OR (kind IN ('CHARGE', 'REFUND') AND amount > 0)),
    CHECK (kind = 'CHARGE' OR order_id IS NOT NULL)
);

-- A user's history, newest first / replay in order.
CREATE INDEX balance_ledger_user_id_idx ON balance_ledger (user_id, id);
