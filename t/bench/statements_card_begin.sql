-- pgbench: the card begin as plain statements in a transaction (see
-- statements_order_pay.sql): the variant's stock, the order waiting for
-- its card payment (PAYMENT_IN_PROGRESS) with its part and item, the card
-- payment PENDING.  minimal_card_begin.sql is the same in one statement.
\set uid random(1, 1000)
\set pid random(1, 200)
BEGIN;
SELECT set_config('commerce.stock_reason', 'ORDER', true), set_config('commerce.stock_order', nextval('orders_id_seq')::text, true);
UPDATE product_variants SET stock = stock - 1, updated_at = now() WHERE product_id = :pid AND stock >= 1;
WITH o AS (INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount) SELECT currval('orders_id_seq'), :uid, 'PAYMENT_IN_PROGRESS', p.price, 0, p.price FROM products p WHERE p.id = :pid RETURNING id), pt AS (INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount, payment_amount) SELECT o.id, p.store_id, 'PAYMENT_IN_PROGRESS', p.price, 0, p.price FROM o, products p WHERE p.id = :pid RETURNING id) INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name, quantity, unit_price, amount) SELECT o.id, pt.id, p.id, v.id, v.option_values, p.name, 1, p.price + v.price_delta, p.price + v.price_delta FROM o, pt, products p JOIN product_variants v ON v.product_id = p.id WHERE p.id = :pid;
INSERT INTO payments (order_id, method, status, amount, gateway, card_type, card_last4) SELECT currval('orders_id_seq'), 'CARD', 'PENDING', p.price, 'pg1', 'SAMSUNG', '3456' FROM products p WHERE p.id = :pid;
END;
