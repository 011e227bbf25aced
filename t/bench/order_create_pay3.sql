-- pgbench: order_create_pay.sql with 3 items: three distinct random
-- products (1..66, 67..133, 134..200), 1 unit each, paid from the balance
-- in the same transaction (top stock and balances up first).
\set uid random(1, 1000)
\set p1 random(1, 66)
\set p2 random(67, 133)
\set p3 random(134, 200)
SELECT cm_order_create(:uid::bigint, ARRAY[:p1, :p2, :p3]::bigint[], ARRAY[1, 1, 1]::int[], 'BALANCE'::text);
