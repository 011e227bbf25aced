-- pgbench: the database side of POST /api/v1/orders with a CARD payment,
-- before the gateway is asked: cm_order_create_card (the order created
-- PENDING_PAYMENT, its stock taken, the card payment PENDING), 1 unit of a
-- random product for a random user (top stock up first).
\set uid random(1, 1000)
\set pid random(1, 200)
SELECT cm_order_create_card(:uid::bigint, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'pg1'::text, 'SAMSUNG'::text, '3456'::text);
