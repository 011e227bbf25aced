-- 003_card_payments: card payments through external payment gateways (PGs),
-- net-cancel, the reconciler's queue, the PG interface log, idempotency keys.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
-- Same conventions as 002: every API function returns text (compact JSON,
-- keys in the contract's order, strings through to_json()), business errors
--     RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = '<CODE>', DETAIL = '<text>'
-- READ COMMITTED, invariants held by row locks and conditional UPDATEs.
--
-- States (forward only; a BEFORE UPDATE trigger refuses anything else):
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
-- failed or was never reported.  "One SUCCESS per order" now counts only
-- applied payments (net_cancel IS NULL).
--
-- Lock order (all functions, so no cycle and no deadlock):
--   order row -> payment row -> products (by id) -> user
--   cm_card_begin: order; cm_card_settle / cm_card_abort: order -> payment
--   (-> products by id for PAYMENT_FAILED); cm_order_pay: order -> user;
--   cm_card_accepted / cm_card_gateway / cm_card_cancelled: payment only;
--   cm_card_due / cm_card_cancel_due: payments SKIP LOCKED (never wait);
--   cm_orders_expire: orders SKIP LOCKED -> products;
--   cm_order_create[_card]: products -> user (and rows of its own,
--   invisible to others until commit).
-- cm_card_settle learns the order id from an unlocked read of the payment
-- (order_id never changes), locks the order, then the payment, then re-reads
-- the payment's state: concurrent settles of one payment queue on the order
-- row and the later ones find it decided.

-- ---------------------------------------------------------------------------
-- Schema

-- New columns are NULL or have a constant default: no table rewrite.
ALTER TABLE payments
    ADD COLUMN gateway             text,
    ADD COLUMN transaction_key     text,
    ADD COLUMN card_type           text,
    ADD COLUMN card_last4          char(4),
    ADD COLUMN reason              text,
    ADD COLUMN attempts            integer NOT NULL DEFAULT 0,
    ADD COLUMN next_check_at       timestamptz,
    ADD COLUMN decided_at          timestamptz,
    ADD COLUMN net_cancel          text,
    ADD COLUMN net_cancel_at       timestamptz,
    ADD COLUMN net_cancel_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN net_cancel_note     text,
    -- a CARD payment always names its PG, a BALANCE one never has card fields
    ADD CONSTRAINT payments_gateway_check CHECK ((method = 'CARD') = (gateway IS NOT NULL)),
    ADD CONSTRAINT payments_card_fields_check CHECK (method = 'CARD'
        OR (transaction_key IS NULL AND card_type IS NULL AND card_last4 IS NULL
            AND reason IS NULL AND net_cancel IS NULL)),
    -- never the whole card number: 4 digits at most
    ADD CONSTRAINT payments_card_last4_check CHECK (card_last4 ~ '^[0-9]{4}$'),
    ADD CONSTRAINT payments_pending_card_check CHECK (status <> 'PENDING' OR method = 'CARD'),
    ADD CONSTRAINT payments_decided_at_check CHECK (method <> 'CARD'
        OR (status = 'PENDING') = (decided_at IS NULL)),
    ADD CONSTRAINT payments_net_cancel_check CHECK (net_cancel IS NULL
        OR (net_cancel = 'REQUIRED' AND status IN ('SUCCESS', 'FAILED'))
        OR (net_cancel = 'DONE' AND status IN ('CANCELLED', 'FAILED'))),
    ADD CONSTRAINT payments_net_cancel_at_check CHECK ((net_cancel IS NULL) = (net_cancel_at IS NULL)),
    ADD CONSTRAINT payments_attempts_check CHECK (attempts >= 0 AND net_cancel_attempts >= 0);

-- Rows are updated a few times (lease, key, decision): leave room for HOT.
ALTER TABLE payments SET (fillfactor = 80);

-- "Paid at most once" counts applied payments only: an approval that arrives
-- for an order paid by another payment is recorded SUCCESS + net_cancel.
DROP INDEX payments_one_success_per_order_idx;
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_id)
    WHERE status = 'SUCCESS' AND net_cancel IS NULL;

