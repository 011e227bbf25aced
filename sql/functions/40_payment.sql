-- payment: card payments through external payment gateways (PGs),
-- net-cancel, the reconciler's queue, gateway callbacks and the PG
-- interface log.  Tables: payments (card columns), payment_interface_request_log
-- (003_card_payments.sql).  Repeatable file: see 00_common.sql.
--
-- States (forward only; the BEFORE UPDATE trigger below refuses anything else):
--   payment  PENDING -> SUCCESS | FAILED ;  SUCCESS -> CANCELLED (net-cancel)
--   order    PENDING_PAYMENT -> PAYMENT_IN_PROGRESS (cm_card_begin)
--            PAYMENT_IN_PROGRESS -> PAID            (approval settled)
--                                -> PAYMENT_FAILED  (decline/timeout; stock released)
--                                -> PENDING_PAYMENT (cm_card_abort: nothing reached a PG)
-- An order has at most one PENDING payment (unique partial index), and
-- cm_card_begin only starts one on a PENDING_PAYMENT order, so while a card
-- payment is pending its order is PAYMENT_IN_PROGRESS: the expiry job
-- (PENDING_PAYMENT only) leaves it alone and BALANCE payment is refused.
--
-- Net-cancel: an approval that cannot be applied (order no longer waiting for
-- it, or the payment already FAILED by timeout/abort) is recorded with
-- net_cancel = 'REQUIRED'; cm_card_settle answers netCancel=true, the caller
-- cancels at the PG and reports with cm_card_cancelled (SUCCESS -> CANCELLED,
-- net_cancel = 'DONE'); cm_card_cancel_due hands out the ones whose cancel
-- failed or was never reported.  "One SUCCESS per order" counts only
-- applied payments (net_cancel IS NULL).
--
-- Lock order (all functions, so no cycle and no deadlock):
--   order row -> payment row -> products (by id) -> user coupon -> user
--   -> sales rows (by product id; 80_sales.sql, when an order becomes PAID)
--   cm_card_begin: order; cm_card_settle / cm_card_abort: order -> payment
--   (-> user coupon -> sales rows when PAID; -> products by id -> user
--   coupon for PAYMENT_FAILED); cm_order_pay: order -> user coupon -> user
--   -> sales rows;
--   cm_card_accepted / cm_card_gateway / cm_card_cancelled: payment only;
--   cm_card_due / cm_card_cancel_due: payments SKIP LOCKED (never wait);
--   cm_orders_expire: orders SKIP LOCKED -> products -> user coupons;
--   cm_order_create[_card]: products -> user coupon -> user (and rows of
--   its own, invisible to others until commit).
-- cm_card_settle learns the order id from an unlocked read of the payment
-- (order_id never changes), locks the order, then the payment, then re-reads
-- the payment's state: concurrent settles of one payment queue on the order
-- row and the later ones find it decided.

-- ---------------------------------------------------------------------------
-- Forward-only payment states, whoever writes (functions, tests, operators)

CREATE OR REPLACE FUNCTION cm__payments_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ((OLD.status = 'PENDING' AND NEW.status IN ('SUCCESS', 'FAILED'))
            OR (OLD.status = 'SUCCESS' AND NEW.status = 'CANCELLED')) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            MESSAGE = format('payment %s: status %s -> %s is not allowed', OLD.id, OLD.status, NEW.status);
    END IF;
    RETURN NEW;
END
$$;

-- The trigger is bound here, beside its function: the versioned
-- migrations run before the function files, so on a fresh database they
-- could not bind it.  CREATE OR REPLACE keeps it idempotent.  WHEN: only
-- updates that change the status pay for the trigger call.
CREATE OR REPLACE TRIGGER payments_forward_only
    BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cm__payments_forward_only();

-- ---------------------------------------------------------------------------
-- Internal helpers

