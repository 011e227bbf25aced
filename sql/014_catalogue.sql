-- 014_catalogue: sellers' stores and their managers, the category tree,
-- products with options and variants, sale status, and the stock ledger
-- (issue 11 sections 1 and 2).  See sql/README.md, "Catalogue".
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
-- An existing database upgrades in place: every product gets its default
-- variant (no options) holding its stock, every order item names that
-- variant, and the ledger starts with one INITIAL row per variant.  The
-- triggers that keep products and variants in step come with the function
-- files (functions/15_catalogue.sql), right after this migration.

-- ---------------------------------------------------------------------------
-- Stores: one per seller.  The settlement account number and its holder
-- are personal data: encrypted by the module (cm_pii, the users' keyring),
-- bound to the owner's id (aad "stores.account_number:<owner id>"); the
-- database keeps the ciphertexts and the last 4 digits only (to show it
-- masked).
CREATE TABLE stores (
    id                bigserial   PRIMARY KEY,
    owner_id          bigint      NOT NULL UNIQUE REFERENCES users (id),
    name              text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    bank_code         text        NOT NULL CHECK (bank_code ~ '^[0-9]{3}$'),
    account_number_ct text        NOT NULL CHECK (cm__pii_ct_ok(account_number_ct)),
    account_holder_ct text        NOT NULL CHECK (cm__pii_ct_ok(account_holder_ct)),
    account_last4     text        NOT NULL CHECK (account_last4 ~ '^[0-9]{4}$'),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Managers act for the stores an ADMIN assigned them.  The primary key
-- (store_id, user_id) answers "is this user a manager of this store".
CREATE TABLE store_managers (
    store_id    bigint      NOT NULL REFERENCES stores (id),
    user_id     bigint      NOT NULL REFERENCES users (id),
    assigned_by bigint      NOT NULL REFERENCES users (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, user_id)
);

-- A manager's stores.
CREATE INDEX store_managers_user_id_idx ON store_managers (user_id, store_id);

-- ---------------------------------------------------------------------------
-- Categories: a tree of at most 3 levels.  depth is 1 for a root and its
-- parent's depth + 1 otherwise, held by the composite foreign key to
-- (id, depth) and the CHECKs, so no writer can build a fourth level.
-- Names are unique among siblings (NULLS NOT DISTINCT: among roots too).
CREATE TABLE categories (
    id           bigserial   PRIMARY KEY,
    parent_id    bigint,
    parent_depth smallint,
    depth        smallint    NOT NULL CHECK (depth BETWEEN 1 AND 3),
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 50),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, depth),
    FOREIGN KEY (parent_id, parent_depth) REFERENCES categories (id, depth),
    CHECK ((parent_id IS NULL) = (parent_depth IS NULL)),
    CHECK ((parent_id IS NULL AND depth = 1) OR depth = parent_depth + 1)
);

CREATE UNIQUE INDEX categories_sibling_name_key ON categories (parent_id, name) NULLS NOT DISTINCT;

-- ---------------------------------------------------------------------------
-- Products: a store (NULL: the platform's own, e.g. those from before
-- stores existed), a category, a description, the options, and the sale
-- status.  stock is the sum of the variants' stock and on_sale_variants
-- the number of variants ON_SALE, both kept by the variants' trigger in
-- the transaction that changes a variant.  status is computed by the
-- database from them: STOPPED (the seller stopped it), SOLD_OUT (no
-- variant on sale), ON_SALE.  version counts the seller's edits
-- (optimistic locking of PATCH, sql/README.md).
ALTER TABLE products
    ADD COLUMN store_id         bigint  REFERENCES stores (id),
    ADD COLUMN category_id      bigint  REFERENCES categories (id),
    ADD COLUMN description      text    NOT NULL DEFAULT ''
                                        CHECK (char_length(description) <= 5000),
    ADD COLUMN options          jsonb   NOT NULL DEFAULT '[]'
                                        CHECK (jsonb_typeof(options) = 'array'
                                               AND jsonb_array_length(options) <= 3),
    ADD COLUMN stopped          boolean NOT NULL DEFAULT false,
    ADD COLUMN on_sale_variants integer NOT NULL DEFAULT 0 CHECK (on_sale_variants >= 0),
    ADD COLUMN version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN status           text    GENERATED ALWAYS AS (
        CASE WHEN stopped THEN 'STOPPED'
             WHEN on_sale_variants = 0 THEN 'SOLD_OUT'
             ELSE 'ON_SALE' END) STORED,
    ADD CONSTRAINT products_name_check CHECK (char_length(name) BETWEEN 1 AND 100);

-- A store's products; a category's products.
CREATE INDEX products_store_id_idx ON products (store_id, id) WHERE store_id IS NOT NULL;
CREATE INDEX products_category_id_idx ON products (category_id, id) WHERE category_id IS NOT NULL;
-- The buyers' list: the products not STOPPED, by id.
CREATE INDEX products_listed_idx ON products (id) WHERE NOT stopped;

