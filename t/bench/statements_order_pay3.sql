-- pgbench: statements_order_pay.sql with 3 items (three distinct random
-- products, 1..66, 67..133, 134..200, 1 unit each; the products locked in
-- id order first, as every writer of their variants does; one part per
-- store).  minimal_order_pay3.sql is the same in one statement.
\set uid random(1, 1000)
\set p1 random(1, 66)
\set p2 random(67, 133)
\set p3 random(134, 200)
BEGIN;
SELECT set_config('commerce.stock_reason', 'ORDER', true), set_config('commerce.stock_order', nextval('orders_id_seq')::text, true);
SELECT FROM products WHERE id IN (:p1, :p2, :p3) ORDER BY id FOR NO KEY UPDATE;
UPDATE product_variants SET stock = stock - 1, updated_at = now() WHERE product_id IN (:p1, :p2, :p3) AND stock >= 1;
UPDATE users SET balance = balance - (SELECT sum(price) FROM products WHERE id IN (:p1, :p2, :p3)) WHERE id = :uid;
WITH o AS (INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount, paid_at) SELECT currval('orders_id_seq'), :uid, 'PAID', sum(p.price), 0, sum(p.price), now() FROM products p WHERE p.id IN (:p1, :p2, :p3) RETURNING id), pt AS (INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount, payment_amount) SELECT o.id, p.store_id, 'PAID', sum(p.price), 0, sum(p.price) FROM o, products p WHERE p.id IN (:p1, :p2, :p3) GROUP BY o.id, p.store_id RETURNING id, store_id) INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name, quantity, unit_price, amount) SELECT o.id, pt.id, p.id, v.id, v.option_values, p.name, 1, p.price + v.price_delta, p.price + v.price_delta FROM o, products p JOIN product_variants v ON v.product_id = p.id JOIN pt ON pt.store_id IS NOT DISTINCT FROM p.store_id WHERE p.id IN (:p1, :p2, :p3);
INSERT INTO payments (order_id, method, status, amount) SELECT currval('orders_id_seq'), 'BALANCE', 'SUCCESS', sum(p.price) FROM products p WHERE p.id IN (:p1, :p2, :p3);
INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id) SELECT :uid, 'PAYMENT', -(SELECT sum(p.price) FROM products p WHERE p.id IN (:p1, :p2, :p3)), u.balance, currval('orders_id_seq') FROM users u WHERE u.id = :uid;
END;
