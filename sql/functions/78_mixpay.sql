-- mixpay: several payments in one order (issue 12 section 3): a POINTS
-- part with a BALANCE part, or with a CARD part, or POINTS alone.  Each
-- part is its own row in payments (024_mixed_payments.sql: at most one
-- applied SUCCESS per order and method).  Repeatable file: see 00_common.sql.
--
-- All or nothing:
--   - without a card part, the order is created and every part paid in one
--     transaction (PAID), or nothing changes;
--   - with a card part, the order is created, the points taken (a POINTS
--     payment SUCCESS, ledger SPEND) and the card payment started for the
--     rest (cm__card_start: PAYMENT_IN_PROGRESS, the gateway is asked for
--     the rest only), in one transaction.  When the card part fails
--     (cm_card_settle, cm_card_timeout) or is aborted before reaching a
--     gateway (cm_card_abort), cm__order_parts_refund gives the points (and
--     a balance part) back in the transaction of the failure: the payment
--     CANCELLED, ledger RESTORE / REFUND.  An aborted order is
--     PENDING_PAYMENT again and holds no part, so paying it later (balance
--     or card) pays its whole paymentAmount.
--   - an existing PENDING_PAYMENT order (POST /orders/{id}/payment) is paid
--     the same ways: cm_order_pay_points (POINTS and BALANCE, PAID in one
--     transaction) or cm_card_begin_points (POINTS taken and the external
--     part started in one transaction).
-- The external part may be CARD, EASY_PAY or TRANSFER: the card flow with
-- the provider or 'TRANSFER' as the card type (cm__card_start); a
-- transfer's expiry (cm_orders_expire) gives the points back too.
--
-- Lock order: as cm_order_create (products by id -> coupon -> variants ->
-- user), then the user row again for the points and the balance (one
-- UPDATE of users each).  cm__order_parts_refund runs where its caller holds
-- the order: order -> payment -> products -> coupon -> user.

-- ---------------------------------------------------------------------------
-- Parts

