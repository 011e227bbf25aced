-- pgbench: the module's GET /api/v1/products?page=N&size=20, N random in
-- 0..9 (the demo catalogue's 200 products: every page full; the module
-- sends SELECT cm_product_list($1::int, $2::int)).
\set page random(0, 9)
SELECT cm_product_list(:page::int, 20::int);
