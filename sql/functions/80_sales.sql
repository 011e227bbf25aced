-- sales: best sellers.  Table product_sales_daily and orders.paid_at in
-- 011_product_sales.sql.  Repeatable file: see 00_common.sql.
--
-- product_sales_daily holds, per calendar day in Asia/Seoul and product,
-- the units and revenue of the PAID orders paid that day:
--     sum(quantity), sum(amount) of their order_items
-- (amount = unit price x quantity, before any order-level coupon discount).
-- The triggers below keep it so, in the transaction of the write that
-- changes it, whoever writes: an order inserted PAID adds its items to the
-- day of its paid_at, an order that becomes PAID adds them, a PAID order
-- that changes to any other status (cancel, refund, ... of later issues, or
-- an operator's UPDATE) takes them off that same day, and a PAID order
-- whose paid_at is changed moves them from the old day to the new one.
-- cm_best_sellers reads at most 30 days of it; orders are never scanned at
-- read time.
--
-- Items must exist when the trigger of an order inserted PAID runs:
-- cm_order_create inserts the order and its items in one statement (row
-- AFTER triggers run at the end of the statement).  Items are never added
-- to an existing order.
--
-- Lock order: the rows of product_sales_daily are the last rows a
-- transaction locks, in product id order (the upsert below walks the
-- order's items by product id): create = products (by id) -> coupon ->
-- user -> sales rows; pay = order -> coupon -> user -> sales rows; card
-- settle = order -> payment -> coupon -> sales rows.  The products of an
-- order created and paid at once are locked by that transaction already,
-- so its sales rows add no wait; a later payment (cm_order_pay, a card
-- settle) locks no product, only sales rows.  No cycle.  A later flow that
-- moves a PAID order out of PAID and gives its stock back must lock the
-- products (by id) before it changes the order's status, so that the sales
-- rows stay last.

-- The calendar day of a time in Asia/Seoul (inlined).
CREATE OR REPLACE FUNCTION cm__sales_day(p_at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_at AT TIME ZONE 'Asia/Seoul')::date
$$;

-- Add (p_sign 1) or take off (p_sign -1) the items of order p_order on the
-- day of p_at, row by row in product id order.  Adding is one upsert that
-- walks the items by product id, the variants of one product summed.  Taking off is rare (an
-- order leaving PAID): an UPDATE per item, in product id order, and a row
-- that is not there is an error, as is a row going below 0 (the CHECKs):
-- the table can only be wrong loudly.
CREATE OR REPLACE FUNCTION cm__sales_add(p_order bigint, p_at timestamptz, p_sign int)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_day date := cm__sales_day(p_at);
    i     record;
BEGIN
    IF p_sign > 0 THEN
        INSERT INTO product_sales_daily AS s (day, product_id, quantity, revenue)
        SELECT v_day, x.product_id, sum(x.quantity), sum(x.amount)
          FROM order_items x
         WHERE x.order_id = p_order
         GROUP BY x.product_id
         ORDER BY x.product_id
            ON CONFLICT (day, product_id) DO UPDATE
           SET quantity = s.quantity + EXCLUDED.quantity,
               revenue = s.revenue + EXCLUDED.revenue;
        RETURN;
    END IF;
    FOR i IN
        SELECT x.product_id, sum(x.quantity) AS quantity, sum(x.amount) AS amount
          FROM order_items x
         WHERE x.order_id = p_order
         GROUP BY x.product_id
         ORDER BY x.product_id
    LOOP
        UPDATE product_sales_daily s
           SET quantity = s.quantity - i.quantity, revenue = s.revenue - i.amount
         WHERE s.day = v_day AND s.product_id = i.product_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'product_sales_daily has no row for product % on %, order %',
                i.product_id, v_day, p_order;
        END IF;
    END LOOP;
END
$$;

-- The triggers' function: OLD counted (PAID) comes off its day, NEW counted
-- goes on its day.  The WHEN clauses call it only when that changes.
CREATE OR REPLACE FUNCTION cm__sales_order() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'PAID' THEN
        PERFORM cm__sales_add(OLD.id, OLD.paid_at, -1);
    END IF;
    IF NEW.status = 'PAID' THEN
        PERFORM cm__sales_add(NEW.id, NEW.paid_at, 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER orders_sales_insert
    AFTER INSERT ON orders
    FOR EACH ROW WHEN (NEW.status = 'PAID')
    EXECUTE FUNCTION cm__sales_order();

CREATE OR REPLACE TRIGGER orders_sales_update
    AFTER UPDATE OF status, paid_at ON orders
    FOR EACH ROW WHEN ((OLD.status = 'PAID' OR NEW.status = 'PAID')
                       AND (OLD.status IS DISTINCT FROM NEW.status
                            OR OLD.paid_at IS DISTINCT FROM NEW.paid_at))
    EXECUTE FUNCTION cm__sales_order();

-- {"rank","productId","name","quantitySold","revenue"}
CREATE OR REPLACE FUNCTION cm__best_seller_json(p_rank bigint, p_product bigint, p_name text,
                                                p_quantity numeric, p_revenue numeric)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"rank":' || p_rank || ',"productId":' || p_product || ',"name":' || to_json(p_name)::text
        || ',"quantitySold":' || p_quantity || ',"revenue":' || p_revenue || '}'
$$;

-- The p_limit (1..50) products that sold the most units over the last
-- p_days (1..30) calendar days in Asia/Seoul, today included:
--   {"from":"YYYY-MM-DD","to":"YYYY-MM-DD","items":[{"rank","productId",
--    "name","quantitySold","revenue"}]}
-- Ties: more revenue first, then the lower product id.  Products whose
-- sales in the window went back to 0 (their orders left PAID) are left out.
-- name is the product's current name.
CREATE OR REPLACE FUNCTION cm_best_sellers(p_days int, p_limit int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_to   date := cm__sales_day(now());
    v_from date;
    v_doc  text;
BEGIN
    IF p_days IS NULL OR p_days < 1 OR p_days > 30 THEN
        PERFORM cm__invalid('days must be an integer between 1 and 30');
    END IF;
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 50 THEN
        PERFORM cm__invalid('limit must be an integer between 1 and 50');
    END IF;
    v_from := v_to - (p_days - 1);

    SELECT '{"from":"' || to_char(v_from, 'YYYY-MM-DD') || '","to":"' || to_char(v_to, 'YYYY-MM-DD')
        || '","items":' || coalesce('[' || string_agg(cm__best_seller_json(t.rank, t.product_id, p.name,
                                                                          t.quantity, t.revenue),
                                                     ',' ORDER BY t.rank) || ']', '[]') || '}'
      INTO v_doc
      FROM (SELECT row_number() OVER (ORDER BY sum(s.quantity) DESC, sum(s.revenue) DESC,
                                               s.product_id) AS rank,
                   s.product_id, sum(s.quantity) AS quantity, sum(s.revenue) AS revenue
              FROM product_sales_daily s
             WHERE s.day BETWEEN v_from AND v_to
             GROUP BY s.product_id
            HAVING sum(s.quantity) > 0
             ORDER BY rank
             LIMIT p_limit) t
      JOIN products p ON p.id = t.product_id;
    RETURN v_doc;
END
$$;
