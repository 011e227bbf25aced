-- pgbench: the floor under card_begin.sql, written as minimal_order_pay.sql
-- (one statement on the module's schema, every trigger firing): the stock
-- of 1 unit of a random product, the order waiting for its card payment
-- (PAYMENT_IN_PROGRESS), its part, its item, the card payment PENDING.
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
), o AS (
    INSERT INTO orders (id, user_id, status, total_amount, discount_amount, payment_amount)
    SELECT currval('orders_id_seq'), :uid, 'PAYMENT_IN_PROGRESS', v.price, 0, v.price FROM v
    RETURNING id, payment_amount
), pt AS (
    INSERT INTO order_parts (order_id, store_id, status, total_amount, discount_amount,
                             payment_amount)
    SELECT o.id, v.store_id, 'PAYMENT_IN_PROGRESS', v.price, 0, v.price FROM o, v
    RETURNING id
), i AS (
    INSERT INTO order_items (order_id, part_id, product_id, variant_id, option_values, name,
                             quantity, unit_price, amount)
    SELECT o.id, pt.id, v.product_id, v.id, v.option_values, v.name, 1, v.price, v.price
      FROM o, pt, v
), pay AS (
    INSERT INTO payments (order_id, method, status, amount, gateway, card_type, card_last4)
    SELECT o.id, 'CARD', 'PENDING', o.payment_amount, 'pg1', 'SAMSUNG', '3456' FROM o
    RETURNING id
)
SELECT o.id, pay.id FROM o, pay;
