-- pgbench: a minimal hand-written create+pay by balance of three items
-- (three distinct random products, quantity 1 each) on the same schema
-- (placeholder: the reference the module's SQL is held to).
\set uid random(1, 1000)
\set p1 random(1, 66)
\set p2 random(67, 133)
\set p3 random(134, 200)
BEGIN;
-- the rows locked in one order: two orders of the same products never deadlock
SELECT 1 FROM product_variants WHERE product_id IN (:p1, :p2, :p3) ORDER BY id FOR UPDATE;
UPDATE product_variants SET stock = stock - 1 WHERE product_id IN (:p1, :p2, :p3);
UPDATE users SET balance = balance - (SELECT sum(price) FROM products WHERE id IN (:p1, :p2, :p3)) WHERE id = :uid;
INSERT INTO orders (user_id, status, total_amount, payment_amount, paid_at)
    SELECT :uid, 'PAID', sum(price), sum(price), now() FROM products WHERE id IN (:p1, :p2, :p3);
INSERT INTO order_items (order_id, product_id, name, quantity, unit_price, amount, variant_id)
    SELECT currval('orders_id_seq'), p.id, p.name, 1, p.price, p.price, v.id
      FROM products p JOIN product_variants v ON v.product_id = p.id WHERE p.id IN (:p1, :p2, :p3);
INSERT INTO payments (order_id, method, status, amount)
    SELECT currval('orders_id_seq'), 'BALANCE', 'SUCCESS', sum(price) FROM products WHERE id IN (:p1, :p2, :p3);
COMMIT;
