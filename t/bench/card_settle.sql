-- pgbench: the database side of one card payment as the module makes it,
-- each statement its own transaction (one pgbench "transaction" = 5 commits):
--   POST /api/v1/orders {"payment":{"method":"CARD",...}}  -> cm_order_create_card
--   the PG's answer to the POST, logged                    -> cm_pg_log (CREATE)
--   its transaction key recorded                           -> cm_card_accepted
--   the status poll confirming the callback, logged        -> cm_pg_log (STATUS)
--   the verdict: 70% SUCCESS (order PAID),
--                30% FAILED (PAYMENT_FAILED, stock released) -> cm_card_settle
-- Buys 1 of a random product 1..200 for a random user 1..1000: top stock up
-- first (see sql/README.md), or the first OUT_OF_STOCK aborts the client.
-- The payment id is the one cm_order_create_card just drew in this session
-- (currval), where the module reads "paymentId" from the returned document.
-- The logged bodies are shaped like the real ones, but written without
-- `:name` (pgbench would take `"reason":null` or `:TR` for its variables).
\set uid random(1, 1000)
\set pid random(1, 200)
\set r random(1, 10)
SELECT cm_order_create_card(:uid::bigint, ARRAY[:pid]::bigint[], ARRAY[1]::int[], 'pg1'::text, 'SAMSUNG'::text, '3456'::text);
SELECT cm_pg_log(currval('payments_id_seq'), currval('orders_id_seq'), 'pg1'::text, 1, 'OUT'::text, 'CREATE'::text, 'POST'::text, '/api/v1/payments'::text, 200, 140, '{"orderId":"000001","cardType":"SAMSUNG","cardNo":"1234-5678-9814-3456","amount":5000,"callbackUrl":"http://127.0.0.1:8080/api/v1/payments/callback?gateway=pg1"}'::text, '{"meta":{"result":"SUCCESS","errorCode": null,"message": null},"data":{"transactionKey":"20261121_TR_9577c5","status":"PENDING","reason": null}}'::text, NULL::text);
SELECT cm_card_accepted(currval('payments_id_seq'), 'BENCH:' || currval('payments_id_seq'), 'pg1'::text);
SELECT cm_pg_log(currval('payments_id_seq'), currval('orders_id_seq'), 'pg1'::text, NULL::int, 'OUT'::text, 'STATUS'::text, 'GET'::text, '/api/v1/payments/20261121_TR_9577c5'::text, 200, 120, NULL::text, '{"meta":{"result":"SUCCESS"},"data":{"transactionKey":"20261121_TR_9577c5","orderId":"000001","cardType":"SAMSUNG","cardNo":"1234-5678-9814-3456","amount":5000,"status":"SUCCESS","reason": null}}'::text, NULL::text);
SELECT cm_card_settle(currval('payments_id_seq'), NULL::text, CASE WHEN :r <= 7 THEN 'SUCCESS' ELSE 'FAILED' END, CASE WHEN :r <= 7 THEN NULL ELSE 'limit exceeded' END);
