-- cart and address book: a buyer's cart lines and shipping addresses
-- (issue 12 sections 1 and 2; tables in 019_cart_addresses.sql).
-- Repeatable file: see 00_common.sql.
--
-- Every writer of a cart locks its carts row first (FOR NO KEY UPDATE),
-- so the writes of one cart queue there and each sees the lines the
-- previous one committed; the slot it takes (1..100, unique per user) and
-- the primary key (user, variant) hold the limit and "one line per
-- variant" in the table itself.  Every writer of an address book locks
-- the user's row (FOR NO KEY UPDATE, as a balance change does): the slot
-- (1..10) and the partial unique index of the default hold the rest.
--
-- Lock order: user (FOR KEY SHARE for the cart, FOR NO KEY UPDATE for the
-- address book) -> carts row -> lines.  Variants and products are only
-- read (a cart reserves nothing).  A withdrawal (cm_user_withdraw) locks
-- the user FOR UPDATE and then deletes the cart and the addresses: a
-- concurrent writer waits for it and then finds the user withdrawn
-- (USER_NOT_FOUND).

-- ---------------------------------------------------------------------------
-- Helpers

-- USER_NOT_FOUND unless p_user is ACTIVE; locks the row FOR NO KEY UPDATE
-- (p_update: the address book's writers queue on it) or FOR KEY SHARE.
-- Business errors go through cm__not_found and cm__conflict
-- (15_catalogue.sql).
CREATE OR REPLACE FUNCTION cm__cart_user(p_user bigint, p_update boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_update THEN
        PERFORM FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE' FOR NO KEY UPDATE;
    ELSE
        PERFORM FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE' FOR KEY SHARE;
    END IF;
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;
END
$$;

-- The lowest of 1..p_max not in p_used, or NULL: a new row's slot (the
-- caller holds the lock that makes p_used exact).
CREATE OR REPLACE FUNCTION cm__free_slot(p_used smallint[], p_max int) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT min(s) FROM generate_series(1, p_max) s WHERE s <> ALL (p_used)
$$;

-- ---------------------------------------------------------------------------
-- The cart

-- The cart document, read at the time of the call:
-- {"items":[{"variantId","productId","name","optionValues","quantity",
--   "unitPrice","priceAtAdd","amount","stock","status","flags":[..],
--   "orderable","addedAt"}], newest line first,
--  "lineCount","orderableCount","totalQuantity","totalAmount"}
-- status is the line's: STOPPED (the product or the variant), SOLD_OUT
-- (stock 0), ON_SALE.  flags: STOPPED | SOLD_OUT, INSUFFICIENT_STOCK (on
-- sale, but quantity > stock), PRICE_CHANGED (unitPrice <> priceAtAdd).
-- A line is orderable when ON_SALE with quantity <= stock (a changed
-- price does not stop it: the current price is the one shown and
-- counted); the totals count orderable lines only, at the current price.
CREATE OR REPLACE FUNCTION cm_cart_get(p_user bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_user IS NULL OR p_user < 1 THEN
        PERFORM cm__invalid('bad user');
    END IF;

    WITH l AS (
        SELECT c.variant_id, v.product_id, p.name, v.option_values, c.quantity,
               c.price_at_add, p.price + v.price_delta AS unit_price, v.stock, c.added_at,
               CASE WHEN p.stopped OR v.stopped THEN 'STOPPED'
                    WHEN v.stock = 0 THEN 'SOLD_OUT'
                    ELSE 'ON_SALE' END AS status
          FROM cart_items c
          JOIN product_variants v ON v.id = c.variant_id
          JOIN products p ON p.id = v.product_id
         WHERE c.user_id = p_user
    ), f AS (
        SELECT l.*,
               (l.status = 'ON_SALE' AND l.quantity <= l.stock) AS orderable,
               array_remove(ARRAY[
                   CASE WHEN l.status <> 'ON_SALE' THEN l.status END,
                   CASE WHEN l.status = 'ON_SALE' AND l.quantity > l.stock
                        THEN 'INSUFFICIENT_STOCK' END,
                   CASE WHEN l.unit_price <> l.price_at_add THEN 'PRICE_CHANGED' END],
                   NULL) AS flags
          FROM l
    )
    SELECT '{"items":[' || coalesce(string_agg(
               '{"variantId":' || f.variant_id || ',"productId":' || f.product_id
               || ',"name":' || to_json(f.name)::text
               || ',"optionValues":' || to_json(f.option_values)::text
               || ',"quantity":' || f.quantity || ',"unitPrice":' || f.unit_price
               || ',"priceAtAdd":' || f.price_at_add
               || ',"amount":' || (f.unit_price * f.quantity)
               || ',"stock":' || f.stock || ',"status":"' || f.status
               || '","flags":' || to_json(f.flags)::text
               || ',"orderable":' || f.orderable
               || ',"addedAt":"' || cm__ts(f.added_at) || '"}',
               ',' ORDER BY f.added_at DESC, f.variant_id DESC), '')
        || '],"lineCount":' || count(*)
        || ',"orderableCount":' || count(*) FILTER (WHERE f.orderable)
        || ',"totalQuantity":' || coalesce(sum(f.quantity) FILTER (WHERE f.orderable), 0)
        || ',"totalAmount":' || coalesce(sum(f.unit_price * f.quantity) FILTER (WHERE f.orderable), 0)
        || '}'
      INTO v_doc
      FROM f;
    RETURN v_doc;
END
$$;

-- Puts p_quantity (1..999) of variant p_variant in p_user's cart: a new
-- line, or the line's quantity set (and its priceAtAdd set to the
-- current price: the buyer set it looking at that price, so a
-- PRICE_CHANGED flag clears).  The variant must be orderable now:
-- STOPPED (it or its product) is PRODUCT_NOT_ON_SALE, a stock below the
-- quantity (SOLD_OUT included) OUT_OF_STOCK; nothing is reserved.  A 101st
-- line is CART_FULL.  -> the cart document
-- Errors, in this order: INVALID_REQUEST, USER_NOT_FOUND, VARIANT_NOT_FOUND,
-- PRODUCT_NOT_ON_SALE, OUT_OF_STOCK, CART_FULL.
CREATE OR REPLACE FUNCTION cm_cart_put(p_user bigint, p_variant bigint, p_quantity int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_price   bigint;
    v_stock   int;
    v_stopped boolean;
    v_slot    int;
BEGIN
    IF p_user IS NULL OR p_user < 1 OR p_variant IS NULL OR p_variant < 1 THEN
        PERFORM cm__invalid('bad user or variant');
    END IF;
    IF p_quantity IS NULL OR p_quantity NOT BETWEEN 1 AND 999 THEN
        PERFORM cm__invalid('quantity must be between 1 and 999');
    END IF;

    PERFORM cm__cart_user(p_user, false);

    SELECT p.price + v.price_delta, v.stock, p.stopped OR v.stopped
      INTO v_price, v_stock, v_stopped
      FROM product_variants v JOIN products p ON p.id = v.product_id
     WHERE v.id = p_variant;
    IF NOT FOUND THEN
        PERFORM cm__not_found('VARIANT_NOT_FOUND', 'variant', p_variant);
    END IF;
    IF v_stopped THEN
        PERFORM cm__conflict('PRODUCT_NOT_ON_SALE', format('variant %s is not on sale', p_variant));
    END IF;
    IF v_stock < p_quantity THEN
        PERFORM cm__conflict('OUT_OF_STOCK',
            format('variant %s has %s in stock', p_variant, v_stock));
    END IF;

    -- the cart's row, then its lock: the writers of this cart queue here
    INSERT INTO carts (user_id) VALUES (p_user) ON CONFLICT (user_id) DO NOTHING;
    UPDATE carts SET updated_at = now() WHERE user_id = p_user;

    UPDATE cart_items
       SET quantity = p_quantity, price_at_add = v_price, updated_at = now()
     WHERE user_id = p_user AND variant_id = p_variant;

    IF NOT FOUND THEN
        -- the lowest free slot, exact under the cart's lock
        v_slot := cm__free_slot(ARRAY(SELECT c.slot FROM cart_items c WHERE c.user_id = p_user),
                                100);
        IF v_slot IS NULL THEN
            PERFORM cm__conflict('CART_FULL', 'a cart holds at most 100 lines');
        END IF;

        INSERT INTO cart_items (user_id, variant_id, slot, quantity, price_at_add)
        VALUES (p_user, p_variant, v_slot, p_quantity, v_price);
    END IF;

    RETURN cm_cart_get(p_user);
END
$$;

-- Removes p_user's line of p_variant. -> '' | CART_ITEM_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_cart_remove(p_user bigint, p_variant bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_user IS NULL OR p_user < 1 OR p_variant IS NULL OR p_variant < 1 THEN
        PERFORM cm__invalid('bad user or variant');
    END IF;

    DELETE FROM cart_items WHERE user_id = p_user AND variant_id = p_variant;
    IF NOT FOUND THEN
        PERFORM cm__conflict('CART_ITEM_NOT_FOUND',
            format('variant %s is not in the cart', p_variant));
    END IF;
    RETURN '';
END
$$;

-- Empties p_user's cart (nothing to empty is fine). -> ''
CREATE OR REPLACE FUNCTION cm_cart_clear(p_user bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_user IS NULL OR p_user < 1 THEN
        PERFORM cm__invalid('bad user');
    END IF;

    DELETE FROM cart_items WHERE user_id = p_user;
    RETURN '';
END
$$;

-- ---------------------------------------------------------------------------
-- The address book
--
-- The module encrypts recipient, phone, address1, address2 and memo, bound
-- to the column and the address's id; these functions see ciphertexts only and answer them as *Ct fields, which the
-- module decrypts for the owner:
-- {"id","recipientCt","phoneCt","zipCode","address1Ct","address2Ct"|null,
--  "memoCt"|null,"isDefault","createdAt","updatedAt"}

CREATE OR REPLACE FUNCTION cm__address_doc(a user_addresses) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || a.id || ',"recipientCt":"' || a.recipient_ct
        || '","phoneCt":"' || a.phone_ct || '","zipCode":"' || a.zip_code
        || '","address1Ct":"' || a.address1_ct
        || '","address2Ct":' || coalesce('"' || a.address2_ct || '"', 'null')
        || ',"memoCt":' || coalesce('"' || a.memo_ct || '"', 'null')
        || ',"isDefault":' || a.is_default
        || ',"createdAt":"' || cm__ts(a.created_at)
        || '","updatedAt":"' || cm__ts(a.updated_at) || '"}'
$$;

-- {"items":[address..]}: the default first, then the newest first.
CREATE OR REPLACE FUNCTION cm_address_list(p_user bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN '{"items":[' || array_to_string(ARRAY(
        SELECT cm__address_doc(a)
          FROM user_addresses a
         WHERE a.user_id = p_user
         ORDER BY a.is_default DESC, a.id DESC), ',') || ']}';
END
$$;

-- The id of the next address (needed before cm_address_create: the module
-- binds the ciphertexts to the row).
CREATE OR REPLACE FUNCTION cm_address_next_id() RETURNS bigint
LANGUAGE sql AS $$
    SELECT nextval('user_addresses_id_seq')
$$;

-- Adds address p_id (from cm_address_next_id) to p_user's book.  The
-- first address is the default whatever p_default says; p_default true
-- moves the default to the new one (in this transaction).  The 11th is
-- ADDRESS_BOOK_FULL.  p_address2_ct, p_memo_ct: NULL for none.  (The
-- signature of before, without p_id, is dropped.)
-- -> address | INVALID_REQUEST | USER_NOT_FOUND | ADDRESS_BOOK_FULL
DROP FUNCTION IF EXISTS cm_address_create(bigint, text, text, text, text, text, text, boolean);
CREATE OR REPLACE FUNCTION cm_address_create(p_id bigint, p_user bigint, p_recipient_ct text,
                                             p_phone_ct text, p_zip text, p_address1_ct text,
                                             p_address2_ct text, p_memo_ct text, p_default boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_slot    int;
    v_first   boolean;
    v_address user_addresses;
BEGIN
    IF p_id IS NULL OR p_id < 1 OR p_user IS NULL OR p_user < 1
       OR p_recipient_ct IS NULL OR p_phone_ct IS NULL
       OR p_address1_ct IS NULL OR p_zip IS NULL OR p_zip !~ '^[0-9]{5}$' THEN
        PERFORM cm__invalid('recipient, phone, zipCode and address1 are required');
    END IF;

    PERFORM cm__cart_user(p_user, true);

    v_slot := cm__free_slot(ARRAY(SELECT a.slot FROM user_addresses a WHERE a.user_id = p_user),
                            10);
    IF v_slot IS NULL THEN
        PERFORM cm__conflict('ADDRESS_BOOK_FULL', 'an address book holds at most 10 addresses');
    END IF;

    v_first := v_slot = 1 AND NOT EXISTS (SELECT 1 FROM user_addresses a WHERE a.user_id = p_user);
    IF coalesce(p_default, false) AND NOT v_first THEN
        UPDATE user_addresses SET is_default = false, updated_at = now()
         WHERE user_id = p_user AND is_default;
    END IF;

    INSERT INTO user_addresses (id, user_id, slot, recipient_ct, phone_ct, zip_code, address1_ct,
                                address2_ct, memo_ct, is_default)
    VALUES (p_id, p_user, v_slot, p_recipient_ct, p_phone_ct, p_zip, p_address1_ct, p_address2_ct,
            p_memo_ct, v_first OR coalesce(p_default, false))
    RETURNING * INTO v_address;

    RETURN cm__address_doc(v_address);
END
$$;

-- Changes p_user's address p_id: each NULL argument leaves its column as
-- it is; '' clears address2 or memo.  p_default true makes it the default
-- (the old default loses it in this transaction); false on the default is
-- INVALID_REQUEST (there must be one: make another the default instead).
-- -> address | INVALID_REQUEST | USER_NOT_FOUND | ADDRESS_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_address_update(p_user bigint, p_id bigint, p_recipient_ct text,
                                             p_phone_ct text, p_zip text, p_address1_ct text,
                                             p_address2_ct text, p_memo_ct text,
                                             p_default boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_address user_addresses;
BEGIN
    IF p_user IS NULL OR p_user < 1 OR p_id IS NULL OR p_id < 1
       OR (p_zip IS NOT NULL AND p_zip !~ '^[0-9]{5}$') THEN
        PERFORM cm__invalid('bad address');
    END IF;

    PERFORM cm__cart_user(p_user, true);

    SELECT * INTO v_address FROM user_addresses a WHERE a.id = p_id AND a.user_id = p_user;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ADDRESS_NOT_FOUND', 'address', p_id);
    END IF;
    IF p_default IS NOT NULL AND NOT p_default AND v_address.is_default THEN
        PERFORM cm__invalid('isDefault: make another address the default instead');
    END IF;

    IF p_default AND NOT v_address.is_default THEN
        UPDATE user_addresses SET is_default = false, updated_at = now()
         WHERE user_id = p_user AND is_default;
    END IF;

    UPDATE user_addresses
       SET recipient_ct = coalesce(p_recipient_ct, recipient_ct),
           phone_ct = coalesce(p_phone_ct, phone_ct),
           zip_code = coalesce(p_zip, zip_code),
           address1_ct = coalesce(p_address1_ct, address1_ct),
           address2_ct = CASE WHEN p_address2_ct IS NULL THEN address2_ct
                              ELSE nullif(p_address2_ct, '') END,
           memo_ct = CASE WHEN p_memo_ct IS NULL THEN memo_ct ELSE nullif(p_memo_ct, '') END,
           is_default = is_default OR coalesce(p_default, false),
           updated_at = now()
     WHERE id = p_id
    RETURNING * INTO v_address;

    RETURN cm__address_doc(v_address);
END
$$;

-- Deletes p_user's address p_id.  When it was the default, the newest
-- other address (highest id) becomes the default; none left, none.
-- -> '' | USER_NOT_FOUND | ADDRESS_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_address_delete(p_user bigint, p_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_default boolean;
BEGIN
    IF p_user IS NULL OR p_user < 1 OR p_id IS NULL OR p_id < 1 THEN
        PERFORM cm__invalid('bad address');
    END IF;

    PERFORM cm__cart_user(p_user, true);

    DELETE FROM user_addresses WHERE id = p_id AND user_id = p_user
    RETURNING is_default INTO v_default;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ADDRESS_NOT_FOUND', 'address', p_id);
    END IF;

    IF v_default THEN
        UPDATE user_addresses SET is_default = true, updated_at = now()
         WHERE id = (SELECT max(a.id) FROM user_addresses a WHERE a.user_id = p_user);
    END IF;
    RETURN '';
END
$$;
