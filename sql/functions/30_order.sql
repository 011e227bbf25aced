-- order: create, pay by balance, read and expire orders; the order
-- document.  Repeatable file: see 00_common.sql.
--
-- Lock order: products by id -> coupon -> their variants -> user -> sales
-- rows (create); order -> coupon -> user -> sales rows (pay); orders SKIP
-- LOCKED -> products by id -> variants -> coupons (expire).  Stock lives in
-- the variants (15_catalogue.sql), always written under their product's
-- lock; their trigger keeps the product's sum, writes the stock ledger
-- (reason, order: cm__stock_context) and the status events.  Sales rows: the trigger of
-- 80_sales.sql, when an order becomes PAID (paid_at = now()).
-- The card functions (40_payment.sql) slot the payment row in after the
-- order.
--
-- The order document:
--   {"id","userId","status","items":[{"productId"[,"variantId","optionValues"],
--    "name","quantity","unitPrice","amount"}],"totalAmount","discountAmount",
--    "paymentAmount","payment":{"id","method","status","amount"[,"reason"]}|null,
--    "createdAt"}
-- items ordered by productId, then variantId; an item of a product without
-- options (its default variant) reads exactly as before variants existed;
-- payment = the latest payment row.  An order with a seller's product
-- also has "parts" and "shippingAddress", last (98_parts.sql).

-- ---------------------------------------------------------------------------
-- The order document (fragments inlined)

CREATE OR REPLACE FUNCTION cm__order_item_json(p_product bigint, p_variant bigint, p_values text[],
                                               p_name text, p_quantity int, p_unit_price bigint,
                                               p_amount bigint)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"productId":' || p_product
        || CASE WHEN cardinality(p_values) > 0
                THEN ',"variantId":' || p_variant || ',"optionValues":' || to_json(p_values)::text
                ELSE '' END
        || ',"name":' || to_json(p_name)::text
        || ',"quantity":' || p_quantity || ',"unitPrice":' || p_unit_price
        || ',"amount":' || p_amount || '}'
$$;

-- A payment inside the order document.  CARD payments carry "reason"
-- (decline reason or null), EASY_PAY ones "provider" then "reason",
-- TRANSFER ones "virtualAccount" (77_transfer.sql) then "reason";
-- BALANCE payments are exactly
-- {"id","method","status","amount"} (clients and tests compare it).
-- method/status are CHECK-constrained identifiers: no escaping needed.
-- Databases migrated before sql/functions/ existed also have a 4-argument
-- version (no reason, for BALANCE payments only): dropped.
DROP FUNCTION IF EXISTS cm__payment_json(bigint, text, text, bigint);
CREATE OR REPLACE FUNCTION cm__payment_json(p_id bigint, p_method text, p_status text, p_amount bigint,
                                            p_reason text)
RETURNS text LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
-- plpgsql, not sql: a sql function with sub-selects is not inlined, and
-- is parsed and planned again at every call (issue 14's profile)
DECLARE
    v_doc text := '{"id":' || p_id || ',"method":"' || p_method || '","status":"' || p_status
                  || '","amount":' || p_amount;
    v_more text;
BEGIN
    IF p_method = 'EASY_PAY' THEN
        SELECT to_json(x.provider)::text INTO v_more FROM payments x WHERE x.id = p_id;
        v_doc := v_doc || ',"provider":' || coalesce(v_more, 'null');
    ELSIF p_method = 'TRANSFER' THEN
        SELECT '{"bank":' || to_json(x.va_bank)::text
                   || ',"accountNumber":' || to_json(x.va_account)::text
                   || ',"holder":' || to_json(x.va_holder)::text
                   || ',"dueDate":"' || cm__ts(x.va_due_at) || '"}'
          INTO v_more FROM payments x WHERE x.id = p_id AND x.va_bank IS NOT NULL;
        v_doc := v_doc || ',"virtualAccount":' || coalesce(v_more, 'null');
    END IF;
    IF p_method IN ('CARD', 'EASY_PAY', 'TRANSFER') THEN
        v_doc := v_doc || ',"reason":' || coalesce(to_json(p_reason)::text, 'null');
    END IF;
    RETURN v_doc || '}';
END
$$;

-- The order document's "payments": every payment of order p_order, oldest
-- first, each as its "payment" (cm__payment_json).  plpgsql, not sql: a
-- sql function reading a table is not inlined, and was parsed and planned
-- again at every call (issue 14).
CREATE OR REPLACE FUNCTION cm__order_payments_json(p_order bigint) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT coalesce('[' || string_agg(cm__payment_json(p.id, p.method, p.status,
                                                               p.amount, p.reason),
                                              ',' ORDER BY p.id) || ']',
                            '[]')
              FROM payments p
             WHERE p.order_id = p_order);
