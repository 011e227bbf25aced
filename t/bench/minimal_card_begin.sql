-- pgbench: a minimal hand-written begin of a card payment on the same
-- schema: stock held, the order awaiting its payment, the payment PENDING
-- at gateway pg1 (placeholder: the reference the module's SQL is held to).
\set uid random(1, 1000)
\set pid random(1, 200)
BEGIN;
UPDATE product_variants SET stock = stock - 1 WHERE product_id = :pid;
INSERT INTO orders (user_id, status, total_amount, payment_amount)
    SELECT :uid, 'PAYMENT_IN_PROGRESS', price, price FROM products WHERE id = :pid;
INSERT INTO order_items (order_id, product_id, name, quantity, unit_price, amount, variant_id)
    SELECT currval('orders_id_seq'), p.id, p.name, 1, p.price, p.price, v.id
      FROM products p JOIN product_variants v ON v.product_id = p.id WHERE p.id = :pid;
INSERT INTO payments (order_id, method, status, amount, gateway, card_type, card_last4)
    SELECT currval('orders_id_seq'), 'CARD', 'PENDING', price, 'pg1', 'SAMSUNG', '3456' FROM products WHERE id = :pid;
COMMIT;
