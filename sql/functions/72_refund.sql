-- refund: cancellations before shipping, returns after delivery, and the
-- refunds of both (issue 13 section 3; tables 027_fulfilment.sql and
-- 029_refunds.sql).  Repeatable file: see 00_common.sql.
--
-- A refund gives back part of what an order part was paid, across the
-- order's payments, in this order (README.md, "Refunds"): the external
-- payment first (CARD, EASY_PAY, TRANSFER), then BALANCE, then POINTS.
-- Each payment gives at most what is left of it (its amount less its
-- refunds that did not fail); each piece is a refunds row.  BALANCE and
-- POINTS are given back in the refund's transaction (DONE, ledger REFUND /
-- RESTORE); the external piece is PENDING until the refund job's gateway
-- cancel answers (cm_refund_due, cm_refund_done).  order_parts'
-- refunded_amount adds every piece (its CHECK: never more than the part's
-- payment amount).
--
-- Lock order: order row (FOR NO KEY UPDATE: one cancel, return or refund
-- of an order at a time) -> its parts -> return -> refunds -> products
-- by id -> variants -> coupon -> user.  The same prefix as
-- cm__order_parts_refund (order -> payment -> products -> coupon -> user).

-- ---------------------------------------------------------------------------
-- Stock given back

-- The units of orders p_orders (of their parts p_parts only, when not
-- NULL) back to their variants, one ledger row per item with reason
-- p_reason.  Products locked in id order first, as cm_order_create does.
-- The callers hold the orders' rows and have just moved them (or the
-- parts) out of a stock-holding state, so this runs once per unit.
CREATE OR REPLACE FUNCTION cm__stock_back(p_orders bigint[], p_parts bigint[], p_reason text)
RETURNS void LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    r record;
BEGIN
    PERFORM FROM products p
     WHERE p.id IN (SELECT i.product_id FROM order_items i
                     WHERE i.order_id = ANY (p_orders)
                       AND (p_parts IS NULL OR i.part_id = ANY (p_parts)))
     ORDER BY p.id
       FOR NO KEY UPDATE;
    FOR r IN
        SELECT i.order_id, i.variant_id, i.quantity
          FROM order_items i
         WHERE i.order_id = ANY (p_orders)
           AND (p_parts IS NULL OR i.part_id = ANY (p_parts))
         ORDER BY i.product_id, i.variant_id, i.order_id
    LOOP
        PERFORM cm__stock_context(p_reason, NULL, r.order_id, NULL);
        UPDATE product_variants SET stock = stock + r.quantity, updated_at = now()
         WHERE id = r.variant_id;
    END LOOP;
    PERFORM cm__stock_context(NULL, NULL, NULL, NULL);
END
$$;