END
$$;

-- The order document, its "payments" (a JSON array) given: a new order's
-- are known without reading them.
CREATE OR REPLACE FUNCTION cm__order_doc_of(p_id bigint, p_user bigint, p_status text,
                                            p_items text, p_total bigint, p_discount bigint,
                                            p_payment_amount bigint, p_payment text,
                                            p_payments text, p_created timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"userId":' || p_user || ',"status":"' || p_status
        || '","items":' || p_items
        || ',"totalAmount":' || p_total || ',"discountAmount":' || p_discount
        || ',"paymentAmount":' || p_payment_amount
        || ',"payment":' || coalesce(p_payment, 'null')
        || ',"payments":' || p_payments
        || ',"createdAt":"' || cm__ts(p_created) || '"}'
$$;

-- The order document.  p_items is a JSON array, p_payment a JSON object or
-- NULL (the latest payment); "payments" lists them all (read here).
CREATE OR REPLACE FUNCTION cm__order_doc(p_id bigint, p_user bigint, p_status text, p_items text,
                                         p_total bigint, p_discount bigint, p_payment_amount bigint,
                                         p_payment text, p_created timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT cm__order_doc_of(p_id, p_user, p_status, p_items, p_total, p_discount,
                            p_payment_amount, p_payment, cm__order_payments_json(p_id), p_created)
$$;

-- cm_order_json(order_id [, user_id]): the order document, or NULL when there
-- is no such order (or it belongs to another user when p_user is given).
CREATE OR REPLACE FUNCTION cm_order_json(p_order bigint, p_user bigint DEFAULT NULL)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT cm__order_doc(o.id, o.user_id, o.status,
               coalesce((SELECT '[' || string_agg(cm__order_item_json(i.product_id, i.variant_id,
                                                                      i.option_values, i.name,
                                                                      i.quantity, i.unit_price,
                                                                      i.amount),
                                                  ',' ORDER BY i.product_id, i.variant_id) || ']'
                           FROM order_items i
                          WHERE i.order_id = o.id), '[]'),
               o.total_amount, o.discount_amount, o.payment_amount,
               (SELECT cm__payment_json(p.id, p.method, p.status, p.amount, p.reason)
                  FROM payments p
                 WHERE p.order_id = o.id
                 ORDER BY p.id DESC
                 LIMIT 1),
               o.created_at)
      INTO v_doc
      FROM orders o
     WHERE o.id = p_order
       AND (p_user IS NULL OR o.user_id = p_user);
    RETURN cm__order_parts_doc(v_doc, p_order);
END
$$;

-- ---------------------------------------------------------------------------
-- Orders

-- The user, and each item's product and variant, in one query (products
-- never disappear and a variant's product never changes: unlocked): a
-- product named alone must have exactly one variant, a variant named with
-- its product must belong to it.  And whether the buyer holds a restock
-- (76_waitlist.sql) the order must take.
-- Its plan is generic (planned once per session): a custom plan knows the
-- arrays' lengths, so its estimate always beat the generic one's and the
-- query was planned again at every order (0.4 ms, planning 17 times its
-- own run; issue 14).  The generic plan follows the tables' sizes.
CREATE OR REPLACE FUNCTION cm__order_resolve(p_user bigint, p_products bigint[],
                                             p_variants bigint[],
                                             OUT user_found boolean, OUT held boolean,
                                             OUT pids bigint[], OUT vids bigint[],
                                             OUT missing bigint, OUT bad boolean)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    SELECT EXISTS (SELECT 1 FROM users us WHERE us.id = p_user),
           EXISTS (SELECT 1 FROM waitlist_entries wl
                    WHERE wl.user_id = p_user AND wl.status = 'HELD'),
           array_agg(coalesce(u.pid, v.product_id) ORDER BY u.ord),
           array_agg(coalesce(u.vid, d.vmin) ORDER BY u.ord),
           min(u.pid) FILTER (WHERE u.pid IS NOT NULL
                                AND NOT EXISTS (SELECT 1 FROM products p WHERE p.id = u.pid)),
           coalesce(bool_or(CASE WHEN u.vid IS NOT NULL
                                 THEN v.id IS NULL OR v.product_id <> coalesce(u.pid, v.product_id)
                                 ELSE d.vcnt <> 1 END), false)
      INTO user_found, held, pids, vids, missing, bad
      FROM unnest(p_products, p_variants) WITH ORDINALITY AS u(pid, vid, ord)
      -- (a subquery with LIMIT is never flattened: each named variant is
      -- one probe of the key, where a join scanned a small table whole)
      LEFT JOIN LATERAL (SELECT w.id, w.product_id FROM product_variants w
                          WHERE w.id = u.vid LIMIT 1) v ON true
      LEFT JOIN LATERAL (SELECT min(w.id) AS vmin, count(*) AS vcnt
                           FROM product_variants w
                          WHERE u.vid IS NULL AND w.product_id = u.pid) d ON true;
END $$;

-- The order of cm_order_create, written; -> its document when p_doc, else
-- NULL (the points and cart paths read the order they need themselves:
-- currval('orders_id_seq') is its id).  p_card {gateway, cardType, last4}
-- (cm_order_create_card, 40_payment.sql; p_method NULL; checked by
-- cm__card_check_args first): an order with something to pay is written
-- PAYMENT_IN_PROGRESS with its PENDING payment (in the placing statement;
-- its columns: cm__card_columns) and shows it, and the answer is the card
-- start's {"paymentId","orderId","amount","order"} ("paymentId" null and
-- "amount" 0 for an order PAID at once).
--
-- The path is cut to the statements an order must run (issue 14, the
-- profile in README "The order transaction"): one query checks the user
-- and resolves every item's variant; then one statement locks the
-- products in id order (FOR NO KEY UPDATE), so concurrent orders over
-- overlapping products queue instead of deadlocking, takes the stock with
-- a conditional UPDATE of the variants (stock >= quantity, on sale) that returns what the
-- order needs (prices, names, stores), prices the coupon, takes the
-- balance and writes the order, its seller parts, its items, its payment
-- and ledger row, as a hand-written order would (t/bench/
-- minimal_order_pay.sql).  Only a failure runs the slower queries that
-- name its exact cause.  The
-- variant that reaches 0 is SOLD_OUT in this transaction (a generated
-- column), its ledger row names the order (15_catalogue.sql).  The coupon
-- row is locked and priced after the stock is taken: the order's
-- discountAmount, and paymentAmount = totalAmount - discountAmount.
-- Error precedence: INVALID_REQUEST, USER_NOT_FOUND, PRODUCT_NOT_FOUND
-- (lowest missing id), VARIANT_NOT_FOUND, VARIANT_REQUIRED (the first such
-- item), PRODUCT_NOT_ON_SALE (product or variant STOPPED), OUT_OF_STOCK
-- (lowest such product, then variant), COUPON_NOT_FOUND,
-- COUPON_NOT_AVAILABLE, COUPON_NOT_APPLICABLE, INSUFFICIENT_BALANCE,
-- ADDRESS_REQUIRED.
--
-- An order with nothing to pay (paymentAmount 0: every product priced 0, or
-- a coupon covering it all) is PAID at once, whatever p_method, without a
-- payments row and without a ledger row: no money moves, and payments.amount
-- is CHECK (amount > 0) because a payment of nothing is not a payment.  Its
-- document has "payment": null, and its coupon is USED.
CREATE OR REPLACE FUNCTION cm__order_place(p_user bigint, p_products bigint[],
                                           p_quantities int[], p_method text, p_coupon bigint,
                                           p_variants bigint[], p_doc boolean,
                                           p_card text[] DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    n          int := cardinality(p_quantities);
    r          record;
    x          record;           -- what the placing statement did
    i          int;
    v_cnt      int;
    v_pid      bigint;
    v_pids     bigint[];
    v_vids     bigint[];
    v_short    text;             -- first item without enough stock
    v_stopped  text;             -- first item not on sale
    v_discount bigint := 0;
    v_pay_amount bigint;
    v_status   text;
    v_order    bigint;
    v_created  timestamptz;
    v_seller   boolean;
    v_payment  text;
    v_doc      text;
BEGIN
    IF p_card IS NOT NULL THEN
        PERFORM cm__card_check_args(p_card[1], p_card[2], p_card[3]);    -- 40_payment.sql
    END IF;
    -- Input shape (the module validates too; this keeps the database safe).
    IF n IS NULL OR n < 1 OR n > 50 OR cardinality(p_products) IS DISTINCT FROM n
       OR (p_variants IS NOT NULL AND cardinality(p_variants) <> n)
       OR (1 <= ALL (p_quantities) AND 999 >= ALL (p_quantities)) IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'items must hold 1 to 50 products with quantities between 1 and 999';
    END IF;
    IF array_position(p_products, NULL) IS NOT NULL
       AND (p_variants IS NULL
            OR EXISTS (SELECT FROM unnest(p_products, p_variants) AS u(pid, vid)
                        WHERE u.pid IS NULL AND u.vid IS NULL)) THEN
        PERFORM cm__invalid('each item names a productId or a variantId');
    END IF;
    IF p_method IS NOT NULL AND p_method <> 'BALANCE' THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = format('unsupported payment method %s', p_method);
    END IF;

    -- The user, each item's product and variant, and whether the buyer
    -- holds a restock: one query (cm__order_resolve).
    r := cm__order_resolve(p_user, p_products, p_variants);
    IF NOT r.user_found THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
            DETAIL = format('user %s not found', p_user);
    END IF;
    IF r.missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PRODUCT_NOT_FOUND',
            DETAIL = format('product %s not found', r.missing);
    END IF;
    IF r.bad THEN
        -- the first item at fault, named
        FOR i IN 1 .. n LOOP
            IF p_variants[i] IS NOT NULL THEN
                SELECT v.product_id INTO v_pid FROM product_variants v WHERE v.id = p_variants[i];
                IF NOT FOUND OR v_pid <> coalesce(p_products[i], v_pid) THEN
                    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'VARIANT_NOT_FOUND',
                        DETAIL = format('variant %s not found%s', p_variants[i],
                                        coalesce(' in product ' || p_products[i], ''));
                END IF;
            ELSE
                SELECT count(*) INTO v_cnt FROM product_variants v
                 WHERE v.product_id = p_products[i];
                IF v_cnt <> 1 THEN
                    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'VARIANT_REQUIRED',
                        DETAIL = format('product %s has %s variants: name a variantId',
                                        p_products[i], v_cnt);
                END IF;
            END IF;
        END LOOP;
    END IF;
    v_pids := r.pids;
    v_vids := r.vids;
    IF n > 1 AND (SELECT count(DISTINCT y) FROM unnest(v_vids) AS y) <> n THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'duplicate productId or variantId in items';
    END IF;

    -- A buyer who holds a restock: the products locked in id order first
    -- (every writer of a variant locks its product first), then the held
    -- units go back to the variants for the order to take.  Otherwise the
    -- placing statement below takes the same locks, in the same order.
    -- (A hold made between the query above and those locks stays held
    -- for the buyer until it runs out, then passes on: the order took
    -- other units.)
    IF r.held THEN
        PERFORM FROM products p WHERE p.id = ANY (v_pids) ORDER BY p.id FOR NO KEY UPDATE;
        PERFORM cm__waitlist_take(p_user, v_vids, p_quantities);
    END IF;

    -- The order's id now: the stock ledger names it.
    v_order := nextval('orders_id_seq');

    -- One statement locks the products in id order (lk: already ours when
    -- the buyer held a restock), takes the stock (a conditional UPDATE
    -- under those locks: the condition holds the invariant whoever else
    -- writes), prices the coupon (70_coupon.sql) once every item is taken,
    -- takes the balance, and writes the order, its parts (one per store,
    -- the discount split: cm__order_parts_split, 98_parts.sql), its items
    -- and its BALANCE payment with the ledger row (or its PENDING card
    -- payment); or none of them when an
    -- item lacks stock or the balance is short (the error is raised below,
    -- and everything rolls back).  Lock order: the products ->
    -- their variants -> the coupon -> the user -> the sales rows (the
    -- triggers, at the end of the statement, when the items and the
    -- payment are there: 80_sales.sql, 95_outbox.sql).  The stock ledger's
    -- context is set in the statement, before its trigger runs.  Name,
    -- unit price and option values are snapshots.
    WITH ctx AS (
        SELECT set_config('commerce.stock_reason', 'ORDER', true),
               set_config('commerce.stock_actor', p_user::text, true),
               set_config('commerce.stock_order', v_order::text, true),
               set_config('commerce.stock_note', '', true)
    ), lk AS (
        -- the products locked in id order, their latest rows
        SELECT p.id, p.name, p.store_id, p.price, p.stopped
          FROM products p
         WHERE p.id = ANY (v_pids)
         ORDER BY p.id
           FOR NO KEY UPDATE
    ), t AS (
        UPDATE product_variants v
           SET stock = v.stock - u.qty, updated_at = now()
          FROM unnest(v_vids, p_quantities) AS u(vid, qty), lk p, ctx
         WHERE v.id = u.vid AND v.stock >= u.qty AND NOT v.stopped
           AND p.id = v.product_id AND NOT p.stopped
        RETURNING v.id, v.product_id, v.option_values, p.name, p.store_id,
                  p.price + v.price_delta AS price, u.qty
    ), s AS (
        SELECT count(*)::int AS k, coalesce(sum(t.price * t.qty), 0)::bigint AS total FROM t
    ), m AS (
        SELECT d.total, d.discount, d.total - d.discount AS pay,
               CASE WHEN d.total = d.discount THEN 'PAID'
                    WHEN p_card IS NOT NULL THEN 'PAYMENT_IN_PROGRESS'
                    WHEN p_method IS NULL THEN 'PENDING_PAYMENT'
                    ELSE 'PAID' END AS status
          FROM (SELECT s.total,
                       CASE WHEN p_coupon IS NULL THEN 0
                            ELSE cm__coupon_discount(p_user, p_coupon, s.total) END AS discount
                  FROM s WHERE s.k = n) AS d
    ), b AS (
        UPDATE users u
           SET balance = u.balance - m.pay
          FROM m
         WHERE u.id = p_user AND m.status = 'PAID' AND m.pay > 0 AND u.balance >= m.pay
        RETURNING u.balance
    ), o AS (
        INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount,
                            paid_at)
        SELECT v_order, p_user, m.status, m.total, m.discount, m.pay,
               CASE WHEN m.status = 'PAID' THEN now() END
          FROM m
         WHERE m.status <> 'PAID' OR m.pay = 0 OR EXISTS (SELECT FROM b)
        RETURNING id, created_at, status, total_amount, discount_amount, payment_amount
    ), parts AS (
        INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount,
                                 payment_amount)
        SELECT o.id, y.store_id, o.status, y.total, y.discount, y.total - y.discount
          FROM o, cm__order_parts_split(o.total_amount, o.discount_amount,
                                        ARRAY(SELECT t.store_id FROM t),
                                        ARRAY(SELECT t.price * t.qty FROM t)) AS y
         WHERE o.discount_amount > 0
        UNION ALL
        -- no discount to split (no coupon): each store's items' sum, in
        -- the split's order (its part ids: the largest first, then by
        -- store)
        (SELECT o.id, t.store_id, o.status, sum(t.price * t.qty)::bigint AS total, 0,
                sum(t.price * t.qty)::bigint
           FROM o, t
          WHERE o.discount_amount = 0
          GROUP BY o.id, o.status, t.store_id
          ORDER BY total DESC, t.store_id NULLS LAST)
        RETURNING id, store_id
    ), items AS (
        INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name,
                                 quantity, unit_price, amount)
        SELECT o.id, parts.id, t.product_id, t.id, t.option_values, t.name, t.qty, t.price,
               t.price * t.qty
          FROM o, t JOIN parts ON parts.store_id IS NOT DISTINCT FROM t.store_id
    ), pay AS (
        INSERT INTO payments (order_id, method, status, amount)
        SELECT o.id, 'BALANCE', 'SUCCESS', o.payment_amount FROM o, b
        RETURNING id
    ), led AS (
        INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
        SELECT p_user, 'PAYMENT', -o.payment_amount, b.balance, o.id FROM o, b
    ), card AS (
        -- an order waiting for its card: its PENDING payment (40_payment.sql)
        INSERT INTO payments (order_id, method, status, amount, gateway, card_type,
                              card_last4, provider)
        SELECT o.id, c.method, 'PENDING', o.payment_amount, p_card[1], c.card_type,
               p_card[3], c.provider
          FROM o, cm__card_columns(p_card[2], p_card[3]) AS c
         WHERE o.status = 'PAYMENT_IN_PROGRESS'
        RETURNING id, method
    )
    SELECT s.k, ARRAY(SELECT t.id FROM t) AS taken,
           (SELECT '[' || string_agg(cm__order_item_json(t.product_id, t.id, t.option_values,
                                                         t.name, t.qty, t.price, t.price * t.qty),
                                     ',' ORDER BY t.product_id, t.id) || ']' FROM t) AS items,
           m.total, m.discount, m.pay, m.status, o.id AS placed, o.created_at,
           (SELECT pay.id FROM pay) AS pay_id,
           (SELECT card.id FROM card) AS card_id, (SELECT card.method FROM card) AS card_method,
           (SELECT bool_or(parts.store_id IS NOT NULL) FROM parts) AS seller
      INTO x
      FROM s LEFT JOIN m ON true LEFT JOIN o ON true;

    IF x.k < n THEN
        -- Which item, and why: each variant's status and its stock before
        -- this statement (the items taken get their units back here).
        FOR r IN
            SELECT v.id, v.product_id, v.option_values, v.stopped AS vstopped,
                   p.stopped AS pstopped, u.qty,
                   v.stock + CASE WHEN v.id = ANY (x.taken) THEN u.qty ELSE 0 END AS stock
              FROM unnest(v_vids, p_quantities) AS u(vid, qty)
              JOIN product_variants v ON v.id = u.vid
              JOIN products p ON p.id = v.product_id
             ORDER BY v.product_id, v.id
        LOOP
            IF (r.pstopped OR r.vstopped) AND v_stopped IS NULL THEN
                v_stopped := format('product %s%s is not on sale', r.product_id,
                                    CASE WHEN cardinality(r.option_values) > 0
                                         THEN ' (variant ' || r.id || ')' ELSE '' END);
            END IF;
            IF r.stock < r.qty AND v_short IS NULL THEN
                v_short := format('product %s%s has %s in stock, %s requested', r.product_id,
                                  CASE WHEN cardinality(r.option_values) > 0
                                       THEN ' (variant ' || r.id || ')' ELSE '' END,
                                  r.stock, r.qty);
            END IF;
        END LOOP;
        IF v_stopped IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PRODUCT_NOT_ON_SALE',
                DETAIL = v_stopped;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'OUT_OF_STOCK',
            DETAIL = coalesce(v_short, 'an item lacks stock');
    END IF;
    IF x.placed IS NULL THEN
        PERFORM cm__raise_insufficient(p_user, x.pay);
    END IF;
    PERFORM cm__stock_context(NULL, NULL, NULL, NULL);
    v_status := x.status;
    v_discount := x.discount;
    v_pay_amount := x.pay;
    v_created := x.created_at;
    v_seller := x.seller;

    IF p_coupon IS NOT NULL THEN
        PERFORM cm__coupon_hold(p_coupon, v_order, v_status = 'PAID');
    END IF;

    IF x.pay_id IS NOT NULL THEN
        v_payment := cm__payment_json(x.pay_id, 'BALANCE', 'SUCCESS', v_pay_amount, NULL);
    ELSIF x.card_id IS NOT NULL THEN
        v_payment := cm__payment_json(x.card_id, x.card_method, 'PENDING', v_pay_amount, NULL);
    END IF;

    -- its shipping address (98_parts.sql): given, or needed by a seller's part
    IF v_seller OR coalesce(current_setting('commerce.shipping', true), '') <> '' THEN
        PERFORM cm__order_address_make(v_order, p_user, v_seller);
    END IF;

    IF NOT p_doc THEN
        RETURN NULL;
    END IF;
    -- a new order has no refunds, returns or other payments
    v_doc := cm__order_doc_of(v_order, p_user, v_status, x.items, x.total, v_discount,
                              v_pay_amount, v_payment, coalesce('[' || v_payment || ']', '[]'),
                              v_created);
    IF v_seller THEN
        v_doc := cm__order_parts_doc(v_doc, v_order);
    END IF;
    IF p_card IS NULL THEN
        RETURN v_doc;
    END IF;
    -- the card's start (cm_order_create_card): nothing to pay, no payment
    RETURN '{"paymentId":' || coalesce(x.card_id::text, 'null') || ',"orderId":' || v_order
        || ',"amount":' || CASE WHEN x.card_id IS NULL THEN 0 ELSE v_pay_amount END
        || ',"order":' || v_doc || '}';
