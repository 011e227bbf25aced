-- checkout: an order from the buyer's cart (issue 12 section 2): all its
-- lines, or the lines of some variants, ordered and taken out of the cart
-- in one transaction.  Repeatable file: see 00_common.sql.
--
-- The order itself is cm_order_create (30_order.sql) or
-- cm_order_create_card (40_payment.sql), called with the lines' variants
-- and quantities: stock, status, coupon and payment rules are theirs, so
-- a line SOLD_OUT or STOPPED is refused as the same order item would be
-- (OUT_OF_STOCK, PRODUCT_NOT_ON_SALE) and nothing changes.  A line whose
-- price changed is ordered at the current price (the cart shows it).
--
-- Lock order: user (FOR KEY SHARE, as every cart writer) -> carts row
-- (FOR NO KEY UPDATE) -> then the order's own (products by id -> coupon ->
-- variants -> user) -> the ordered lines, deleted last.  Concurrent
-- checkouts of one cart queue on the carts row: the first orders the
-- lines and deletes them; the next sees them gone (CART_EMPTY, or
-- CART_ITEM_NOT_FOUND for a selection), so one cart makes one order.

-- ---------------------------------------------------------------------------
-- Helpers

-- p_user's cart lines to order, the carts row locked: every line when
-- p_variants is NULL, else the lines of those variants (duplicates are
-- one).  400 CART_EMPTY when the cart has no line; 404
-- CART_ITEM_NOT_FOUND naming the lowest variant of p_variants not in the
-- cart.  Returns the variants and quantities in variant order.
CREATE OR REPLACE FUNCTION cm__cart_take(p_user bigint, p_variants bigint[],
                                         OUT o_variants bigint[], OUT o_quantities int[])
LANGUAGE plpgsql AS $$
DECLARE
    v_missing bigint;
BEGIN
    IF p_user IS NULL OR p_user < 1 OR cardinality(p_variants) = 0
       OR 1 > ANY (p_variants) OR array_position(p_variants, NULL) IS NOT NULL THEN
        PERFORM cm__invalid('variantIds must hold positive integers');
    END IF;
    PERFORM cm__cart_user(p_user, false);
    PERFORM FROM carts c WHERE c.user_id = p_user FOR NO KEY UPDATE;

    SELECT array_agg(c.variant_id ORDER BY c.variant_id),
           array_agg(c.quantity ORDER BY c.variant_id)
      INTO o_variants, o_quantities
      FROM cart_items c
     WHERE c.user_id = p_user
       AND (p_variants IS NULL OR c.variant_id = ANY (p_variants));

    IF p_variants IS NOT NULL THEN
        SELECT min(x) INTO v_missing FROM unnest(p_variants) AS x
         WHERE NOT x = ANY (coalesce(o_variants, '{}'));
        IF v_missing IS NOT NULL THEN
            PERFORM cm__conflict('CART_ITEM_NOT_FOUND',
                format('variant %s is not in the cart', v_missing));
        END IF;
    END IF;
    IF o_variants IS NULL THEN
        PERFORM cm__conflict('CART_EMPTY', 'the cart has no line to order');
    END IF;
END
$$;

-- The ordered lines leave p_user's cart (the caller holds the carts row).
CREATE OR REPLACE FUNCTION cm__cart_taken(p_user bigint, p_variants bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM cart_items c WHERE c.user_id = p_user AND c.variant_id = ANY (p_variants);
    UPDATE carts SET updated_at = now() WHERE user_id = p_user;
END
$$;

-- ---------------------------------------------------------------------------
-- Checkout

-- cm_order_create over p_user's cart lines (cm__cart_take): p_method NULL
-- or 'BALANCE', p_coupon as there.  -> the order document.
CREATE OR REPLACE FUNCTION cm_order_create_cart(p_user bigint, p_variants bigint[], p_method text,
                                                p_coupon bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c     record;
    v_doc text;
BEGIN
    c := cm__cart_take(p_user, p_variants);
    v_doc := cm_order_create(p_user, array_fill(NULL::bigint, ARRAY[cardinality(c.o_variants)]),
                             c.o_quantities, p_method, p_coupon, c.o_variants);
    PERFORM cm__cart_taken(p_user, c.o_variants);
    RETURN v_doc;
END
$$;

-- cm_order_create_card over p_user's cart lines.  -> as
-- cm_order_create_card (the card payment's start).
CREATE OR REPLACE FUNCTION cm_order_create_card_cart(p_user bigint, p_variants bigint[],
                                                     p_gateway text, p_card_type text,
                                                     p_card_last4 text, p_coupon bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c     record;
    v_doc text;
BEGIN
    c := cm__cart_take(p_user, p_variants);
    v_doc := cm_order_create_card(p_user,
                                  array_fill(NULL::bigint, ARRAY[cardinality(c.o_variants)]),
                                  c.o_quantities, p_gateway, p_card_type, p_card_last4,
                                  p_coupon, c.o_variants);
    PERFORM cm__cart_taken(p_user, c.o_variants);
    RETURN v_doc;
END
$$;
