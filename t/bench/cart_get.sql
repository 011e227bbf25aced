-- pgbench: the module's GET /api/v1/cart (demo users 1..1000, each with
-- the 5 lines t/bench/run puts in their cart)
\set uid random(1, 1000)
SELECT cm_cart_get(:uid::bigint);