-- At most one card payment in flight per order.
CREATE UNIQUE INDEX payments_one_pending_per_order_idx ON payments (order_id)
    WHERE status = 'PENDING';

-- The PG's key: callbacks and status polls find the payment by it.
CREATE UNIQUE INDEX payments_gateway_transaction_key_idx ON payments (gateway, transaction_key)
    WHERE transaction_key IS NOT NULL;

-- Reconciler queue (cm_card_due): pending payments, oldest first.  Partial:
-- as small as the set of payments in flight.
CREATE INDEX payments_pending_created_at_idx ON payments (created_at)
    WHERE status = 'PENDING';

-- Net-cancels still owed (cm_card_cancel_due).
CREATE INDEX payments_net_cancel_idx ON payments (net_cancel_at)
    WHERE net_cancel = 'REQUIRED';

-- Forward-only payment states, whoever writes (functions, tests, operators).
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

-- WHEN: only updates that change the status pay for the trigger call.
CREATE TRIGGER payments_forward_only
    BEFORE UPDATE OF status ON payments
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cm__payments_forward_only();

-- Every exchange with a PG.  A log: no foreign keys (a log row must never be
-- refused, and must survive whatever happens to what it points at); bodies
-- are masked again by cm_pg_log whatever the caller did.
CREATE TABLE payment_interface_request_log (
    id            bigserial   PRIMARY KEY,
    payment_id    bigint,
    order_id      bigint,
    gateway       text,
    attempt       integer,
    direction     text        NOT NULL CHECK (direction IN ('OUT', 'IN')),
    operation     text        NOT NULL CHECK (operation IN ('CREATE', 'STATUS', 'LIST', 'CANCEL', 'CALLBACK')),
    method        text,
    url           text,
    http_status   integer,
    latency_ms    integer,
    request_body  text,
    response_body text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- "What happened to payment N": its exchanges in order.
CREATE INDEX payment_interface_request_log_payment_idx
    ON payment_interface_request_log (payment_id, id) WHERE payment_id IS NOT NULL;
-- Retention by time: rows are appended in time order, BRIN is tiny.
CREATE INDEX payment_interface_request_log_created_at_idx
    ON payment_interface_request_log USING brin (created_at);

-- Idempotency-Key (IETF draft) per user.  IN_FLIGHT from cm_idem_begin until
-- cm_idem_finish stores the response (DONE) or drops the key (5xx).
CREATE TABLE idempotency_keys (
    user_id       bigint      NOT NULL,
    idem_key      text        NOT NULL CHECK (idem_key ~ '^[ -~]{1,255}$'),
    route         text        NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
    request_hash  text        NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    state         text        NOT NULL CHECK (state IN ('IN_FLIGHT', 'DONE')),
    http_status   integer     CHECK (http_status BETWEEN 100 AND 599),
    response_body text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idem_key),
    CHECK ((state = 'DONE') = (http_status IS NOT NULL))
);

-- cm_idem_purge: oldest first.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- ---------------------------------------------------------------------------
-- JSON fragments (inlined, see 002)

-- Payment inside the order document.  CARD payments carry "reason" (decline
-- reason or null); BALANCE payments keep their 002 shape exactly
-- {"id","method","status","amount"} (clients and tests compare it).
CREATE OR REPLACE FUNCTION cm__payment_json(p_id bigint, p_method text, p_status text, p_amount bigint,
                                            p_reason text)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"method":"' || p_method || '","status":"' || p_status
        || '","amount":' || p_amount
        || CASE WHEN p_method = 'CARD'
                THEN ',"reason":' || coalesce(to_json(p_reason)::text, 'null')
                ELSE '' END
        || '}'
$$;

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

