-- pgbench: the module's GET /api/v1/products/{id} (demo catalogue: ids 1..200)
\set id random(1, 200)
SELECT cm_product_get(:id::bigint);
