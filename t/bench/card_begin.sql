-- pgbench: the begin of a card payment as the module makes it for
-- POST /api/v1/orders {"payment":{"method":"CARD",...}}: the order created,
-- its stock held and its payment PENDING at gateway pg1 (the call to the
-- gateway and what follows are not in it).  Top up stock first.
\set uid random(1, 1000)
\set pid random(1, 200)
SELECT cm_order_create_card(:uid::bigint, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'pg1'::text, 'SAMSUNG'::text, '3456'::text);
