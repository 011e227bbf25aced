-- 011_product_sales: best sellers.  When an order was paid (orders.paid_at),
-- and the units and revenue of each product per calendar day in Asia/Seoul
-- (product_sales_daily), kept by the trigger of functions/80_sales.sql in
-- the transaction that makes an order PAID or moves it out of PAID.  The
-- read (cm_best_sellers) sums at most 30 days of this table and never scans
-- orders.  See sql/README.md, "Best sellers".
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
-- An existing database upgrades in place: paid_at of its PAID orders and
-- the table are filled from the orders here.  The trigger comes with the
-- function files, right after this migration (sql/migrate's second pass).

-- Set by the functions in the statement that makes an order PAID, kept
-- when it leaves PAID (the sales it counted were on that day).  A new
-- nullable column: no table rewrite.
ALTER TABLE orders ADD COLUMN paid_at timestamptz;

-- Orders already PAID: every path that makes an order PAID sets
-- updated_at = now() in that statement (the insert of an order paid at
-- creation too), and nothing updates a PAID order afterwards.
UPDATE orders SET paid_at = updated_at WHERE status = 'PAID';

-- A PAID order always knows its day.  The functions raise no business
-- error before it: only a writer that forgets paid_at meets it (during an
-- upgrade, the old functions between this migration and the function
-- pass: their payment fails and is retried, never counted wrong).
ALTER TABLE orders ADD CONSTRAINT orders_paid_at_check
    CHECK (status <> 'PAID' OR paid_at IS NOT NULL);

-- Units and revenue (order item amounts: unit price x quantity, before an
-- order's coupon discount) of the PAID orders, by day of paid_at in
-- Asia/Seoul and product.  The primary key serves the read (a range of
-- days) and the upsert of the trigger.  A row goes back to 0 when its
-- orders leave PAID; it is never negative.  quantity and revenue are in
-- no index and change with every sale: fillfactor leaves room for HOT
-- updates.
CREATE TABLE product_sales_daily (
    day        date   NOT NULL,
    product_id bigint NOT NULL REFERENCES products (id),
    quantity   bigint NOT NULL
        CONSTRAINT product_sales_daily_quantity_check CHECK (quantity >= 0),
    revenue    bigint NOT NULL
        CONSTRAINT product_sales_daily_revenue_check CHECK (revenue >= 0),
    PRIMARY KEY (day, product_id)
) WITH (fillfactor = 70);

INSERT INTO product_sales_daily (day, product_id, quantity, revenue)
SELECT (o.paid_at AT TIME ZONE 'Asia/Seoul')::date, i.product_id,
       sum(i.quantity), sum(i.amount)
  FROM orders o
  JOIN order_items i ON i.order_id = o.id
 WHERE o.status = 'PAID'
 GROUP BY 1, 2;
