-- pgbench: a minimal hand-written create+pay by balance of one item on the
-- same schema (placeholder: the reference the module's SQL is held to).
\set uid random(1, 1000)
\set pid random(1, 200)
BEGIN;
UPDATE product_variants SET stock = stock - 1 WHERE product_id = :pid;
UPDATE users SET balance = balance - (SELECT price FROM products WHERE id = :pid) WHERE id = :uid;
INSERT INTO orders (user_id, status, total_amount, payment_amount, paid_at)
    SELECT :uid, 'PAID', price, price, now() FROM products WHERE id = :pid;
INSERT INTO order_items (order_id, product_id, name, quantity, unit_price, amount, variant_id)
    SELECT currval('orders_id_seq'), p.id, p.name, 1, p.price, p.price, v.id
      FROM products p JOIN product_variants v ON v.product_id = p.id WHERE p.id = :pid;
INSERT INTO payments (order_id, method, status, amount)
    SELECT currval('orders_id_seq'), 'BALANCE', 'SUCCESS', price FROM products WHERE id = :pid;
COMMIT;
