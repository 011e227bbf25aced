-- pgbench: every statement POST /api/v1/orders with a CARD payment makes,
-- each its own transaction (one pgbench "transaction" = 3 commits), the
-- ceiling of the card begin's HTTP rows (t/bench/order):
--   the order, its stock, its PENDING card payment -> cm_order_create_card
--   the PG's answer to the POST, logged            -> cm_pg_log (CREATE)
--   its transaction key recorded                   -> cm_card_accepted
-- card_begin.sql is the first alone (the order transaction, beside the
-- minimal card begin); card_settle.sql goes on to the verdict.  The
-- payment id is the one cm_order_create_card just drew in this session
-- (currval), where the module reads "paymentId" from the returned document.
\set uid random(1, 1000)
\set pid random(1, 200)
SELECT cm_order_create_card(:uid::bigint, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'pg1'::text, 'SAMSUNG'::text, '3456'::text);
SELECT cm_pg_log(currval('payments_id_seq'), currval('orders_id_seq'), 'pg1'::text, 1, 'OUT'::text, 'CREATE'::text, 'POST'::text, '/api/v1/payments'::text, 200, 140, '{"orderId":"000001","cardType":"SAMSUNG","cardNo":"1234-5678-9814-3456","amount":5000,"callbackUrl":"http://127.0.0.1:8080/api/v1/payments/callback?gateway=pg1"}'::text, '{"meta":{"result":"SUCCESS","errorCode": null,"message": null},"data":{"transactionKey":"20261121_TR_9577c5","status":"PENDING","reason": null}}'::text, NULL::text);
SELECT cm_card_accepted(currval('payments_id_seq'), 'BENCH:' || currval('payments_id_seq'), 'pg1'::text);