END
$$;

-- Create an order for p_user: item i is p_quantities[i] units of product
-- p_products[i] or of variant p_variants[i] (parallel arrays, 1..50
-- distinct variants, quantity 1..999; a product named without its variant
-- must have exactly one, its default variant; a variant named with its
-- product must belong to it), with the user coupon p_coupon (NULL: none;
-- 70_coupon.sql, "Coupons on orders").
--   p_method NULL      -> PENDING_PAYMENT, stock reserved (decremented) now;
--   p_method 'BALANCE' -> paid from the balance in the same transaction: PAID.
-- -> the order document (cm__order_place).
-- Databases before coupons on orders have the 4-argument version, before
-- variants the 5-argument one: dropped (shorter calls find this one, the
-- missing arguments NULL).
DROP FUNCTION IF EXISTS cm_order_create(bigint, bigint[], int[], text);
DROP FUNCTION IF EXISTS cm_order_create(bigint, bigint[], int[], text, bigint);
CREATE OR REPLACE FUNCTION cm_order_create(p_user bigint, p_products bigint[], p_quantities int[],
                                           p_method text, p_coupon bigint DEFAULT NULL,
                                           p_variants bigint[] DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT cm__order_place(p_user, p_products, p_quantities, p_method, p_coupon, p_variants, true)
$$;

-- Pay a PENDING_PAYMENT order of p_user.  The order row is locked first, so
-- a concurrent pay (or the expiry job) is serialised and then sees the new
-- status: exactly one payment succeeds.  Insufficient balance rolls back
-- everything; the order stays PENDING_PAYMENT (payable after a charge).
CREATE OR REPLACE FUNCTION cm_order_pay(p_user bigint, p_order bigint, p_method text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint;
BEGIN
    IF p_method IS DISTINCT FROM 'BALANCE' THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = format('unsupported payment method %s', coalesce(p_method, 'null'));
    END IF;

    v_amount := cm__order_payable(p_user, p_order);    -- 78_mixpay.sql
    PERFORM cm__coupon_use(p_order);
    IF v_amount > 0 THEN
        PERFORM cm__order_balance_spend(p_user, p_order, v_amount);
    END IF;

    UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now() WHERE id = p_order;

    RETURN cm_order_json(p_order);
END
$$;

-- An order of p_user; another user's order is ORDER_NOT_FOUND.
CREATE OR REPLACE FUNCTION cm_order_get(p_user bigint, p_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    v_doc := cm_order_json(p_order, p_user);
    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_FOUND',
            DETAIL = format('order %s not found', p_order);
    END IF;
    RETURN v_doc;
END
$$;

-- Expiry job: cancel up to p_batch PENDING_PAYMENT orders older than
-- p_ttl_seconds and give their stock back.  SKIP LOCKED lets several nginx
-- workers/instances run it at once (each takes different orders) and never
-- waits on an order being paid right now.  Products are locked in id order,
-- like cm_order_create, before the variants' stock is restored (ledger
-- reason ORDER_EXPIRED, per order); their coupons are free again.  Returns the number of orders cancelled.
CREATE OR REPLACE FUNCTION cm_orders_expire(p_ttl_seconds int, p_batch int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_ids  bigint[];
BEGIN
    IF p_ttl_seconds IS NULL OR p_ttl_seconds < 0 OR p_batch IS NULL OR p_batch < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'ttl must be >= 0 and batch >= 1';
    END IF;

    SELECT array_agg(s.id) INTO v_ids
      FROM (SELECT o.id
              FROM orders o
             WHERE (o.status = 'PENDING_PAYMENT'
                    AND o.created_at < now() - make_interval(secs => p_ttl_seconds))
                -- a transfer's deadline is its virtual account's (77_transfer.sql)
                OR (o.status = 'WAITING_FOR_DEPOSIT'
                    AND o.id IN (SELECT x.order_id FROM payments x
                                  WHERE x.status = 'PENDING' AND x.va_due_at < now()))
             ORDER BY o.created_at
             LIMIT p_batch
               FOR NO KEY UPDATE SKIP LOCKED) s;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;

    -- Their events are order.expired (95_outbox.sql), not order.cancelled;
    -- their transfers are given up (a deposit after this is refunded) and
    -- their stock back, ledger ORDER_EXPIRED (72_refund.sql).
    PERFORM cm__orders_unpaid_end(v_ids, true);
    PERFORM cm__coupon_release(v_ids);
    PERFORM cm__order_parts_refund(x) FROM unnest(v_ids) AS x;    -- 78_mixpay.sql

    RETURN cardinality(v_ids);
END
$$;

-- Give back the stock of one order (the caller holds the order row and has
-- just moved it out of a stock-holding state, so this runs once per order).
-- Products locked in id order, then the variants, as everywhere; ledger
-- reason PAYMENT_FAILED.
CREATE OR REPLACE FUNCTION cm__order_release_stock(p_order bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cm__stock_back(ARRAY[p_order], NULL, 'PAYMENT_FAILED');    -- 72_refund.sql
END
$$;