-- The order document, as in 002, with the 5-argument payment fragment.
CREATE OR REPLACE FUNCTION cm_order_json(p_order bigint, p_user bigint DEFAULT NULL)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT cm__order_doc(o.id, o.user_id, o.status,
               coalesce((SELECT '[' || string_agg(cm__item_json(i.product_id, i.name, i.quantity,
                                                                i.unit_price, i.amount),
                                                  ',' ORDER BY i.product_id) || ']'
                           FROM order_items i
                          WHERE i.order_id = o.id), '[]'),
               o.total_amount, o.discount_amount, o.payment_amount,
               (SELECT cm__payment_json(p.id, p.method, p.status, p.amount, p.reason)
                  FROM payments p
                 WHERE p.order_id = o.id
                 ORDER BY p.id DESC
                 LIMIT 1),
               o.created_at)
      INTO v_doc
      FROM orders o
     WHERE o.id = p_order
       AND (p_user IS NULL OR o.user_id = p_user);
    RETURN v_doc;
END
$$;

-- ---------------------------------------------------------------------------
-- Internal helpers

CREATE OR REPLACE FUNCTION cm__invalid(p_detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST', DETAIL = p_detail;
END
$$;

CREATE OR REPLACE FUNCTION cm__payment_not_found(p_payment bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_NOT_FOUND',
        DETAIL = format('payment %s not found', p_payment);
END
$$;

-- Card fields as the module passes them: gateway name, card type, last 4 digits.
CREATE OR REPLACE FUNCTION cm__card_check_args(p_gateway text, p_card_type text, p_card_last4 text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (p_gateway ~ '^[A-Za-z0-9_.-]{1,64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('gateway must be 1 to 64 letters, digits, "_", "." or "-"');
    END IF;
    IF (p_card_type ~ '^[A-Z0-9_]{1,32}$') IS NOT TRUE THEN
        PERFORM cm__invalid('cardType must be 1 to 32 upper-case letters, digits or "_"');
    END IF;
    IF (p_card_last4 ~ '^[0-9]{4}$') IS NOT TRUE THEN
        PERFORM cm__invalid('card_last4 must be exactly 4 digits');
    END IF;
END
$$;

-- Start a card payment on order p_order, which the caller has locked and
-- found PENDING_PAYMENT: a PENDING CARD payment, order PAYMENT_IN_PROGRESS.
-- A zero-amount order has nothing to charge (payments.amount > 0, and PGs
-- refuse amount 0): INVALID_REQUEST, nothing written (BALANCE, or no payment
-- at all, makes such an order PAID).
CREATE OR REPLACE FUNCTION cm__card_start(p_order bigint, p_amount bigint, p_gateway text,
                                          p_card_type text, p_card_last4 text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_pay bigint;
BEGIN
    IF p_amount <= 0 THEN
        PERFORM cm__invalid(format('order %s has nothing to pay by card (amount 0)', p_order));
    END IF;
    INSERT INTO payments (order_id, method, status, amount, gateway, card_type, card_last4)
    VALUES (p_order, 'CARD', 'PENDING', p_amount, p_gateway, p_card_type, p_card_last4)
    RETURNING id INTO v_pay;
    UPDATE orders SET status = 'PAYMENT_IN_PROGRESS', updated_at = now() WHERE id = p_order;
    RETURN '{"paymentId":' || v_pay || ',"orderId":' || p_order
        || ',"amount":' || p_amount || ',"order":' || cm_order_json(p_order) || '}';
END
$$;

-- Give back the stock of one order (the caller holds the order row and has
-- just moved it out of a stock-holding state, so this runs once per order).
-- Products locked in id order, as everywhere.
CREATE OR REPLACE FUNCTION cm__order_release_stock(p_order bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_pids bigint[];
    v_qtys int[];
BEGIN
    SELECT array_agg(i.product_id ORDER BY i.product_id), array_agg(i.quantity ORDER BY i.product_id)
      INTO v_pids, v_qtys
      FROM order_items i
     WHERE i.order_id = p_order;

    PERFORM FROM products p WHERE p.id = ANY (v_pids) ORDER BY p.id FOR NO KEY UPDATE;

    UPDATE products p
       SET stock = p.stock + u.qty, updated_at = now()
      FROM unnest(v_pids, v_qtys) AS u(pid, qty)
     WHERE p.id = u.pid;
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
    o record;
BEGIN
    PERFORM cm__card_check_args(p_gateway, p_card_type, p_card_last4);

    SELECT x.status, x.payment_amount INTO o
      FROM orders x
     WHERE x.id = p_order AND x.user_id = p_user
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_FOUND',
            DETAIL = format('order %s not found', p_order);
    END IF;
    IF o.status <> 'PENDING_PAYMENT' THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_PAYABLE',
            DETAIL = format('order %s is %s', p_order, o.status);
    END IF;

    RETURN cm__card_start(p_order, o.payment_amount, p_gateway, p_card_type, p_card_last4);
END
$$;

-- Create an order (exactly as cm_order_create with p_method NULL: same
-- validation, errors, locks, stock reservation) and start its card payment,
-- in one transaction.  -> same document as cm_card_begin.
CREATE OR REPLACE FUNCTION cm_order_create_card(p_user bigint, p_products bigint[], p_quantities int[],
                                                p_gateway text, p_card_type text, p_card_last4 text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_order  bigint;
    v_amount bigint;
BEGIN
    PERFORM cm__card_check_args(p_gateway, p_card_type, p_card_last4);
    PERFORM cm_order_create(p_user, p_products, p_quantities, NULL);
    -- The id cm_order_create just drew in this session (no other nextval since).
    v_order := currval('orders_id_seq');
    SELECT o.payment_amount INTO v_amount FROM orders o WHERE o.id = v_order;
    RETURN cm__card_start(v_order, v_amount, p_gateway, p_card_type, p_card_last4);
END
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
     WHERE x.id = p_payment AND x.method = 'CARD'
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
     WHERE x.id = p_payment AND x.method = 'CARD'
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
    SELECT x.order_id INTO v_order FROM payments x WHERE x.id = p_payment AND x.method = 'CARD';
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
    SELECT x.order_id INTO v_order FROM payments x WHERE x.id = p_payment AND x.method = 'CARD';
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
            IF v_ostatus IN ('PAYMENT_IN_PROGRESS', 'PENDING_PAYMENT') THEN
                UPDATE payments
                   SET status = 'SUCCESS', transaction_key = coalesce(transaction_key, v_key),
                       decided_at = now(), next_check_at = NULL, updated_at = now()
                 WHERE id = p_payment;
                UPDATE orders SET status = 'PAID', updated_at = now() WHERE id = v_order;
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
            IF v_ostatus = 'PAYMENT_IN_PROGRESS' THEN
                UPDATE orders SET status = 'PAYMENT_FAILED', updated_at = now() WHERE id = v_order;
                PERFORM cm__order_release_stock(v_order);
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
     WHERE x.id = p_payment AND x.method = 'CARD'
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
               || ',"ageSeconds":' || floor(extract(epoch FROM now() - u.created_at))::bigint
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

-- A payment by its PG transaction key (callbacks).
-- -> {"paymentId","orderId","userId","status"} | PAYMENT_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_card_get_by_key(p_gateway text, p_transaction_key text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"paymentId":' || p.id || ',"orderId":' || p.order_id || ',"userId":' || o.user_id
           || ',"status":"' || p.status || '"}'
      INTO v_doc
      FROM payments p
      JOIN orders o ON o.id = p.order_id
     WHERE p.gateway = p_gateway AND p.transaction_key = p_transaction_key;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PAYMENT_NOT_FOUND',
            DETAIL = format('no payment with transaction key %s at %s', p_transaction_key, p_gateway);
    END IF;
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

-- ---------------------------------------------------------------------------
-- Idempotency keys

-- Before the operation.  -> {"state","status","body"}:
--   "new"       key recorded IN_FLIGHT: run the operation, then cm_idem_finish
--   "replay"    done before with the same route and body hash: answer
--               "status"/"body" again (the module says so in a header)
--   "mismatch"  the key was used with another route or body (422)
--   "in_flight" the first request with this key is still running (409)
-- status/body are null except for replay.  Concurrent begins with one key:
-- INSERT .. ON CONFLICT DO NOTHING lets exactly one insert (the others wait
-- for it to commit, insert nothing, then read its row).  A key older than
-- 24 h is taken over as new (one taker: conditional UPDATE).  An IN_FLIGHT
-- key is never taken over before that: its request may have done its work.
CREATE OR REPLACE FUNCTION cm_idem_begin(p_user bigint, p_key text, p_route text, p_hash text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    i int;
BEGIN
    IF p_user IS NULL OR (p_key ~ '^[ -~]{1,255}$') IS NOT TRUE THEN
        PERFORM cm__invalid('Idempotency-Key must be 1 to 255 printable ASCII characters');
    END IF;
    IF p_route IS NULL OR length(p_route) NOT BETWEEN 1 AND 200 OR (p_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('route and request hash (64 hex digits) are required');
    END IF;

    FOR i IN 1 .. 3 LOOP
        INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash, state)
        VALUES (p_user, p_key, p_route, p_hash, 'IN_FLIGHT')
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN '{"state":"new","status":null,"body":null}';
        END IF;

        SELECT k.route, k.request_hash, k.state, k.http_status, k.response_body, k.created_at INTO r
          FROM idempotency_keys k
         WHERE k.user_id = p_user AND k.idem_key = p_key;
        IF FOUND THEN
            IF r.created_at < now() - interval '24 hours' THEN
                UPDATE idempotency_keys
                   SET route = p_route, request_hash = p_hash, state = 'IN_FLIGHT', http_status = NULL,
                       response_body = NULL, created_at = now(), updated_at = now()
                 WHERE user_id = p_user AND idem_key = p_key
                   AND created_at < now() - interval '24 hours';
                IF FOUND THEN
                    RETURN '{"state":"new","status":null,"body":null}';
                END IF;
                CONTINUE;       -- another request took it over: read again
            END IF;
            IF r.route <> p_route OR r.request_hash <> p_hash THEN
                RETURN '{"state":"mismatch","status":null,"body":null}';
            END IF;
            IF r.state = 'IN_FLIGHT' THEN
                RETURN '{"state":"in_flight","status":null,"body":null}';
            END IF;
            RETURN '{"state":"replay","status":' || r.http_status
                || ',"body":' || coalesce(to_json(r.response_body)::text, 'null') || '}';
        END IF;
        -- The row went away between the INSERT and the SELECT (its request
        -- finished with a 5xx, or it was purged): try again.
    END LOOP;
    RETURN '{"state":"in_flight","status":null,"body":null}';
END
$$;

-- After the operation: store the response (DONE) for replays, or drop the
-- key for a 5xx so the client may retry.  Only an IN_FLIGHT key changes.
-- -> {"state":"done"|"deleted"|"none"}
CREATE OR REPLACE FUNCTION cm_idem_finish(p_user bigint, p_key text, p_status int, p_body text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_status IS NULL OR p_status NOT BETWEEN 100 AND 599 THEN
        PERFORM cm__invalid('status must be an HTTP status');
    END IF;
    IF p_status >= 500 THEN
        DELETE FROM idempotency_keys
         WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
        IF FOUND THEN
            RETURN '{"state":"deleted"}';
        END IF;
    ELSE
        UPDATE idempotency_keys
           SET state = 'DONE', http_status = p_status, response_body = p_body, updated_at = now()
         WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
        IF FOUND THEN
            RETURN '{"state":"done"}';
        END IF;
    END IF;
    RETURN '{"state":"none"}';
END
$$;

-- Drop up to p_limit keys first used more than 24 h ago (oldest first; SKIP
-- LOCKED, so it never waits on a begin/finish).  -> number deleted (int).
CREATE OR REPLACE FUNCTION cm_idem_purge(p_limit int DEFAULT 10000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    -- ctid list of the rows locked by the sub-select: a TID scan, whatever
    -- the planner guesses about the number of rows.
    DELETE FROM idempotency_keys k
     WHERE k.ctid = ANY (ARRAY(SELECT x.ctid
                                 FROM idempotency_keys x
                                WHERE x.created_at < now() - interval '24 hours'
                                ORDER BY x.created_at
                                LIMIT greatest(coalesce(p_limit, 10000), 1)
                                  FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
