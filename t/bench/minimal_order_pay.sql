-- pgbench: the floor under order_create_pay.sql: a minimal paid order of
-- 1 unit of one product written by hand on the module's own schema (same
-- tables, constraints, indexes, foreign keys and triggers: the stock
-- ledger, the product's stock sum, the sales counters, the outbox's
-- order.created/order.paid), in ONE statement, one round trip, no checks
-- beyond the conditional stock and balance updates (an order that cannot be
-- taken writes nothing; top stock and balances up first): what any order
-- must write, and nothing else (issue 14: the module's SQL >= 0.8 of it).
--   the variant's stock (stock >= 1), the user's balance (balance >= price),
--   the order PAID, its part, its item, the BALANCE payment, the ledger row.
\set uid random(1, 1000)
\set pid random(1, 200)
WITH ctx AS (
    SELECT set_config('commerce.stock_reason', 'ORDER', true),
           set_config('commerce.stock_order', currval('orders_id_seq')::text, true)
      FROM (SELECT nextval('orders_id_seq')) n
), v AS (
    UPDATE product_variants v
       SET stock = v.stock - 1, updated_at = now()
      FROM products p, ctx
     WHERE p.id = :pid AND v.product_id = p.id AND v.stock >= 1
    RETURNING v.id, v.option_values, p.id AS product_id, p.name, p.store_id,
              p.price + v.price_delta AS price
), u AS (
    UPDATE users u SET balance = u.balance - v.price
      FROM v
     WHERE u.id = :uid AND u.balance >= v.price
    RETURNING u.balance
), o AS (
    INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount,
                        paid_at)
    SELECT currval('orders_id_seq'), :uid, 'PAID', v.price, 0, v.price, now() FROM v, u
    RETURNING id, payment_amount
), pt AS (
    INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount,
                             payment_amount)
    SELECT o.id, v.store_id, 'PAID', v.price, 0, v.price FROM o, v
    RETURNING id
), i AS (
    INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name,
                             quantity, unit_price, amount)
    SELECT o.id, pt.id, v.product_id, v.id, v.option_values, v.name, 1, v.price, v.price
      FROM o, pt, v
), pay AS (
    INSERT INTO payments (order_id, method, status, amount)
    SELECT o.id, 'BALANCE', 'SUCCESS', o.payment_amount FROM o
), led AS (
    INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
    SELECT :uid, 'PAYMENT', -o.payment_amount, u.balance, o.id FROM o, u
)
SELECT o.id FROM o;
