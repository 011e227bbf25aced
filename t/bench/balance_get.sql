-- pgbench: the module's GET /api/v1/balance (demo users: ids 1..1000)
\set uid random(1, 1000)
SELECT cm_balance_get(:uid::bigint);
