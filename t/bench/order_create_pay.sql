-- pgbench: the module's POST /api/v1/orders with {"payment":{"method":"BALANCE"}}
-- (one product, quantity 1, created and paid in one transaction).
-- Users 1..1000 need balance and products 1..200 stock for the whole run,
-- or the first INSUFFICIENT_BALANCE / OUT_OF_STOCK error aborts the client:
-- top them up first (see sql/README.md).
-- The module sends SELECT cm_order_create($1::bigint, $2::bigint[], $3::int[], $4::text)
-- with the arrays as text parameters ('{17}'); pgbench variables are numbers,
-- so the arrays are built with ARRAY[...] here: same function, same plan.
\set uid random(1, 1000)
\set pid random(1, 200)
SELECT cm_order_create(:uid::bigint, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'BALANCE'::text);
