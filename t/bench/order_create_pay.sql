-- pgbench: the module's POST /api/v1/orders with {"payment":{"method":"BALANCE"}}
-- (one product, quantity 1, created and paid in one transaction).
-- Users 1..1000 need balance and products 1..200 stock for the whole run,
-- or the first INSUFFICIENT_BALANCE / OUT_OF_STOCK error aborts the client:
-- top them up first (see sql/README.md).
\set uid random(1, 1000)
\set pid random(1, 200)
SELECT cm_order_create(:uid, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'BALANCE');
