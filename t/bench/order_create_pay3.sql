-- pgbench: the module's POST /api/v1/orders with three items (three
-- distinct random products, quantity 1 each), paid from the balance in the
-- same transaction.  Top up balances and stock first (see order_create_pay.sql).
\set uid random(1, 1000)
\set p1 random(1, 66)
\set p2 random(67, 133)
\set p3 random(134, 200)
SELECT cm_order_create(:uid::bigint, ARRAY[:p1,:p2,:p3]::bigint[], ARRAY[1,1,1]::int[], 'BALANCE'::text);
