-- transfer: payment by bank transfer to a virtual account (issue 12
-- section 3).  Repeatable file: see 00_common.sql.
--
-- A TRANSFER payment is a gateway payment of the card flow
-- (40_payment.sql): cm_card_begin / cm_order_create_card with the card type
-- 'TRANSFER' and no last digits make it PENDING, the order
-- PAYMENT_IN_PROGRESS.  The gateway answers the create with a virtual
-- account; cm_transfer_issued records it and the order waits in
-- WAITING_FOR_DEPOSIT, its stock (and coupon) held.  Then:
--   - the deposit callback, confirmed by the gateway's status like a card's,
--     is cm_card_settle SUCCESS: order PAID (exactly once: forward only);
--   - past the virtual account's deadline, cm_orders_expire (30_order.sql)
--     cancels the order, releases its stock and coupon, and
--     cm__transfer_expire gives the payment up (FAILED);
--   - a deposit after that is cm_card_settle SUCCESS on a FAILED payment:
--     net_cancel REQUIRED, refunded at the gateway by the reconciler's
--     net-cancel (cm_card_cancel_due, cm_card_cancelled), both recorded in
--     the payment row and the interface log.
--
-- Lock order: order -> payment, as cm_card_settle.

-- The virtual account the gateway issued for payment p_payment (key
-- p_transaction_key at p_gateway): recorded, and the order, still
-- PAYMENT_IN_PROGRESS, waits for the deposit until p_due.  The key is
-- checked and recorded as cm_card_accepted does.  A payment decided
-- meanwhile (a deposit's callback overtook this answer) keeps its state; the
-- account is recorded all the same.  The same account again: nothing
-- changes.  -> order document.
CREATE OR REPLACE FUNCTION cm_transfer_issued(p_payment bigint, p_transaction_key text,
                                              p_gateway text, p_bank text, p_account text,
                                              p_holder text, p_due text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_order  bigint;
    v_due    timestamptz;
    v_status text;
BEGIN
    IF (p_bank ~ '^[^[:cntrl:]]{1,64}$') IS NOT TRUE
       OR (p_account ~ '^[0-9-]{4,64}$') IS NOT TRUE
       OR (p_holder ~ '^[^[:cntrl:]]{1,128}$') IS NOT TRUE THEN
        PERFORM cm__invalid('virtualAccount needs a bank, an account number and a holder');
    END IF;
    BEGIN
        v_due := p_due::timestamptz;
    EXCEPTION WHEN others THEN
        v_due := NULL;
    END;
    IF v_due IS NULL THEN
        PERFORM cm__invalid('virtualAccount.dueDate must be a timestamp');
    END IF;

    SELECT x.order_id INTO v_order
      FROM payments x
     WHERE x.id = p_payment AND x.method = 'TRANSFER';
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;
    SELECT o.status INTO v_status FROM orders o WHERE o.id = v_order FOR NO KEY UPDATE;

    -- the key, as for a card (locks the payment)
    PERFORM cm_card_accepted(p_payment, p_transaction_key, p_gateway);

    UPDATE payments
       SET va_bank = p_bank, va_account = p_account, va_holder = p_holder, va_due_at = v_due,
           updated_at = now()
     WHERE id = p_payment AND va_bank IS NULL;
    IF v_status = 'PAYMENT_IN_PROGRESS'
       AND (SELECT x.status FROM payments x WHERE x.id = p_payment) = 'PENDING' THEN
        UPDATE orders SET status = 'WAITING_FOR_DEPOSIT', updated_at = now() WHERE id = v_order;
    END IF;
    RETURN cm_order_json(v_order);
END
$$;

-- The transfers of orders p_orders (locked by the caller, cancelled by
-- cm_orders_expire) are given up: PENDING -> FAILED, 'deposit deadline
-- passed'.  A deposit the gateway reports later is refunded (net-cancel).
CREATE OR REPLACE FUNCTION cm__transfer_expire(p_orders bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE payments
       SET status = 'FAILED', reason = 'deposit deadline passed', decided_at = now(),
           next_check_at = NULL, updated_at = now()
     WHERE order_id = ANY (p_orders) AND method = 'TRANSFER' AND status = 'PENDING';
$$;