-- Unpaid orders p_ids (locked by the caller) end CANCELLED: the event
-- order.expired (p_expired) or order.cancelled, their transfers given up
-- (77_transfer.sql), their stock back (ORDER_EXPIRED / ORDER_CANCELLED).
-- The callers then release the coupons and give back points and balance
-- parts (cm__coupon_release, cm__order_parts_refund).
CREATE OR REPLACE FUNCTION cm__orders_unpaid_end(p_ids bigint[], p_expired boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('commerce.cancel_reason',
                       CASE WHEN p_expired THEN 'expired' ELSE 'cancelled by the buyer' END, true);
    UPDATE orders
       SET status = 'CANCELLED', updated_at = now()
     WHERE id = ANY (p_ids);
    PERFORM set_config('commerce.cancel_reason', '', true);
    PERFORM cm__transfer_expire(p_ids);
    PERFORM cm__stock_back(p_ids, NULL,
                           CASE WHEN p_expired THEN 'ORDER_EXPIRED' ELSE 'ORDER_CANCELLED' END);
END
$$;

-- ---------------------------------------------------------------------------
-- Refunds

-- Give back p_amount of part p_part (the caller holds its order's row):
-- refunds rows of kind p_kind (return p_return for RETURN), external
-- first, then BALANCE, then POINTS, each at most what is left of its
-- payment.  More than the payments hold: REFUND_EXCEEDS_PAID.  The part's
-- refunded_amount grows by p_amount (its CHECK refuses more than it was
-- paid).  One order.refunded event.  p_amount 0: nothing.
CREATE OR REPLACE FUNCTION cm__refund_part(p_part bigint, p_amount bigint, p_kind text,
                                           p_return bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_order bigint;
    v_user  bigint;
    v_left  bigint := p_amount;
    v_take  bigint;
    v_after bigint;
    v_ids   bigint[] := '{}';
    v_id    bigint;
    r       record;
BEGIN
    IF p_amount <= 0 THEN
        RETURN;
    END IF;
    SELECT x.order_id, o.user_id INTO v_order, v_user
      FROM order_parts x JOIN orders o ON o.id = x.order_id WHERE x.id = p_part;

    FOR r IN
        SELECT p.id, p.method, p.amount
               - coalesce((SELECT sum(f.amount) FROM refunds f
                            WHERE f.payment_id = p.id AND f.status <> 'FAILED'), 0) AS left_amount
          FROM payments p
         WHERE p.order_id = v_order AND p.status = 'SUCCESS' AND p.net_cancel IS NULL
         ORDER BY CASE p.method WHEN 'POINTS' THEN 3 WHEN 'BALANCE' THEN 2 ELSE 1 END, p.id
    LOOP
        EXIT WHEN v_left = 0;
        v_take := least(v_left, r.left_amount);
        CONTINUE WHEN v_take <= 0;
        v_left := v_left - v_take;
        IF r.method = 'POINTS' THEN
            UPDATE users SET points = points + v_take WHERE id = v_user
            RETURNING points INTO v_after;
            INSERT INTO points_ledger (user_id, kind, amount, points_after, order_id)
            VALUES (v_user, 'RESTORE', v_take, v_after, v_order);
        ELSIF r.method = 'BALANCE' THEN
            UPDATE users SET balance = balance + v_take WHERE id = v_user
            RETURNING balance INTO v_after;
            INSERT INTO balance_ledger (user_id, kind, amount, balance_after, order_id)
            VALUES (v_user, 'REFUND', v_take, v_after, v_order);
        END IF;
        INSERT INTO refunds (order_id, part_id, return_id, payment_id, kind, method, amount,
                             status, done_at, next_attempt_at)
        VALUES (v_order, p_part, p_return, r.id, p_kind, r.method, v_take,
                CASE WHEN r.method IN ('POINTS', 'BALANCE') THEN 'DONE' ELSE 'PENDING' END,
                CASE WHEN r.method IN ('POINTS', 'BALANCE') THEN now() END,
                CASE WHEN r.method NOT IN ('POINTS', 'BALANCE') THEN now() END)
        RETURNING id INTO v_id;
        v_ids := v_ids || v_id;
    END LOOP;
    IF v_left > 0 THEN
        PERFORM cm__conflict('REFUND_EXCEEDS_PAID',
            format('the payments of order %s hold %s less than the refund of %s',
                   v_order, v_left, p_amount));
    END IF;

    UPDATE order_parts SET refunded_amount = refunded_amount + p_amount WHERE id = p_part;

    PERFORM cm__outbox_emit('order', v_order, 'order.refunded',
        jsonb_build_object('orderId', v_order, 'userId', v_user, 'partId', p_part,
                           'kind', p_kind, 'returnId', p_return, 'amount', p_amount,
                           'refunds', (SELECT jsonb_agg(jsonb_build_object(
                                                'refundId', f.id, 'method', f.method,
                                                'amount', f.amount, 'status', f.status)
                                              ORDER BY f.id)
                                         FROM refunds f WHERE f.id = ANY (v_ids)),
                           'at', cm__ts(now())));
END
$$;

-- The refunds and returns of order p_order appended to its document p_doc
-- (called by cm__order_parts_doc, 98_parts.sql); p_doc as it is when it
-- has neither.
CREATE OR REPLACE FUNCTION cm__refund_doc(p_doc text, p_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_doc IS NULL
       OR (NOT EXISTS (SELECT 1 FROM refunds f WHERE f.order_id = p_order)
           AND NOT EXISTS (SELECT 1 FROM order_returns x WHERE x.order_id = p_order)
           AND NOT EXISTS (SELECT 1 FROM order_parts x
                            WHERE x.order_id = p_order AND x.cancelled_at IS NOT NULL
                              AND (SELECT o.status FROM orders o WHERE o.id = p_order) = 'PAID'))
    THEN
        RETURN p_doc;
    END IF;
    RETURN left(p_doc, -1)
        || ',"partStates":[' || (SELECT string_agg('{"partId":' || x.id || ',"status":"' || x.status
                                                   || '","refundedAmount":' || x.refunded_amount
                                                   || ',"cancelledAt":'
                                                   || coalesce('"' || cm__ts(x.cancelled_at) || '"',
                                                               'null') || '}', ',' ORDER BY x.id)
                                   FROM order_parts x WHERE x.order_id = p_order)
        || '],"refunds":[' || coalesce((SELECT string_agg(cm__refund_json(f), ',' ORDER BY f.id)
                                          FROM refunds f WHERE f.order_id = p_order), '')
        || '],"returns":[' || coalesce((SELECT string_agg(cm__return_json(x.id), ',' ORDER BY x.id)
                                          FROM order_returns x WHERE x.order_id = p_order), '')
        || ']}';
END
$$;

CREATE OR REPLACE FUNCTION cm__refund_json(f refunds) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || f.id || ',"partId":' || f.part_id
        || ',"returnId":' || coalesce(f.return_id::text, 'null')
        || ',"paymentId":' || coalesce(f.payment_id::text, 'null')
        || ',"kind":"' || f.kind || '","method":"' || f.method || '","amount":' || f.amount
        || ',"status":"' || f.status || '","createdAt":"' || cm__ts(f.created_at)
        || '","doneAt":' || coalesce('"' || cm__ts(f.done_at) || '"', 'null') || '}'
$$;

-- ---------------------------------------------------------------------------
-- Cancel before shipping

-- The buyer p_user cancels order p_order, whole (p_parts NULL) or the
-- parts p_parts (1..50 distinct ids of the order).
--   unpaid (PENDING_PAYMENT, WAITING_FOR_DEPOSIT): whole only, as the
--     expiry does (stock, coupon, points back; the transfer given up);
--   PAID: each part PAID or PREPARING -> CANCELLED, its units back
--     (ORDER_CANCELLED), what is left of its payment amount refunded
--     (cm__refund_part).  When no part is left the order is CANCELLED and
--     its coupon free again; a partial cancel keeps the coupon used (the
--     part's payment amount already carries its share of the discount)
--     and the order PAID (event order.parts_cancelled).
-- Errors: ORDER_NOT_FOUND (unknown, another buyer's), ORDER_PART_NOT_FOUND
-- (a part of no such order), ORDER_ALREADY_CANCELLED, ORDER_NOT_CANCELLABLE
-- (shipped or later, a card payment in flight, failed, parts of an unpaid
-- order).  -> the order document (with partStates, refunds, returns).
CREATE OR REPLACE FUNCTION cm_order_cancel(p_user bigint, p_order bigint, p_parts bigint[])
RETURNS text LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_status text;
    v_parts  bigint[];
    v_left   int;
    r        record;
BEGIN
    IF p_parts IS NOT NULL
       AND (cardinality(p_parts) NOT BETWEEN 1 AND 50 OR array_position(p_parts, NULL) IS NOT NULL
            OR (SELECT count(DISTINCT x) FROM unnest(p_parts) x) <> cardinality(p_parts)
            OR EXISTS (SELECT 1 FROM unnest(p_parts) x WHERE x < 1)) THEN
        PERFORM cm__invalid('partIds must be 1 to 50 distinct positive ids');
    END IF;
    SELECT o.status INTO v_status FROM orders o
     WHERE o.id = p_order AND o.user_id = p_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ORDER_NOT_FOUND', 'order', p_order);
    END IF;
    IF p_parts IS NOT NULL
       AND EXISTS (SELECT 1 FROM unnest(p_parts) x
                    WHERE NOT EXISTS (SELECT 1 FROM order_parts y
                                       WHERE y.id = x AND y.order_id = p_order)) THEN
        PERFORM cm__not_found('ORDER_PART_NOT_FOUND', 'order part',
            (SELECT min(x) FROM unnest(p_parts) x
              WHERE NOT EXISTS (SELECT 1 FROM order_parts y WHERE y.id = x AND y.order_id = p_order)));
    END IF;
    IF v_status = 'CANCELLED' THEN
        PERFORM cm__conflict('ORDER_ALREADY_CANCELLED', format('order %s is cancelled', p_order));
    END IF;

    IF v_status IN ('PENDING_PAYMENT', 'WAITING_FOR_DEPOSIT') THEN
        IF p_parts IS NOT NULL
           AND EXISTS (SELECT 1 FROM order_parts y
                        WHERE y.order_id = p_order AND y.id <> ALL (p_parts)) THEN
            PERFORM cm__conflict('ORDER_NOT_CANCELLABLE',
                format('order %s is not paid: it is cancelled whole', p_order));
        END IF;
        PERFORM cm__orders_unpaid_end(ARRAY[p_order], false);
        PERFORM cm__coupon_release(ARRAY[p_order]);
        PERFORM cm__order_parts_refund(p_order);                    -- 78_mixpay.sql
        RETURN cm_order_json(p_order);
    END IF;
    IF v_status <> 'PAID' THEN
        PERFORM cm__conflict('ORDER_NOT_CANCELLABLE',
            format('order %s is %s', p_order, v_status));
    END IF;

    -- the parts, locked in id order
    SELECT array_agg(y.id ORDER BY y.id) INTO v_parts
      FROM (SELECT x.id FROM order_parts x
             WHERE x.order_id = p_order
               AND (p_parts IS NULL OR x.id = ANY (p_parts))
               AND (p_parts IS NOT NULL OR x.status <> 'CANCELLED')
             ORDER BY x.id FOR NO KEY UPDATE) y;
    IF v_parts IS NULL THEN
        PERFORM cm__conflict('ORDER_NOT_CANCELLABLE', format('order %s has no part', p_order));
    END IF;
    FOR r IN SELECT x.id, x.status FROM order_parts x WHERE x.id = ANY (v_parts) ORDER BY x.id LOOP
        IF r.status = 'CANCELLED' THEN
            PERFORM cm__conflict('ORDER_ALREADY_CANCELLED',
                format('order part %s is cancelled', r.id));
        ELSIF r.status NOT IN ('PAID', 'PREPARING') THEN
            PERFORM cm__conflict('ORDER_NOT_CANCELLABLE',
                format('order part %s is %s: it can no longer be cancelled', r.id, r.status));
        END IF;
    END LOOP;

    UPDATE order_parts SET status = 'CANCELLED', cancelled_at = now() WHERE id = ANY (v_parts);
    PERFORM cm__stock_back(ARRAY[p_order], v_parts, 'ORDER_CANCELLED');
    PERFORM cm__refund_part(x.id, x.payment_amount - x.refunded_amount, 'CANCEL', NULL)
       FROM order_parts x WHERE x.id = ANY (v_parts) ORDER BY x.id;

    SELECT count(*) INTO v_left FROM order_parts x
     WHERE x.order_id = p_order AND x.status <> 'CANCELLED';
    IF v_left = 0 THEN
        -- the whole order: order.cancelled (95_outbox.sql), its coupon free
        PERFORM set_config('commerce.cancel_reason', 'cancelled by the buyer', true);
        UPDATE orders SET status = 'CANCELLED', updated_at = now() WHERE id = p_order;
        PERFORM set_config('commerce.cancel_reason', '', true);
        UPDATE user_coupons SET status = 'AVAILABLE', used_at = NULL, reserved_by = NULL
         WHERE reserved_by = p_order;
        -- every part refunded: so is every payment (a gateway refund that
        -- fails later is a FAILED refunds row and a refund.failed event)
        UPDATE payments SET status = 'CANCELLED', updated_at = now()
         WHERE order_id = p_order AND status = 'SUCCESS' AND net_cancel IS NULL;
    ELSE
        PERFORM cm__outbox_emit('order', p_order, 'order.parts_cancelled',
            jsonb_build_object('orderId', p_order, 'userId', p_user, 'partIds', to_jsonb(v_parts),
                               'at', cm__ts(now())));
    END IF;
    RETURN cm_order_json(p_order);
END
$$;

-- ---------------------------------------------------------------------------
-- Returns

-- {"id","orderId","partId","status","reason","amount","items":[{"variantId",
-- "productId","quantity","amount","restocked"}],"decisionNote",
-- "shipment":{"carrier","trackingNumber","level"}|null,"createdAt",
-- "decidedAt","receivedAt","refundedAt","restockedAt"}
CREATE OR REPLACE FUNCTION cm__return_json(p_return bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || x.id || ',"orderId":' || x.order_id || ',"partId":' || x.part_id
        || ',"status":"' || x.status || '","reason":' || to_json(x.reason)::text
        || ',"amount":' || x.amount
        || ',"items":[' || coalesce((SELECT string_agg('{"variantId":' || i.variant_id
                                                       || ',"productId":' || i.product_id
                                                       || ',"quantity":' || i.quantity
                                                       || ',"amount":' || i.amount
                                                       || ',"restocked":'
                                                       || coalesce(i.restocked::text, 'null') || '}',
                                                       ',' ORDER BY i.variant_id)
                                      FROM order_return_items i WHERE i.return_id = x.id), '')
        || '],"decisionNote":' || cm__json_or_null(x.decision_note)
        || ',"shipment":' || coalesce((SELECT '{"carrier":"' || s.carrier || '","trackingNumber":"'
                                              || s.tracking_number || '","level":' || s.level || '}'
                                         FROM shipments s WHERE s.return_id = x.id), 'null')
        || ',"createdAt":"' || cm__ts(x.created_at)
        || '","decidedAt":' || coalesce('"' || cm__ts(x.decided_at) || '"', 'null')
        || ',"receivedAt":' || coalesce('"' || cm__ts(x.received_at) || '"', 'null')
        || ',"refundedAt":' || coalesce('"' || cm__ts(x.refunded_at) || '"', 'null')
        || ',"restockedAt":' || coalesce('"' || cm__ts(x.restocked_at) || '"', 'null') || '}'
      FROM order_returns x WHERE x.id = p_return
$$;

-- A reason: 1 to 500 characters, not only spaces, no control character.
CREATE OR REPLACE FUNCTION cm__return_text_ok(p_text text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(char_length(p_text) BETWEEN 1 AND 500 AND btrim(p_text) <> ''
                    AND p_text !~ '[[:cntrl:]]', false)
$$;

-- Items of a request or a restock, checked: 1..50 distinct positive
-- variants, each with a quantity p_min..999.
CREATE OR REPLACE FUNCTION cm__return_items_check(p_variants bigint[], p_quantities int[],
                                                  p_min int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_variants) IS NULL OR cardinality(p_variants) NOT BETWEEN 1 AND 50
       OR cardinality(p_quantities) IS DISTINCT FROM cardinality(p_variants)
       OR array_position(p_variants, NULL) IS NOT NULL
       OR array_position(p_quantities, NULL) IS NOT NULL
       OR (SELECT count(DISTINCT v) FROM unnest(p_variants) v) <> cardinality(p_variants)
       OR EXISTS (SELECT 1 FROM unnest(p_variants) v WHERE v < 1)
       OR EXISTS (SELECT 1 FROM unnest(p_quantities) q WHERE q NOT BETWEEN p_min AND 999) THEN
        PERFORM cm__invalid(format('items must be 1 to 50 distinct variants, each with a quantity'
                                   ' %s to 999', p_min));
    END IF;
END
$$;

-- The buyer p_user asks to return units of part p_part of order p_order
-- (DELIVERED, or PURCHASE_CONFIRMED: a return the seller accepts after the
-- confirmation, a defect say; a settled part's refund is deducted from
-- the store's next settlement, 73_settlement.sql), for
-- p_reason: p_quantities[i] units of variant p_variants[i].  The amount is
-- each item's share of the part's payment amount (price x units over the
-- part's total, rounded down); the return that takes the part's last
-- units takes what is left of the payment amount.  One open return per
-- part (027's index).  Errors: ORDER_NOT_FOUND, ORDER_PART_NOT_FOUND,
-- RETURN_NOT_ALLOWED (not delivered), RETURN_ALREADY_OPEN,
-- RETURN_QUANTITY_EXCEEDED (more units than ordered and not yet
-- returned), INVALID_REQUEST (a variant not in the part).  -> the return.
CREATE OR REPLACE FUNCTION cm_return_request(p_user bigint, p_order bigint, p_part bigint,
                                             p_reason text, p_variants bigint[], p_quantities int[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    x       record;
    v_id    bigint;
    v_sum   bigint;
    v_units bigint;
    v_back  bigint;
BEGIN
    IF NOT cm__return_text_ok(p_reason) THEN
        PERFORM cm__invalid('reason must be 1 to 500 characters');
    END IF;
    PERFORM cm__return_items_check(p_variants, p_quantities, 1);
    PERFORM FROM orders o WHERE o.id = p_order AND o.user_id = p_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ORDER_NOT_FOUND', 'order', p_order);
    END IF;
    SELECT y.id, y.status, y.total_amount, y.payment_amount INTO x
      FROM order_parts y WHERE y.id = p_part AND y.order_id = p_order FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ORDER_PART_NOT_FOUND', 'order part', p_part);
    END IF;
    IF x.status NOT IN ('DELIVERED', 'PURCHASE_CONFIRMED') THEN
        PERFORM cm__conflict('RETURN_NOT_ALLOWED',
            format('order part %s is %s: only a delivered part is returned', p_part, x.status));
    END IF;
    IF EXISTS (SELECT 1 FROM order_returns r
                WHERE r.part_id = p_part AND r.status IN ('REQUESTED', 'APPROVED', 'RECEIVED')) THEN
        PERFORM cm__conflict('RETURN_ALREADY_OPEN',
            format('order part %s has a return in progress', p_part));
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_variants) v
                WHERE NOT EXISTS (SELECT 1 FROM order_items i
                                   WHERE i.part_id = p_part AND i.variant_id = v)) THEN
        PERFORM cm__invalid('every variantId must be an item of the part');
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_variants, p_quantities) AS q(v, n)
                 JOIN order_items i ON i.part_id = p_part AND i.variant_id = q.v
                WHERE q.n > i.quantity - coalesce((SELECT sum(ri.quantity)
                                                     FROM order_return_items ri
                                                     JOIN order_returns r ON r.id = ri.return_id
                                                    WHERE r.part_id = p_part
                                                      AND r.status <> 'REJECTED'
                                                      AND ri.variant_id = q.v), 0)) THEN
        PERFORM cm__conflict('RETURN_QUANTITY_EXCEEDED',
            'more units than were ordered and not yet returned');
    END IF;

    INSERT INTO order_returns (order_id, part_id, user_id, status, reason, amount)
    VALUES (p_order, p_part, p_user, 'REQUESTED', p_reason, 0)
    RETURNING id INTO v_id;
    INSERT INTO order_return_items (return_id, variant_id, product_id, quantity, amount)
    SELECT v_id, q.v, i.product_id, q.n,
           CASE WHEN x.total_amount = 0 THEN 0
                ELSE floor(x.payment_amount::numeric * i.unit_price * q.n / x.total_amount)::bigint
           END
      FROM unnest(p_variants, p_quantities) AS q(v, n)
      JOIN order_items i ON i.part_id = p_part AND i.variant_id = q.v;

    -- the last units of the part: what is left of its payment amount
    SELECT sum(i.quantity) INTO v_units FROM order_items i WHERE i.part_id = p_part;
    SELECT sum(ri.quantity) INTO v_back
      FROM order_return_items ri JOIN order_returns r ON r.id = ri.return_id
     WHERE r.part_id = p_part AND r.status <> 'REJECTED';
    IF v_back = v_units THEN
        SELECT coalesce(sum(r.amount), 0) INTO v_sum FROM order_returns r
         WHERE r.part_id = p_part AND r.status <> 'REJECTED' AND r.id <> v_id;
        UPDATE order_return_items i
           SET amount = i.amount + (x.payment_amount - v_sum
                                    - (SELECT sum(j.amount) FROM order_return_items j
                                        WHERE j.return_id = v_id))
         WHERE i.return_id = v_id
           AND i.variant_id = (SELECT min(j.variant_id) FROM order_return_items j
                                WHERE j.return_id = v_id);
    END IF;
    UPDATE order_returns
       SET amount = (SELECT sum(i.amount) FROM order_return_items i WHERE i.return_id = v_id)
     WHERE id = v_id;

    PERFORM cm__outbox_emit('order', p_order, 'return.requested',
        jsonb_build_object('orderId', p_order, 'userId', p_user, 'partId', p_part,
                           'returnId', v_id, 'at', cm__ts(now())));
    RETURN cm__return_json(v_id);
END
$$;

-- The return p_return for a seller p_actor (its store's owner, a manager
-- of it, an ADMIN): its order locked, then the return.  Else
-- RETURN_NOT_FOUND.  -> (order id, part id, status)
CREATE OR REPLACE FUNCTION cm__return_lock(p_actor bigint, p_return bigint,
                                           OUT o_order bigint, OUT o_part bigint,
                                           OUT o_status text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT r.order_id INTO o_order FROM order_returns r WHERE r.id = p_return;
    IF FOUND THEN
        PERFORM FROM orders o WHERE o.id = o_order FOR NO KEY UPDATE;
        SELECT r.part_id, r.status INTO o_part, o_status
          FROM order_returns r WHERE r.id = p_return FOR NO KEY UPDATE;
    END IF;
    IF o_order IS NULL
       OR (p_actor IS NOT NULL
           AND cm__store_relation(p_actor, (SELECT x.store_id FROM order_parts x
                                             WHERE x.id = o_part)) IS NULL) THEN
        PERFORM cm__not_found('RETURN_NOT_FOUND', 'return', p_return);
    END IF;
END
$$;

-- A REQUESTED return for its seller's decision (cm__return_lock), else
-- RETURN_ALREADY_DECIDED.
CREATE OR REPLACE FUNCTION cm__return_decide(p_actor bigint, p_return bigint,
                                             OUT o_order bigint, OUT o_part bigint,
                                             OUT o_status text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO o_order, o_part, o_status FROM cm__return_lock(p_actor, p_return);
    IF o_status <> 'REQUESTED' THEN
        PERFORM cm__conflict('RETURN_ALREADY_DECIDED',
            format('return %s is %s', p_return, o_status));
    END IF;
END
$$;

-- The seller approves a REQUESTED return: the parcel's pickup is
-- p_carrier's p_tracking (a shipments row with return_id; the carrier
-- job registers and tracks it, and its arrival calls
-- cm__return_received).  Errors: RETURN_NOT_FOUND, RETURN_ALREADY_DECIDED,
-- TRACKING_NUMBER_TAKEN, INVALID_REQUEST.  -> the return.
CREATE OR REPLACE FUNCTION cm_seller_return_approve(p_actor bigint, p_return bigint,
                                                    p_carrier text, p_tracking text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    x record;
BEGIN
    IF p_carrier IS NULL OR p_carrier NOT IN ('CJ', 'LOTTE', 'HANJIN')
       OR (p_tracking ~ '^[0-9]{9,14}$') IS NOT TRUE THEN
        PERFORM cm__invalid('carrier must be CJ, LOTTE or HANJIN and trackingNumber 9 to 14 digits');
    END IF;
    x := cm__return_decide(p_actor, p_return);
    UPDATE order_returns SET status = 'APPROVED', decided_at = now() WHERE id = p_return;
    BEGIN
        INSERT INTO shipments (part_id, return_id, carrier, tracking_number)
        VALUES (x.o_part, p_return, p_carrier, p_tracking);
    EXCEPTION WHEN unique_violation THEN
        PERFORM cm__conflict('TRACKING_NUMBER_TAKEN',
            format('%s %s is another parcel''s', p_carrier, p_tracking));
    END;
    PERFORM cm__outbox_emit('order', x.o_order, 'return.approved',
        jsonb_build_object('orderId', x.o_order, 'partId', x.o_part, 'returnId', p_return,
                           'carrier', p_carrier, 'trackingNumber', p_tracking,
                           'at', cm__ts(now())));
    RETURN cm__return_json(p_return);
END
$$;

-- The seller rejects a REQUESTED return for p_reason.  Errors as approve.
CREATE OR REPLACE FUNCTION cm_seller_return_reject(p_actor bigint, p_return bigint, p_reason text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    x record;
BEGIN
    IF NOT cm__return_text_ok(p_reason) THEN
        PERFORM cm__invalid('reason must be 1 to 500 characters');
    END IF;
    x := cm__return_decide(p_actor, p_return);
    UPDATE order_returns SET status = 'REJECTED', decided_at = now(), decision_note = p_reason
     WHERE id = p_return;
    PERFORM cm__outbox_emit('order', x.o_order, 'return.rejected',
        jsonb_build_object('orderId', x.o_order, 'partId', x.o_part, 'returnId', p_return,
                           'reason', p_reason, 'at', cm__ts(now())));
    RETURN cm__return_json(p_return);
END
$$;

-- The parcel of return p_return is back (its shipment reached level 6):
-- called by the carrier's code in the transaction that records it.  An
-- APPROVED return becomes RECEIVED and its amount is refunded
-- (cm__refund_part: balance and points at once, the external part by the
-- refund job); with nothing left PENDING it is REFUNDED at once.  Called
-- again (a repeated carrier event): nothing happens.  Not approved:
-- RETURN_NOT_APPROVED.  Locks: the order, the return (cm__return_lock),
-- then as cm__refund_part.
CREATE OR REPLACE FUNCTION cm__return_received(p_return bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    x record;
BEGIN
    x := cm__return_lock(NULL, p_return);
    IF x.o_status IN ('RECEIVED', 'REFUNDED') THEN
        RETURN;
    END IF;
    IF x.o_status <> 'APPROVED' THEN
        PERFORM cm__conflict('RETURN_NOT_APPROVED', format('return %s is %s', p_return, x.o_status));
    END IF;
    UPDATE order_returns SET status = 'RECEIVED', received_at = now() WHERE id = p_return;
    PERFORM cm__refund_part(x.o_part, r.amount, 'RETURN', p_return)
       FROM order_returns r WHERE r.id = p_return;
    PERFORM cm__return_refunded(p_return);
    PERFORM cm__outbox_emit('order', x.o_order, 'return.received',
        jsonb_build_object('orderId', x.o_order, 'partId', x.o_part, 'returnId', p_return,
                           'at', cm__ts(now())));
END
$$;

-- A RECEIVED return with no refund left PENDING is REFUNDED.
CREATE OR REPLACE FUNCTION cm__return_refunded(p_return bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE order_returns r SET status = 'REFUNDED', refunded_at = now()
     WHERE r.id = p_return AND r.status = 'RECEIVED'
       AND NOT EXISTS (SELECT 1 FROM refunds f WHERE f.return_id = p_return AND f.status = 'PENDING');
END
$$;

-- The seller puts p_quantities[i] units of variant p_variants[i] of a
-- received return back on sale (0..the returned units; variants not named:
-- 0, damaged), once.  Ledger RETURN_RESTOCK (a stock increase feeds the
-- restock queue, 76_waitlist.sql).  Errors: RETURN_NOT_FOUND,
-- RETURN_NOT_RECEIVED, RETURN_ALREADY_RESTOCKED, INVALID_REQUEST (a
-- variant not returned, more than returned).  -> the return.
CREATE OR REPLACE FUNCTION cm_seller_return_restock(p_actor bigint, p_return bigint,
                                                    p_variants bigint[], p_quantities int[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    x record;
    v record;
BEGIN
    PERFORM cm__return_items_check(p_variants, p_quantities, 0);
    x := cm__return_lock(p_actor, p_return);
    IF x.o_status NOT IN ('RECEIVED', 'REFUNDED') THEN
        PERFORM cm__conflict('RETURN_NOT_RECEIVED',
            format('return %s is %s: its parcel is not back', p_return, x.o_status));
    END IF;
    IF (SELECT r.restocked_at FROM order_returns r WHERE r.id = p_return) IS NOT NULL THEN
        PERFORM cm__conflict('RETURN_ALREADY_RESTOCKED',
            format('return %s was restocked', p_return));
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_variants, p_quantities) AS q(v, n)
                WHERE NOT EXISTS (SELECT 1 FROM order_return_items i
                                   WHERE i.return_id = p_return AND i.variant_id = q.v
                                     AND q.n <= i.quantity)) THEN
        PERFORM cm__invalid('every variantId must be returned, with at most its returned units');
    END IF;
    UPDATE order_return_items i
       SET restocked = coalesce((SELECT q.n FROM unnest(p_variants, p_quantities) AS q(v, n)
                                  WHERE q.v = i.variant_id), 0)
     WHERE i.return_id = p_return;
    UPDATE order_returns SET restocked_at = now() WHERE id = p_return;

    PERFORM FROM products p
     WHERE p.id IN (SELECT i.product_id FROM order_return_items i
                     WHERE i.return_id = p_return AND i.restocked > 0)
     ORDER BY p.id FOR NO KEY UPDATE;
    PERFORM cm__stock_context('RETURN_RESTOCK', p_actor, x.o_order, 'return ' || p_return);
    FOR v IN SELECT i.variant_id, i.restocked FROM order_return_items i
              WHERE i.return_id = p_return AND i.restocked > 0
              ORDER BY i.product_id, i.variant_id LOOP
        UPDATE product_variants SET stock = stock + v.restocked, updated_at = now()
         WHERE id = v.variant_id;
    END LOOP;
    PERFORM cm__stock_context(NULL, NULL, NULL, NULL);
    RETURN cm__return_json(p_return);
END
$$;

-- A return for its seller (as cm__return_lock, without locks).
CREATE OR REPLACE FUNCTION cm_seller_return_get(p_actor bigint, p_return bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM order_returns r JOIN order_parts x ON x.id = r.part_id
                    WHERE r.id = p_return AND cm__store_relation(p_actor, x.store_id) IS NOT NULL)
    THEN
        PERFORM cm__not_found('RETURN_NOT_FOUND', 'return', p_return);
    END IF;
    RETURN cm__return_json(p_return);
END
$$;

-- The returns of a store its owner, a manager of it or an ADMIN lists,
-- newest first; p_store NULL: the caller's only store (cm__seller_store);
-- p_status NULL: all.  -> {"storeId","items":[return],"page","size","total"}
CREATE OR REPLACE FUNCTION cm_seller_returns(p_actor bigint, p_store bigint, p_status text,
                                             p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
    v_total bigint;
    v_items text;
BEGIN
    IF p_status IS NOT NULL
       AND p_status NOT IN ('REQUESTED', 'APPROVED', 'REJECTED', 'RECEIVED', 'REFUNDED') THEN
        PERFORM cm__invalid('status must be REQUESTED, APPROVED, REJECTED, RECEIVED or REFUNDED');
    END IF;
    v_store := cm__seller_list_store(p_actor, p_store, p_page, p_size);
    SELECT count(*) INTO v_total
      FROM order_returns r JOIN order_parts x ON x.id = r.part_id
     WHERE x.store_id = v_store AND (p_status IS NULL OR r.status = p_status);
    SELECT string_agg(cm__return_json(y.id), ',' ORDER BY y.id DESC) INTO v_items
      FROM (SELECT r.id FROM order_returns r JOIN order_parts x ON x.id = r.part_id
             WHERE x.store_id = v_store AND (p_status IS NULL OR r.status = p_status)
             ORDER BY r.id DESC
             LIMIT p_size OFFSET p_page::bigint * p_size) y;
    RETURN cm__seller_list_doc(v_store, v_items, p_page, p_size, v_total);
END
$$;

-- ---------------------------------------------------------------------------
-- The refund job (src/domain/refund/ngx_commerce_refund_job.c)

-- Hand out up to p_limit PENDING gateway refunds that are due, leased for
-- p_lease seconds (SKIP LOCKED: instances never take the same one; the
-- attempt is counted now, so one that dies with its worker counts too).
-- -> [{"refundId","paymentId","orderId","userId","gateway",
-- "transactionKey","amount","attempt"}]
CREATE OR REPLACE FUNCTION cm_refund_due(p_lease int, p_limit int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_doc text;
BEGIN
    WITH due AS (
        SELECT f.id FROM refunds f
         WHERE f.status = 'PENDING' AND f.next_attempt_at <= now()
         ORDER BY f.next_attempt_at
         LIMIT p_limit
           FOR NO KEY UPDATE SKIP LOCKED
    ), leased AS (
        UPDATE refunds f
           SET attempts = f.attempts + 1,
               next_attempt_at = now() + make_interval(secs => p_lease)
          FROM due WHERE f.id = due.id
        RETURNING f.id, f.payment_id, f.order_id, f.amount, f.attempts
    )
    SELECT '[' || coalesce(string_agg('{"refundId":' || l.id || ',"paymentId":' || l.payment_id
                                      || ',"orderId":' || l.order_id || ',"userId":' || o.user_id
                                      || ',"gateway":' || to_json(p.gateway)::text
                                      || ',"transactionKey":' || to_json(p.transaction_key)::text
                                      || ',"amount":' || l.amount || ',"attempt":' || l.attempts
                                      || '}', ',' ORDER BY l.id), '') || ']'
      INTO v_doc
      FROM leased l JOIN payments p ON p.id = l.payment_id JOIN orders o ON o.id = l.order_id;
    RETURN v_doc;
END
$$;

-- The gateway answered refund p_refund's cancel: p_outcome DONE (cancelled,
-- or cancelled before under the same key), RETRY (no answer, 5xx: again
-- after p_backoff x 2^(attempts-1) seconds, capped at an hour, unless
-- p_max attempts were made) or FAILED (refused).  A refund that fails
-- gives its amount back to the part's refundable remainder
-- (refunded_amount) and emits refund.failed for an operator.  A refund no
-- longer PENDING: nothing (a late answer).  -> its status.
CREATE OR REPLACE FUNCTION cm_refund_done(p_refund bigint, p_outcome text, p_note text,
                                          p_backoff int, p_max int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    f record;
BEGIN
    IF p_outcome IS NULL OR p_outcome NOT IN ('DONE', 'RETRY', 'FAILED') THEN
        PERFORM cm__invalid('outcome must be DONE, RETRY or FAILED');
    END IF;
    PERFORM FROM orders o WHERE o.id = (SELECT x.order_id FROM refunds x WHERE x.id = p_refund)
        FOR NO KEY UPDATE;
    SELECT * INTO f FROM refunds x WHERE x.id = p_refund FOR NO KEY UPDATE;
    IF NOT FOUND OR f.status <> 'PENDING' THEN
        RETURN coalesce(f.status, 'UNKNOWN');
    END IF;
    IF p_outcome = 'RETRY' AND f.attempts < p_max THEN
        UPDATE refunds
           SET next_attempt_at = now() + make_interval(
                   secs => least(3600, p_backoff * power(2, greatest(f.attempts - 1, 0)))),
               note = left(p_note, 200)
         WHERE id = p_refund;
        RETURN 'PENDING';
    END IF;
    IF p_outcome = 'DONE' THEN
        UPDATE refunds SET status = 'DONE', done_at = now(), next_attempt_at = NULL,
                           note = left(p_note, 200)
         WHERE id = p_refund;
        PERFORM cm__return_refunded(f.return_id) WHERE f.return_id IS NOT NULL;
        RETURN 'DONE';
    END IF;
    UPDATE refunds SET status = 'FAILED', done_at = now(), next_attempt_at = NULL,
                       note = left(p_note, 200)
     WHERE id = p_refund;
    UPDATE order_parts SET refunded_amount = refunded_amount - f.amount WHERE id = f.part_id;
    PERFORM cm__outbox_emit('order', f.order_id, 'refund.failed',
        jsonb_build_object('orderId', f.order_id, 'partId', f.part_id, 'refundId', f.id,
                           'method', f.method, 'amount', f.amount, 'attempts', f.attempts,
                           'note', left(p_note, 200), 'at', cm__ts(now())));
    RETURN 'FAILED';
END
$$;
