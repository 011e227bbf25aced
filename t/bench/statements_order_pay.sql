-- pgbench: the minimal order as issue 14 measured it: a transaction of
-- plain statements written by hand on the module's schema (every trigger
-- firing), one round trip each: the variant's stock, the balance, the
-- order with its part and item (one statement: the order's triggers need
-- its items), the BALANCE payment, the ledger row.  1 unit of a random
-- product paid by a random user (top stock and balances up first).
-- minimal_order_pay.sql is the same in one statement (the floor).
\set uid random(1, 1000)
\set pid random(1, 200)
BEGIN;
SELECT set_config('commerce.stock_reason', 'ORDER', true), set_config('commerce.stock_order', nextval('orders_id_seq')::text, true);
UPDATE product_variants SET stock = stock - 1, updated_at = now() WHERE product_id = :pid AND stock >= 1;
UPDATE users SET balance = balance - (SELECT price FROM products WHERE id = :pid) WHERE id = :uid;
WITH o AS (INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount, paid_at) SELECT currval('orders_id_seq'), :uid, 'PAID', p.price, 0, p.price, now() FROM products p WHERE p.id = :pid RETURNING id), pt AS (INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount, payment_amount) SELECT o.id, p.store_id, 'PAID', p.price, 0, p.price FROM o, products p WHERE p.id = :pid RETURNING id) INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name, quantity, unit_price, amount) SELECT o.id, pt.id, p.id, v.id, v.option_values, p.name, 1, p.price + v.price_delta, p.price + v.price_delta FROM o, pt, products p JOIN product_variants v ON v.product_id = p.id WHERE p.id = :pid;
INSERT INTO payments (order_id, method, status, amount) SELECT currval('orders_id_seq'), 'BALANCE', 'SUCCESS', p.price FROM products p WHERE p.id = :pid;
INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id) SELECT :uid, 'PAYMENT', -p.price, u.balance, currval('orders_id_seq') FROM products p, users u WHERE p.id = :pid AND u.id = :uid;
END;
