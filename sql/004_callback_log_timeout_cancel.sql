-- 004: a gateway callback is recorded in payment_interface_request_log in
-- the same transaction that finds its payment, so the IN CALLBACK row is
-- committed before the confirming GET is sent (and its OUT STATUS row
-- written): the log reads in the order things happened.

-- The callback with key p_transaction_key at p_gateway, as it arrived
-- (p_body, masked by cm_pg_log; p_url the path it was posted to).
-- -> {"paymentId","orderId","userId","status"} of its payment, or NULL
--    for a key we do not know (the row is written all the same, with no
--    payment).
CREATE OR REPLACE FUNCTION cm_card_callback(p_gateway text, p_transaction_key text, p_url text,
                                            p_body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_pay   bigint;
    v_order bigint;
    v_doc   text;
BEGIN
    SELECT p.id, p.order_id,
           '{"paymentId":' || p.id || ',"orderId":' || p.order_id || ',"userId":' || o.user_id
           || ',"status":"' || p.status || '"}'
      INTO v_pay, v_order, v_doc
      FROM payments p
      JOIN orders o ON o.id = p.order_id
     WHERE p.gateway = p_gateway AND p.transaction_key = p_transaction_key;

    PERFORM cm_pg_log(v_pay, v_order, p_gateway, 0, 'IN', 'CALLBACK', 'POST', p_url,
                      200, 0, p_body, '{"received":true}', NULL);
    RETURN v_doc;
END
$$;

-- The payment timeout (seed 003: 10 minutes) gives up on a payment the PG
-- still has PENDING: the payment is FAILED ('payment timeout', the order
-- PAYMENT_FAILED and its stock released, as cm_card_settle does), and when
-- the PG holds a transaction for it (transaction_key known) a net-cancel is
-- owed at once: the PG must not approve it later behind our back, even if
-- the approval's callback is lost.  The caller cancels at the PG and reports
-- with cm_card_cancelled, or the reconciler does (cm_card_cancel_due).
-- -> as cm_card_settle; netCancel=true when a cancel is owed.
CREATE OR REPLACE FUNCTION cm_card_timeout(p_payment bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_doc json;
BEGIN
    v_doc := cm_card_settle(p_payment, NULL, 'FAILED', 'payment timeout')::json;
    IF (v_doc->>'applied')::boolean AND v_doc->>'transactionKey' IS NOT NULL THEN
        UPDATE payments
           SET net_cancel = 'REQUIRED', net_cancel_at = now(), updated_at = now()
         WHERE id = p_payment AND net_cancel IS NULL;
        RETURN cm__settle_json(true, true, p_payment, (v_doc->>'orderId')::bigint,
                               v_doc->>'gateway', v_doc->>'transactionKey', 'FAILED');
    END IF;
    RETURN v_doc::text;
END
$$;