-- Take p_amount points of p_user for order p_order: one conditional UPDATE
-- of users.points, its ledger row (SPEND) and the POINTS payment.
-- Not enough points: INSUFFICIENT_POINTS (the caller's transaction rolls
-- back).
CREATE OR REPLACE FUNCTION cm__order_points_spend(p_user bigint, p_order bigint, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_after bigint;
    v_have  bigint;
BEGIN
    UPDATE users SET points = points - p_amount
     WHERE id = p_user AND points >= p_amount
    RETURNING points INTO v_after;
    IF NOT FOUND THEN
        SELECT u.points INTO v_have FROM users u WHERE u.id = p_user;
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INSUFFICIENT_POINTS',
            DETAIL = format('points %s are less than the points part %s', coalesce(v_have, 0),
                            p_amount);
    END IF;
    WITH led AS (
        INSERT INTO points_ledger (user_id, kind, amount, points_after, order_id)
        VALUES (p_user, 'SPEND', -p_amount, v_after, p_order)
    )
    INSERT INTO payments (order_id, method, status, amount)
    VALUES (p_order, 'POINTS', 'SUCCESS', p_amount);
END
$$;

-- Take p_amount (>= 1) of p_user's balance for order p_order: one
-- conditional UPDATE, the BALANCE payment and its ledger row (PAYMENT).
-- Not enough: INSUFFICIENT_BALANCE (the caller's transaction rolls back).
CREATE OR REPLACE FUNCTION cm__order_balance_spend(p_user bigint, p_order bigint, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    UPDATE users SET balance = balance - p_amount
     WHERE id = p_user AND balance >= p_amount
    RETURNING balance INTO v_balance;
    IF NOT FOUND THEN
        PERFORM cm__raise_insufficient(p_user, p_amount);
    END IF;
    WITH pay AS (
        INSERT INTO payments (order_id, method, status, amount)
        VALUES (p_order, 'BALANCE', 'SUCCESS', p_amount)
    )
    INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
    VALUES (p_user, 'PAYMENT', -p_amount, v_balance, p_order);
END
$$;

-- Give back the POINTS and BALANCE parts of order p_order (the caller holds
-- the order row and has just moved it out of a payable path: a failed or
-- aborted card part).  Each part: payment SUCCESS -> CANCELLED, the points
-- (ledger RESTORE) or the balance (ledger REFUND) back to the buyer.  An
-- order without such parts: nothing happens.
CREATE OR REPLACE FUNCTION cm__order_parts_refund(p_order bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r       record;
    v_after bigint;
BEGIN
    FOR r IN
        UPDATE payments p
           SET status = 'CANCELLED', updated_at = now()
          FROM orders o
         WHERE p.order_id = p_order AND o.id = p_order
           AND p.method IN ('POINTS', 'BALANCE') AND p.status = 'SUCCESS'
        RETURNING p.method, p.amount, o.user_id
    LOOP
        IF r.method = 'POINTS' THEN
            UPDATE users SET points = points + r.amount WHERE id = r.user_id
            RETURNING points INTO v_after;
            INSERT INTO points_ledger (user_id, kind, amount, points_after, order_id)
            VALUES (r.user_id, 'RESTORE', r.amount, v_after, p_order);
        ELSE
            UPDATE users SET balance = balance + r.amount WHERE id = r.user_id
            RETURNING balance INTO v_after;
            INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
            VALUES (r.user_id, 'REFUND', r.amount, v_after, p_order);
        END IF;
    END LOOP;
END
$$;

-- The order just created by cm_order_create in this transaction (PENDING,
-- or PAID with nothing to pay), its points part taken: checks the parts
-- against its paymentAmount and returns what is left for the other part.
-- p_points 0..: the points part; p_rest: the other part's "amount" when
-- the client gave one (NULL: whatever is left); p_other: the other part
-- is there.  Parts that do not add up exactly to paymentAmount:
-- PAYMENT_AMOUNT_MISMATCH, nothing changes.  p_points 0: no POINTS part
-- (a list of one BALANCE or CARD part, its amount checked all the same).
CREATE OR REPLACE FUNCTION cm__order_points_part(p_user bigint, p_order bigint, p_points bigint,
                                                 p_rest bigint, p_other boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint;
    v_left   bigint;
BEGIN
    IF p_points IS NULL OR p_points NOT BETWEEN 0 AND 1000000000000 THEN
        PERFORM cm__invalid('the points part must be between 1 and 1000000000000');
    END IF;
    SELECT o.payment_amount INTO v_amount FROM orders o WHERE o.id = p_order;
    v_left := v_amount - p_points;
    IF v_left < 0 OR (p_other AND v_left < 1) OR (NOT p_other AND v_left <> 0)
       OR (p_rest IS NOT NULL AND p_rest <> v_left) THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_AMOUNT_MISMATCH',
            DETAIL = format('the payment parts (points %s, other %s) must add up to the order''s'
                            ' paymentAmount %s', p_points, coalesce(p_rest::text, 'none'), v_amount);
    END IF;
    IF p_points > 0 THEN
        PERFORM cm__order_points_spend(p_user, p_order, p_points);
    END IF;
    RETURN v_left;
END
$$;

-- ---------------------------------------------------------------------------
-- Orders paid in parts

-- cm_order_create (items p_products/p_quantities/p_variants, or with
-- p_cart the buyer's cart lines p_variants as cm_order_create_cart), paid
-- by p_points points and, for the rest, by the balance (p_method
-- 'BALANCE'; p_rest its amount when given) or by nothing (p_method NULL:
-- the points pay it all).  One transaction: PAID, or nothing changed.
-- -> the order document.
CREATE OR REPLACE FUNCTION cm_order_create_points(p_user bigint, p_products bigint[],
                                                  p_quantities int[], p_method text,
                                                  p_coupon bigint, p_variants bigint[],
                                                  p_points bigint, p_rest bigint,
                                                  p_cart boolean) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_order   bigint;
    v_left    bigint;
BEGIN
    PERFORM cm__order_points_method(p_method);
    v_order := cm__order_points_create(p_user, p_products, p_quantities, p_coupon, p_variants,
                                       p_points, p_cart);
    v_left := cm__order_points_part(p_user, v_order, p_points, p_rest, p_method IS NOT NULL);

    IF v_left > 0 THEN
        PERFORM cm__order_balance_spend(p_user, v_order, v_left);
    END IF;

    -- the coupon before the status (the sales rows are the last locks)
    PERFORM cm__coupon_use(v_order);
    UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = v_order;
    RETURN cm_order_json(v_order);
END
$$;

-- cm_order_create_points with a CARD part for the rest: the points taken
-- and the card payment started for what is left (PAYMENT_IN_PROGRESS), in
-- one transaction.  -> as cm_order_create_card: {"paymentId","orderId",
-- "amount" (the card part),"order"}.
CREATE OR REPLACE FUNCTION cm_order_create_card_points(p_user bigint, p_products bigint[],
                                                       p_quantities int[], p_gateway text,
                                                       p_card_type text, p_card_last4 text,
                                                       p_coupon bigint, p_variants bigint[],
                                                       p_points bigint, p_rest bigint,
                                                       p_cart boolean) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_order bigint;
    v_left  bigint;
BEGIN
    PERFORM cm__card_check_args(p_gateway, p_card_type, p_card_last4);
    v_order := cm__order_points_create(p_user, p_products, p_quantities, p_coupon, p_variants,
                                       p_points, p_cart);
    v_left := cm__order_points_part(p_user, v_order, p_points, p_rest, true);
    RETURN cm__card_start(v_order, v_left, p_gateway, p_card_type, p_card_last4);
END
$$;

-- The order of cm_order_create_points: unpaid (p_method NULL), from the
-- items or from the cart (cm__cart_take / cm__cart_taken).  -> its id.
CREATE OR REPLACE FUNCTION cm__order_points_create(p_user bigint, p_products bigint[],
                                                   p_quantities int[], p_coupon bigint,
                                                   p_variants bigint[], p_points bigint,
                                                   p_cart boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    IF p_cart THEN
        c := cm__cart_take(p_user, p_variants);
        PERFORM cm__order_place(p_user, array_fill(NULL::bigint, ARRAY[cardinality(c.o_variants)]),
                                c.o_quantities, NULL, p_coupon, c.o_variants, false);
        PERFORM cm__cart_taken(p_user, c.o_variants);
    ELSE
        PERFORM cm__order_place(p_user, p_products, p_quantities, NULL, p_coupon, p_variants,
                                false);
    END IF;
    -- the id cm__order_place just drew in this session
    RETURN currval('orders_id_seq');
END
$$;

-- The method of the part beside POINTS that is paid in the database:
-- BALANCE, or none (the points pay it all).
CREATE OR REPLACE FUNCTION cm__order_points_method(p_method text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_method IS NOT NULL AND p_method <> 'BALANCE' THEN
        PERFORM cm__invalid(format('unsupported payment method %s with points', p_method));
    END IF;
END
$$;

-- ---------------------------------------------------------------------------
-- Paying an existing order in parts (POST /orders/{id}/payment with a list)

-- Order p_order of p_user, locked (the order row first, as every payment
-- path), that may be paid now: PENDING_PAYMENT.  Else ORDER_NOT_FOUND
-- (another user's too) or ORDER_NOT_PAYABLE.  -> its paymentAmount.
CREATE OR REPLACE FUNCTION cm__order_payable(p_user bigint, p_order bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    o record;
BEGIN
    SELECT x.status, x.payment_amount INTO o
      FROM orders x
     WHERE x.id = p_order AND x.user_id = p_user
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_FOUND',
            DETAIL = format('order %s not found', p_order);
    END IF;
    IF o.status <> 'PENDING_PAYMENT' THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_PAYABLE',
            DETAIL = format('order %s is %s', p_order, o.status);
    END IF;
    RETURN o.payment_amount;
END
$$;

-- Pay order p_order of p_user by p_points points and, for the rest, the
-- balance (p_method 'BALANCE', p_rest its amount when given) or nothing
-- (p_method NULL).  One transaction: PAID, or nothing changed
-- (PAYMENT_AMOUNT_MISMATCH, INSUFFICIENT_POINTS, INSUFFICIENT_BALANCE).
-- Lock order as cm_order_pay: order -> coupon -> user.  -> order document.
CREATE OR REPLACE FUNCTION cm_order_pay_points(p_user bigint, p_order bigint, p_method text,
                                               p_points bigint, p_rest bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_left bigint;
BEGIN
    PERFORM cm__order_points_method(p_method);
    PERFORM cm__order_payable(p_user, p_order);
    PERFORM cm__coupon_use(p_order);
    v_left := cm__order_points_part(p_user, p_order, p_points, p_rest, p_method IS NOT NULL);
    IF v_left > 0 THEN
        PERFORM cm__order_balance_spend(p_user, p_order, v_left);
    END IF;
    UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = p_order;
    RETURN cm_order_json(p_order);
END
$$;

-- Pay order p_order of p_user by p_points points and an external part
-- (CARD, EASY_PAY or TRANSFER, as cm_card_begin) for the rest (p_rest its
-- amount when given): the points taken and the external payment started
-- for the rest only, in one transaction.  Its failure or abort gives the
-- points back (cm__order_parts_refund).  -> as cm_card_begin.
CREATE OR REPLACE FUNCTION cm_card_begin_points(p_user bigint, p_order bigint, p_gateway text,
                                                p_card_type text, p_card_last4 text,
                                                p_points bigint, p_rest bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_left bigint;
BEGIN
    PERFORM cm__card_check_args(p_gateway, p_card_type, p_card_last4);
    PERFORM cm__order_payable(p_user, p_order);
    v_left := cm__order_points_part(p_user, p_order, p_points, p_rest, true);
    RETURN cm__card_start(p_order, v_left, p_gateway, p_card_type, p_card_last4);
END
$$;