-- ---------------------------------------------------------------------------
-- Variants: one per combination of option values (option_values in the
-- order of the product's options; '{}' for the default variant of a
-- product without options).  stock never goes negative (CHECK); status is
-- computed from stopped and stock in the statement that changes them, so
-- SOLD_OUT at 0 and ON_SALE after a restock cannot be forgotten.
CREATE TABLE product_variants (
    id            bigserial   PRIMARY KEY,
    product_id    bigint      NOT NULL REFERENCES products (id),
    sku           text        CHECK (sku ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    option_values text[]      NOT NULL DEFAULT '{}'
                              CHECK (cardinality(option_values) <= 3
                                     AND array_position(option_values, NULL) IS NULL),
    price_delta   bigint      NOT NULL DEFAULT 0
                              CHECK (price_delta BETWEEN -1000000000000 AND 1000000000000),
    stock         integer     NOT NULL CHECK (stock >= 0),
    stopped       boolean     NOT NULL DEFAULT false,
    status        text        GENERATED ALWAYS AS (
        CASE WHEN stopped THEN 'STOPPED'
             WHEN stock = 0 THEN 'SOLD_OUT'
             ELSE 'ON_SALE' END) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (product_id, option_values),
    UNIQUE (product_id, sku)
) WITH (fillfactor = 50);

-- A product's variants by id (documents, locks in id order).
CREATE INDEX product_variants_product_id_idx ON product_variants (product_id, id);

-- Every product that exists gets its default variant with its stock.
INSERT INTO product_variants (product_id, stock, created_at, updated_at)
SELECT p.id, p.stock, p.created_at, p.updated_at
  FROM products p
 ORDER BY p.id;

UPDATE products p SET on_sale_variants = CASE WHEN p.stock > 0 THEN 1 ELSE 0 END;

-- ---------------------------------------------------------------------------
-- The stock ledger: every change of a variant's stock, with who, why, the
-- delta and the stock after it.  Written by the variants' trigger
-- (functions/15_catalogue.sql), so no writer, not even an operator in
-- psql, changes stock without its row; the reason and actor come from the
-- transaction's settings (commerce.stock_reason, _actor, _order, _note)
-- that the functions set, OPERATOR when none did.
CREATE TABLE stock_movements (
    id          bigserial   PRIMARY KEY,
    variant_id  bigint      NOT NULL REFERENCES product_variants (id),
    product_id  bigint      NOT NULL,
    reason      text        NOT NULL CHECK (reason IN ('INITIAL', 'ORDER', 'ORDER_EXPIRED',
                                                       'PAYMENT_FAILED', 'SELLER_SET',
                                                       'SELLER_ADJUST', 'OPERATOR')),
    delta       integer     NOT NULL,
    stock_after integer     NOT NULL CHECK (stock_after >= 0),
    actor_id    bigint,
    order_id    bigint,
    note        text        CHECK (char_length(note) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (delta <> 0 OR reason = 'INITIAL'),
    CHECK (reason NOT IN ('ORDER', 'ORDER_EXPIRED', 'PAYMENT_FAILED') OR order_id IS NOT NULL)
);

-- A variant's history in order (the last row's stock_after is its stock).
CREATE INDEX stock_movements_variant_id_idx ON stock_movements (variant_id, id);
-- Retention, like the other logs.
CREATE INDEX stock_movements_created_at_idx ON stock_movements USING brin (created_at);

INSERT INTO stock_movements (variant_id, product_id, reason, delta, stock_after, created_at)
SELECT v.id, v.product_id, 'INITIAL', v.stock, v.stock, v.created_at
  FROM product_variants v
 ORDER BY v.id;

-- ---------------------------------------------------------------------------
-- Order items name their variant (and keep a snapshot of its option
-- values, like the name and the unit price).  An order may hold several
-- variants of one product: the key becomes (order_id, variant_id).
ALTER TABLE order_items
    ADD COLUMN variant_id    bigint REFERENCES product_variants (id),
    ADD COLUMN option_values text[] NOT NULL DEFAULT '{}';

UPDATE order_items i
   SET variant_id = v.id
  FROM product_variants v
 WHERE v.product_id = i.product_id AND v.option_values = '{}';

ALTER TABLE order_items
    ALTER COLUMN variant_id SET NOT NULL,
    DROP CONSTRAINT order_items_pkey,
    ADD PRIMARY KEY (order_id, variant_id);

-- ---------------------------------------------------------------------------
-- Audit: stores, managers and the sellers' changes of products.  The list
-- keeps EVENT_REPLAY of 012_outbox.sql (applied before this file).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check
    CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH', 'REFRESH_REUSE', 'LOGOUT',
                     'WITHDRAW', 'ROLE_CHANGE', 'EVENT_REPLAY', 'STORE_CREATE', 'MANAGER_ASSIGN',
                     'PRODUCT_CREATE', 'PRODUCT_UPDATE', 'VARIANT_UPDATE', 'CATEGORY_CHANGE'));

-- The product document of before (functions/10_catalog.sql) is replaced by
-- cm__product_doc (functions/15_catalogue.sql).
DROP FUNCTION IF EXISTS cm__product_json(bigint, text, bigint, int);
-- The order item of before: cm__order_item_json (functions/30_order.sql).
DROP FUNCTION IF EXISTS cm__item_json(bigint, text, int, bigint, bigint);