-- cm_card_settle / cm_card_cancelled answer.
CREATE OR REPLACE FUNCTION cm__settle_json(p_applied boolean, p_net_cancel boolean, p_payment bigint,
                                           p_order bigint, p_gateway text, p_key text, p_status text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"applied":' || p_applied || ',"netCancel":' || p_net_cancel
        || ',"paymentId":' || p_payment || ',"orderId":' || p_order
        || ',"gateway":' || to_json(p_gateway)::text
        || ',"transactionKey":' || coalesce(to_json(p_key)::text, 'null')
        || ',"status":"' || p_status || '"}'
$$;

-- PAYMENT_NOT_FOUND for payment p_payment.
CREATE OR REPLACE FUNCTION cm__payment_not_found(p_payment bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_NOT_FOUND',
        DETAIL = format('payment %s not found', p_payment);
END
$$;

-- Card fields as the module passes them: gateway name, card type, last 4
-- digits.  An easy payment (EASY_PAY) passes its provider as the card type
-- and no last digits (NULL), a transfer 'TRANSFER' and NULL: see
-- cm__card_start.
CREATE OR REPLACE FUNCTION cm__card_check_args(p_gateway text, p_card_type text, p_card_last4 text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (p_gateway ~ '^[A-Za-z0-9_.-]{1,64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('gateway must be 1 to 64 letters, digits, "_", "." or "-"');
    END IF;
    IF (p_card_type ~ '^[A-Z0-9_]{1,32}$') IS NOT TRUE THEN
        PERFORM cm__invalid('cardType must be 1 to 32 upper-case letters, digits or "_"');
    END IF;
    IF p_card_last4 IS NULL THEN
        IF p_card_type NOT IN ('KAKAOPAY', 'NAVERPAY', 'TRANSFER') THEN
            PERFORM cm__invalid('provider must be KAKAOPAY or NAVERPAY');
        END IF;
    ELSIF (p_card_last4 ~ '^[0-9]{4}$') IS NOT TRUE THEN
        PERFORM cm__invalid('card_last4 must be exactly 4 digits');
    END IF;
END
$$;

-- Start a card payment on order p_order, which the caller has locked and
-- found PENDING_PAYMENT: a PENDING CARD payment, order PAYMENT_IN_PROGRESS.
-- Without last digits (p_card_last4 NULL) it is an EASY_PAY payment whose
-- provider is p_card_type (the same flow, the provider recorded instead),
-- or with p_card_type 'TRANSFER' a transfer to a virtual account
-- (77_transfer.sql).
-- A zero-amount order has nothing to charge (payments.amount > 0, and PGs
-- refuse amount 0): INVALID_REQUEST, nothing written (BALANCE, or no payment
-- at all, makes such an order PAID).
CREATE OR REPLACE FUNCTION cm__card_start(p_order bigint, p_amount bigint, p_gateway text,
                                          p_card_type text, p_card_last4 text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_pay payments;
BEGIN
    v_pay := cm__card_payment_new(p_order, p_amount, p_gateway, p_card_type, p_card_last4);
    UPDATE orders SET status = 'PAYMENT_IN_PROGRESS', updated_at = now() WHERE id = p_order;
    RETURN '{"paymentId":' || v_pay.id || ',"orderId":' || p_order
        || ',"amount":' || p_amount || ',"order":' || cm_order_json(p_order) || '}';
END
$$;

-- A PENDING payment's method, card type and provider, from what the buyer
-- gave (cm__card_check_args has checked it): last digits make a CARD
-- payment of that card type; without them, 'TRANSFER' a transfer, any
-- other type an EASY_PAY payment with that provider.  Inlined where it is
-- used (a sql function of one SELECT): cm__card_payment_new, and the
-- placing statement of an order waiting for its card (30_order.sql).
CREATE OR REPLACE FUNCTION cm__card_columns(p_card_type text, p_card_last4 text,
                                            OUT method text, OUT card_type text,
                                            OUT provider text)
RETURNS SETOF record LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_card_last4 IS NOT NULL THEN 'CARD'
                WHEN p_card_type = 'TRANSFER' THEN 'TRANSFER' ELSE 'EASY_PAY' END,
           CASE WHEN p_card_last4 IS NULL THEN NULL ELSE p_card_type END,
           CASE WHEN p_card_last4 IS NULL AND p_card_type <> 'TRANSFER' THEN p_card_type END
$$;

-- The PENDING payment of cm__card_start (CARD, EASY_PAY or TRANSFER, as
-- it says), written; -> its row.
CREATE OR REPLACE FUNCTION cm__card_payment_new(p_order bigint, p_amount bigint, p_gateway text,
                                                p_card_type text, p_card_last4 text)
RETURNS payments LANGUAGE plpgsql AS $$
DECLARE
    v_pay payments;
BEGIN
    IF p_amount <= 0 THEN
        PERFORM cm__invalid(format('order %s has nothing to pay by card (amount 0)', p_order));
    END IF;
    INSERT INTO payments (order_id, method, status, amount, gateway, card_type, card_last4,
                          provider)
    SELECT p_order, c.method, 'PENDING', p_amount, p_gateway, c.card_type, p_card_last4,
           c.provider
      FROM cm__card_columns(p_card_type, p_card_last4) AS c
    RETURNING * INTO v_pay;
    RETURN v_pay;
END
$$;

-- Check a transaction key reported for a payment (locked by the caller):
-- returns the key to record (the payment had none), or NULL when there is
-- nothing to record (no key given, or the same key).  A different key, or a
-- key another payment of the same PG already holds, is PAYMENT_STATE_CONFLICT.
-- The caller writes it in the UPDATE it makes anyway (one row version, no
-- second foreign-key check).
CREATE OR REPLACE FUNCTION cm__payment_new_key(p_payment bigint, p_gateway text, p_current text,
                                               p_key text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_key IS NULL OR p_key = p_current THEN
        RETURN NULL;
    END IF;
    IF length(p_key) > 255 OR p_key = '' THEN
        PERFORM cm__invalid('transactionKey must be 1 to 255 characters');
    END IF;
    IF p_current IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_STATE_CONFLICT',
            DETAIL = format('payment %s has transaction key %s, not %s', p_payment, p_current, p_key);
    END IF;
    PERFORM FROM payments p WHERE p.gateway = p_gateway AND p.transaction_key = p_key;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_STATE_CONFLICT',
            DETAIL = format('transaction key %s of %s belongs to another payment', p_key, p_gateway);
    END IF;
    RETURN p_key;
END
$$;

-- ---------------------------------------------------------------------------
-- Starting a card payment

-- Pay an existing PENDING_PAYMENT order of p_user by card: the order becomes
-- PAYMENT_IN_PROGRESS with a PENDING CARD payment.  The order row is locked
-- first, like cm_order_pay, so of two concurrent attempts (card or balance)
-- exactly one starts; the other gets ORDER_NOT_PAYABLE.
-- -> {"paymentId","orderId","amount","order":<order document>}
CREATE OR REPLACE FUNCTION cm_card_begin(p_user bigint, p_order bigint, p_gateway text,
                                         p_card_type text, p_card_last4 text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint;
BEGIN
    PERFORM cm__card_check_args(p_gateway, p_card_type, p_card_last4);
    v_amount := cm__order_payable(p_user, p_order);    -- 78_mixpay.sql
    RETURN cm__card_start(p_order, v_amount, p_gateway, p_card_type, p_card_last4);
END
$$;

-- Create an order (exactly as cm_order_create with p_method NULL: same
-- validation, errors, locks, stock reservation, coupon p_coupon) and start
-- its card payment of the order's paymentAmount, in one transaction: the
-- order is written PAYMENT_IN_PROGRESS with its PENDING payment
-- (cm__order_place with the card, which checks it and writes the answer;
-- issue 14: no second row version of the order and its parts, the
-- document built once, the order not read back).
-- -> same document as cm_card_begin; for an order with nothing to pay
-- (PAID at once by cm_order_create) "paymentId" is null, "amount" 0 and no
-- card payment starts.
-- Databases before coupons on orders have the 6-argument version, before
-- variants the 7-argument one: dropped.
DROP FUNCTION IF EXISTS cm_order_create_card(bigint, bigint[], int[], text, text, text);
DROP FUNCTION IF EXISTS cm_order_create_card(bigint, bigint[], int[], text, text, text, bigint);
CREATE OR REPLACE FUNCTION cm_order_create_card(p_user bigint, p_products bigint[], p_quantities int[],
                                                p_gateway text, p_card_type text, p_card_last4 text,
                                                p_coupon bigint DEFAULT NULL,
                                                p_variants bigint[] DEFAULT NULL)
RETURNS text LANGUAGE sql AS $$
    SELECT cm__order_place(p_user, p_products, p_quantities, NULL, p_coupon, p_variants, true,
                           ARRAY[p_gateway, p_card_type, p_card_last4])
$$;

-- The PG accepted the request and gave its transaction key; the payment
-- stays as it is (normally PENDING).  p_gateway (optional): the PG that
-- accepted it, when a retry went to another PG than the one cm_card_begin
-- named; recorded with the key.  Also accepted on a decided payment (the key
-- is what a net-cancel needs).  Same key and gateway again: nothing changes.
-- Another key, or another gateway once a key is recorded:
-- PAYMENT_STATE_CONFLICT.  -> order document.
CREATE OR REPLACE FUNCTION cm_card_accepted(p_payment bigint, p_transaction_key text,
                                            p_gateway text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    p    record;
    v_gw text;
BEGIN
    IF p_transaction_key IS NULL THEN
        PERFORM cm__invalid('transactionKey is required');
    END IF;
    IF p_gateway IS NOT NULL AND p_gateway !~ '^[A-Za-z0-9_.-]{1,64}$' THEN
        PERFORM cm__invalid('gateway must be 1 to 64 letters, digits, "_", "." or "-"');
    END IF;
    SELECT x.order_id, x.gateway, x.transaction_key INTO p
      FROM payments x
     WHERE x.id = p_payment AND x.gateway IS NOT NULL
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;
    v_gw := coalesce(p_gateway, p.gateway);
    IF v_gw <> p.gateway AND p.transaction_key IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_STATE_CONFLICT',
            DETAIL = format('payment %s is transaction %s at %s, not at %s',
                            p_payment, p.transaction_key, p.gateway, v_gw);
    END IF;
    IF cm__payment_new_key(p_payment, v_gw, p.transaction_key, p_transaction_key) IS NOT NULL THEN
        UPDATE payments
           SET transaction_key = p_transaction_key, gateway = v_gw, updated_at = now()
         WHERE id = p_payment;
    END IF;
    RETURN cm_order_json(p.order_id);
END
$$;

-- Before a retry goes to another PG than the payment names (fallback), so
-- that a timeout on that attempt leaves the reconciler asking the right PG.
-- Only while the payment is PENDING without a transaction key (nothing
-- accepted anywhere yet); otherwise PAYMENT_STATE_CONFLICT (same gateway:
-- nothing changes).  -> {"paymentId","gateway"}
CREATE OR REPLACE FUNCTION cm_card_gateway(p_payment bigint, p_gateway text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    IF (p_gateway ~ '^[A-Za-z0-9_.-]{1,64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('gateway must be 1 to 64 letters, digits, "_", "." or "-"');
    END IF;
    SELECT x.status, x.gateway, x.transaction_key INTO p
      FROM payments x
     WHERE x.id = p_payment AND x.gateway IS NOT NULL
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;
    IF p.gateway <> p_gateway THEN
        IF p.status <> 'PENDING' OR p.transaction_key IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_STATE_CONFLICT',
                DETAIL = format('payment %s is %s at %s%s: it cannot move to %s', p_payment, p.status,
                                p.gateway, coalesce(' (transaction ' || p.transaction_key || ')', ''),
                                p_gateway);
        END IF;
        UPDATE payments SET gateway = p_gateway, updated_at = now() WHERE id = p_payment;
    END IF;
    RETURN '{"paymentId":' || p_payment || ',"gateway":' || to_json(p_gateway)::text || '}';
END
$$;

-- The request provably created nothing at any PG (refused connection,
-- pre-creation 5xx after the last retry, every breaker open): the payment is
-- FAILED with p_reason and the order goes back to PENDING_PAYMENT, stock
-- still reserved (payable again, or expired later by the TTL).  A payment
-- that already has a transaction key did reach a PG: PAYMENT_STATE_CONFLICT.
-- An already decided payment: nothing changes.  -> order document.
-- To fall back to another PG after a failed attempt: cm_card_abort, then
-- cm_card_begin with the other gateway (a new payment row).
CREATE OR REPLACE FUNCTION cm_card_abort(p_payment bigint, p_reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_order   bigint;
    v_ostatus text;
    p         record;
BEGIN
    SELECT x.order_id INTO v_order FROM payments x WHERE x.id = p_payment AND x.gateway IS NOT NULL;
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;
    SELECT o.status INTO v_ostatus FROM orders o WHERE o.id = v_order FOR NO KEY UPDATE;
    SELECT x.status, x.transaction_key INTO p FROM payments x WHERE x.id = p_payment FOR NO KEY UPDATE;

    IF p.status = 'PENDING' THEN
        IF p.transaction_key IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_STATE_CONFLICT',
                DETAIL = format('payment %s reached the gateway (transaction %s): it cannot be aborted',
                                p_payment, p.transaction_key);
        END IF;
        UPDATE payments
           SET status = 'FAILED', reason = coalesce(left(p_reason, 500), 'payment request failed'),
               decided_at = now(), next_check_at = NULL, updated_at = now()
         WHERE id = p_payment;
        IF v_ostatus = 'PAYMENT_IN_PROGRESS' THEN
            UPDATE orders SET status = 'PENDING_PAYMENT', updated_at = now() WHERE id = v_order;
            PERFORM cm__order_parts_refund(v_order);    -- points back (78_mixpay.sql)
        END IF;
    END IF;
    RETURN cm_order_json(v_order);
END
$$;

-- ---------------------------------------------------------------------------
-- Deciding a card payment

-- The PG's verdict for a payment (from a confirmed callback, a status poll or
-- the reconciler's timeout with p_transaction_key NULL).  Forward only:
--   PENDING + SUCCESS, order PAYMENT_IN_PROGRESS (or PENDING_PAYMENT)
--       -> payment SUCCESS, order PAID                      applied, no netCancel
--   PENDING + SUCCESS, order CANCELLED / PAID / PAYMENT_FAILED
--       -> payment SUCCESS + net_cancel REQUIRED, order unchanged
--                                                           applied, netCancel
--   PENDING + FAILED -> payment FAILED (p_reason); an order PAYMENT_IN_PROGRESS
--       becomes PAYMENT_FAILED and its stock is released (once: under the
--       order lock, on the status transition)                 applied
--   decided already  -> nothing changes (applied=false), except that an
--       approval for a FAILED payment (timed out/aborted, yet the PG took the
--       money) is marked net_cancel REQUIRED -> netCancel=true; netCancel stays
--       true while that cancel is owed (a repeated callback repeats the hint).
-- p_transaction_key, when given, is recorded if the payment had none (a
-- different one is PAYMENT_STATE_CONFLICT).
-- "applied" = this call decided the payment (moved it out of PENDING).
-- -> {"applied","netCancel","paymentId","orderId","gateway","transactionKey","status"}
CREATE OR REPLACE FUNCTION cm_card_settle(p_payment bigint, p_transaction_key text, p_status text,
                                          p_reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_order   bigint;
    v_ostatus text;
    p         record;
    v_applied boolean := false;
    v_nc      text;
    v_status  text;
    v_key     text;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('SUCCESS', 'FAILED') THEN
        PERFORM cm__invalid('status must be SUCCESS or FAILED');
    END IF;
    SELECT x.order_id INTO v_order FROM payments x WHERE x.id = p_payment AND x.gateway IS NOT NULL;
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;

    -- Lock order: order -> payment (-> products).
    SELECT o.status INTO v_ostatus FROM orders o WHERE o.id = v_order FOR NO KEY UPDATE;
    SELECT x.status, x.gateway, x.transaction_key, x.net_cancel INTO p
      FROM payments x
     WHERE x.id = p_payment
       FOR NO KEY UPDATE;

    v_key := cm__payment_new_key(p_payment, p.gateway, p.transaction_key, p_transaction_key);
    v_status := p.status;
    v_nc := p.net_cancel;

    IF p.status = 'PENDING' THEN
        v_applied := true;
        IF p_status = 'SUCCESS' THEN
            v_status := 'SUCCESS';
            IF v_ostatus IN ('PAYMENT_IN_PROGRESS', 'PENDING_PAYMENT', 'WAITING_FOR_DEPOSIT') THEN
                UPDATE payments
                   SET status = 'SUCCESS', transaction_key = coalesce(transaction_key, v_key),
                       decided_at = now(), next_check_at = NULL, updated_at = now()
                 WHERE id = p_payment;
                -- the coupon before the status: the sales rows that the
                -- status change takes (80_sales.sql) are the last locks
                PERFORM cm__coupon_use(v_order);
                UPDATE orders SET status = 'PAID', paid_at = now(), updated_at = now()
                 WHERE id = v_order;
            ELSE
                v_nc := 'REQUIRED';
                UPDATE payments
                   SET status = 'SUCCESS', transaction_key = coalesce(transaction_key, v_key),
                       decided_at = now(), next_check_at = NULL, updated_at = now(),
                       net_cancel = 'REQUIRED', net_cancel_at = now(),
                       reason = CASE v_ostatus
                                WHEN 'PAID' THEN 'approved after the order was paid by another payment'
                                ELSE 'approved after the order became ' || v_ostatus END
                 WHERE id = p_payment;
            END IF;
        ELSE
            v_status := 'FAILED';
            UPDATE payments
               SET status = 'FAILED', transaction_key = coalesce(transaction_key, v_key),
                   reason = coalesce(left(p_reason, 500), 'payment failed'),
                   decided_at = now(), next_check_at = NULL, updated_at = now()
             WHERE id = p_payment;
            IF v_ostatus IN ('PAYMENT_IN_PROGRESS', 'WAITING_FOR_DEPOSIT') THEN
                UPDATE orders SET status = 'PAYMENT_FAILED', updated_at = now() WHERE id = v_order;
                PERFORM cm__order_release_stock(v_order);
                PERFORM cm__coupon_release(ARRAY[v_order]);
                PERFORM cm__order_parts_refund(v_order);    -- points back (78_mixpay.sql)
            END IF;
        END IF;
    ELSIF p_status = 'SUCCESS' AND p.status = 'FAILED' AND p.net_cancel IS NULL THEN
        -- The PG approved what we had given up on: the money must go back.
        v_nc := 'REQUIRED';
        UPDATE payments
           SET net_cancel = 'REQUIRED', net_cancel_at = now(),
               transaction_key = coalesce(transaction_key, v_key), updated_at = now()
         WHERE id = p_payment;
    ELSIF v_key IS NOT NULL THEN
        UPDATE payments SET transaction_key = v_key, updated_at = now() WHERE id = p_payment;
    END IF;

    RETURN cm__settle_json(v_applied, v_nc IS NOT DISTINCT FROM 'REQUIRED' AND p_status = 'SUCCESS',
                           p_payment, v_order, p.gateway,
                           coalesce(p.transaction_key, p_transaction_key), v_status);
END
$$;

-- Outcome of a net-cancel at the PG.  p_ok: the PG cancelled it (payment
-- SUCCESS -> CANCELLED; a FAILED one stays FAILED), net_cancel DONE.  Not ok:
-- still owed (cm_card_cancel_due hands it out again).  p_reason is kept as
-- net_cancel_note.  No net-cancel owed: nothing changes (applied=false).
-- -> same shape as cm_card_settle; netCancel = a cancel is still owed.
CREATE OR REPLACE FUNCTION cm_card_cancelled(p_payment bigint, p_ok boolean, p_reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    p         record;
    v_applied boolean := false;
    v_status  text;
    v_nc      text;
BEGIN
    IF p_ok IS NULL THEN
        PERFORM cm__invalid('ok must be true or false');
    END IF;
    SELECT x.order_id, x.status, x.gateway, x.transaction_key, x.net_cancel INTO p
      FROM payments x
     WHERE x.id = p_payment AND x.gateway IS NOT NULL
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__payment_not_found(p_payment);
    END IF;
    v_status := p.status;
    v_nc := p.net_cancel;

    IF p.net_cancel = 'REQUIRED' THEN
        v_applied := true;
        IF p_ok THEN
            v_nc := 'DONE';
            IF p.status = 'SUCCESS' THEN
                v_status := 'CANCELLED';
            END IF;
            UPDATE payments
               SET status = v_status, net_cancel = 'DONE', net_cancel_attempts = net_cancel_attempts + 1,
                   net_cancel_note = left(p_reason, 500), next_check_at = NULL, updated_at = now()
             WHERE id = p_payment;
        ELSE
            UPDATE payments
               SET net_cancel_attempts = net_cancel_attempts + 1,
                   net_cancel_note = left(p_reason, 500), updated_at = now()
             WHERE id = p_payment;
        END IF;
    END IF;

    RETURN cm__settle_json(v_applied, v_nc IS NOT DISTINCT FROM 'REQUIRED', p_payment, p.order_id,
                           p.gateway, p.transaction_key, v_status);
END
$$;

-- The payment timeout (the reconciler's) gives up on a payment the PG
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

-- ---------------------------------------------------------------------------
-- Gateway callbacks

-- The callback with key p_transaction_key at p_gateway, as it arrived
-- (p_body, masked by cm_pg_log; p_url the path it was posted to).  It is
-- written to the interface log (IN CALLBACK) in the transaction that finds
-- its payment, so that row is committed before the confirming GET is sent
-- (and its OUT STATUS row written): the log reads in the order things
-- happened.
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

-- ---------------------------------------------------------------------------
-- Reconciler

-- Claim up to p_limit PENDING card payments created more than p_age_seconds
-- ago whose lease has passed, oldest first, and lease them for
-- p_lease_seconds (attempts counts the claims).  FOR NO KEY UPDATE SKIP
-- LOCKED: concurrent callers (workers, nginx instances) get disjoint sets and
-- never wait, a payment being settled right now is skipped, and a claim
-- committed meanwhile is re-checked on the newest row (its lease excludes it).
-- -> [{"paymentId","orderId","userId","gateway","transactionKey"|null,
--      "ageSeconds","amount","cardType"}, ...]
CREATE OR REPLACE FUNCTION cm_card_due(p_age_seconds int, p_lease_seconds int, p_limit int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_age_seconds IS NULL OR p_age_seconds < 0 OR p_lease_seconds IS NULL OR p_lease_seconds < 1
       OR p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        PERFORM cm__invalid('age must be >= 0, lease >= 1 and limit between 1 and 1000');
    END IF;

    WITH c AS (
        SELECT p.id
          FROM payments p
         WHERE p.status = 'PENDING'
           AND p.created_at < now() - make_interval(secs => p_age_seconds)
           AND (p.next_check_at IS NULL OR p.next_check_at <= now())
         ORDER BY p.created_at
         LIMIT p_limit
           FOR NO KEY UPDATE SKIP LOCKED
    ), u AS (
        UPDATE payments p
           SET next_check_at = now() + make_interval(secs => p_lease_seconds),
               attempts = p.attempts + 1
          FROM c
         WHERE p.id = c.id
        RETURNING p.id, p.order_id, p.gateway, p.transaction_key, p.created_at, p.amount, p.card_type
    )
    SELECT coalesce('[' || string_agg(
               '{"paymentId":' || u.id || ',"orderId":' || u.order_id || ',"userId":' || o.user_id
               || ',"gateway":' || to_json(u.gateway)::text
               || ',"transactionKey":' || coalesce(to_json(u.transaction_key)::text, 'null')
               -- a transfer waiting for its deposit is polled (a lost
               -- callback), never timed out: its deadline expires it
               || ',"ageSeconds":' || CASE WHEN o.status = 'WAITING_FOR_DEPOSIT' THEN 0
                                           ELSE floor(extract(epoch FROM now() - u.created_at))::bigint END
               || ',"amount":' || u.amount
               || ',"cardType":' || coalesce(to_json(u.card_type)::text, 'null') || '}',
               ',' ORDER BY u.created_at, u.id) || ']', '[]')
      INTO v_doc
      FROM u
      JOIN orders o ON o.id = u.order_id;
    RETURN v_doc;
END
$$;

-- Net-cancels still owed (approval recorded, cancel failed or never reported)
-- for more than p_age_seconds, leased like cm_card_due.  For each: cancel at
-- the PG, then cm_card_cancelled.
-- -> [{"paymentId","orderId","userId","gateway","transactionKey"|null,"amount","attempts"}, ...]
CREATE OR REPLACE FUNCTION cm_card_cancel_due(p_age_seconds int, p_lease_seconds int, p_limit int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_age_seconds IS NULL OR p_age_seconds < 0 OR p_lease_seconds IS NULL OR p_lease_seconds < 1
       OR p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        PERFORM cm__invalid('age must be >= 0, lease >= 1 and limit between 1 and 1000');
    END IF;

    WITH c AS (
        SELECT p.id
          FROM payments p
         WHERE p.net_cancel = 'REQUIRED'
           AND p.net_cancel_at < now() - make_interval(secs => p_age_seconds)
           AND (p.next_check_at IS NULL OR p.next_check_at <= now())
         ORDER BY p.net_cancel_at
         LIMIT p_limit
           FOR NO KEY UPDATE SKIP LOCKED
    ), u AS (
        UPDATE payments p
           SET next_check_at = now() + make_interval(secs => p_lease_seconds)
          FROM c
         WHERE p.id = c.id
        RETURNING p.id, p.order_id, p.gateway, p.transaction_key, p.net_cancel_at, p.amount,
                  p.net_cancel_attempts
    )
    SELECT coalesce('[' || string_agg(
               '{"paymentId":' || u.id || ',"orderId":' || u.order_id || ',"userId":' || o.user_id
               || ',"gateway":' || to_json(u.gateway)::text
               || ',"transactionKey":' || coalesce(to_json(u.transaction_key)::text, 'null')
               || ',"amount":' || u.amount || ',"attempts":' || u.net_cancel_attempts || '}',
               ',' ORDER BY u.net_cancel_at, u.id) || ']', '[]')
      INTO v_doc
      FROM u
      JOIN orders o ON o.id = u.order_id;
    RETURN v_doc;
END
$$;

-- Gauges for metrics: payments in flight, age of the oldest, net-cancels owed.
-- -> {"pending","oldestPendingSeconds","netCancelOwed"}
CREATE OR REPLACE FUNCTION cm_card_stats() RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"pending":' || count(*)
        || ',"oldestPendingSeconds":' || coalesce(floor(extract(epoch FROM now() - min(p.created_at)))::bigint, 0)
        || ',"netCancelOwed":' || (SELECT count(*) FROM payments n WHERE n.net_cancel = 'REQUIRED') || '}'
      INTO v_doc
      FROM payments p
     WHERE p.status = 'PENDING';
    RETURN v_doc;
END
$$;

-- ---------------------------------------------------------------------------
-- PG interface log

-- Anything shaped like a whole card number (16 digits, dashes optional, not
-- part of a longer digit run) keeps only its last 4.
CREATE OR REPLACE FUNCTION cm__mask_cards(p_text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(p_text, '(?<![0-9])[0-9]{4}-?[0-9]{4}-?[0-9]{4}-?([0-9]{4})(?![0-9])',
                          '****-****-****-\1', 'g')
$$;

-- One row per exchange with a PG.  Bodies, URL and error are masked again
-- (defence in depth: the PG's GET answers carry cardNo) and cut at 64 KB.
-- -> the row id (bigint)
CREATE OR REPLACE FUNCTION cm_pg_log(p_payment bigint, p_order bigint, p_gateway text, p_attempt int,
                                     p_direction text, p_operation text, p_method text, p_url text,
                                     p_http_status int, p_latency_ms int, p_request_body text,
                                     p_response_body text, p_error text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_direction IS NULL OR p_direction NOT IN ('OUT', 'IN')
       OR p_operation IS NULL OR p_operation NOT IN ('CREATE', 'STATUS', 'LIST', 'CANCEL', 'CALLBACK') THEN
        PERFORM cm__invalid('direction must be OUT or IN, operation CREATE, STATUS, LIST, CANCEL or CALLBACK');
    END IF;
    INSERT INTO payment_interface_request_log
           (payment_id, order_id, gateway, attempt, direction, operation, method, url,
            http_status, latency_ms, request_body, response_body, error)
    VALUES (p_payment, p_order, left(p_gateway, 64), p_attempt, p_direction, p_operation,
            left(p_method, 16), cm__mask_cards(left(p_url, 2048)), p_http_status, p_latency_ms,
            cm__mask_cards(left(p_request_body, 65536)), cm__mask_cards(left(p_response_body, 65536)),
            cm__mask_cards(left(p_error, 2048)))
    RETURNING id INTO v_id;
    RETURN v_id;
END
$$;
