-- pgbench: the floor under order_create_pay3.sql, written as
-- minimal_order_pay.sql (one statement on the module's schema, every
-- trigger firing) for 3 items: three distinct random products (1..66,
-- 67..133, 134..200), 1 unit each; one part per store of the items; the
-- products locked in id order first.
\set uid random(1, 1000)
\set p1 random(1, 66)
\set p2 random(67, 133)
\set p3 random(134, 200)
WITH ctx AS (
    SELECT set_config('commerce.stock_reason', 'ORDER', true),
           set_config('commerce.stock_order', currval('orders_id_seq')::text, true)
      FROM (SELECT nextval('orders_id_seq')) n
), lk AS (
    -- the products locked in id order first, as every writer of their
    -- variants does (two orders of the same products never deadlock)
    SELECT p.id FROM products p WHERE p.id IN (:p1, :p2, :p3) ORDER BY p.id FOR NO KEY UPDATE
), v AS (
    UPDATE product_variants v
       SET stock = v.stock - 1, updated_at = now()
      FROM lk JOIN products p ON p.id = lk.id, ctx
     WHERE v.product_id = p.id AND v.stock >= 1
    RETURNING v.id, v.option_values, p.id AS product_id, p.name, p.store_id,
              p.price + v.price_delta AS price
), t AS (
    SELECT sum(v.price)::bigint AS total FROM v
), u AS (
    UPDATE users u SET balance = u.balance - t.total
      FROM t
     WHERE u.id = :uid AND u.balance >= t.total
    RETURNING u.balance
), o AS (
    INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount,
                        paid_at)
    SELECT currval('orders_id_seq'), :uid, 'PAID', t.total, 0, t.total, now() FROM t, u
    RETURNING id, payment_amount
), pt AS (
    INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount,
                             payment_amount)
    SELECT o.id, v.store_id, 'PAID', sum(v.price), 0, sum(v.price) FROM o, v
     GROUP BY o.id, v.store_id
    RETURNING id, store_id
), i AS (
    INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name,
                             quantity, unit_price, amount)
    SELECT o.id, pt.id, v.product_id, v.id, v.option_values, v.name, 1, v.price, v.price
      FROM o, v JOIN pt ON pt.store_id IS NOT DISTINCT FROM v.store_id
), pay AS (
    INSERT INTO payments (order_id, method, status, amount)
    SELECT o.id, 'BALANCE', 'SUCCESS', o.payment_amount FROM o
), led AS (
    INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
    SELECT :uid, 'PAYMENT', -o.payment_amount, u.balance, o.id FROM o, u
)
SELECT o.id FROM o;
