-- pgbench: the module's GET /api/v1/products/best-sellers?days=3&limit=5
-- (the sales of the days before: run after order_create_pay)
SELECT cm_best_sellers(3, 5);
