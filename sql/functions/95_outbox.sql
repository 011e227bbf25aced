-- outbox: domain events and their delivery (tables in 012_outbox.sql).
-- Repeatable file: see 00_common.sql.
--
-- Writing.  An event is written by cm__outbox_emit in the transaction of
-- the change it reports: by the triggers below for orders and payments
-- (order.created, order.paid, order.cancelled, order.expired,
-- payment.failed, payment.cancelled: every path that changes an order or a
-- payment, whoever writes), and by the functions of their domains for
-- coupon.issued (cm_coupon_issue), user.signed_up (cm_signup) and
-- user.withdrawn (cm_user_withdraw).  Payloads carry ids, amounts, states
-- and codes: never an email, a name, a phone number, a card number or its
-- last digits (t/130 reads every payload).
--
-- Aggregates.  Orders and their payments are one aggregate, ('order', order
-- id): a payment's events are ordered with its order's.  A user's events
-- and the coupons issued to the user are ('user', user id).
--
-- Order.  cm__outbox_emit takes a transaction-scoped advisory lock of the
-- aggregate before it numbers the event (outbox.seq), so two transactions
-- writing events of one aggregate number them in commit order: an event
-- with a higher seq of an aggregate is never committed before a lower one.
-- The relay delivers, per sink and aggregate, only the pending event with
-- the lowest seq (cm_outbox_claim): a later event waits while an earlier
-- one is leased, in backoff or not yet tried.  A DEAD event stops blocking:
-- the aggregate's later events go on, and a replay of the dead one
-- delivers it late, with its original seq (the "sequence" of the event
-- document), which consumers compare.
--
-- Delivery.  At least once.  The relay of each instance (worker 0) claims
-- a batch per sink with FOR UPDATE SKIP LOCKED and a lease (token and
-- expiry), sends, and settles with the token: a relay that died leaves its
-- lease to expire, and the next claim sends the same events again (the
-- same id, the Idempotency-Key).  A settle whose token is no longer the
-- row's (its lease expired and another relay took the row) changes
-- nothing.

-- Does a sink's filter take an event type?  A filter entry is a type
-- (order.paid), a family (order.*) or everything (*).
CREATE OR REPLACE FUNCTION cm__outbox_match(p_types text[], p_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_type = ANY (p_types) OR '*' = ANY (p_types)
        OR (split_part(p_type, '.', 1) || '.*') = ANY (p_types)
$$;

-- Write one event, fanned out to the registered sinks whose filter takes
-- it.  The advisory lock (until commit) numbers one aggregate's events in
-- commit order; a hash collision between aggregates only makes them wait
-- for each other.
CREATE OR REPLACE FUNCTION cm__outbox_emit(p_aggregate_type text, p_aggregate_id bigint, p_type text,
                                           p_payload jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('outbox:' || p_aggregate_type || ':' || p_aggregate_id, 0));

    INSERT INTO outbox (aggregate_type, aggregate_id, type, payload)
    VALUES (p_aggregate_type, p_aggregate_id, p_type, p_payload)
    RETURNING seq INTO v_seq;

    INSERT INTO outbox_delivery (sink, seq, aggregate_type, aggregate_id, type, created_at)
    SELECT s.name, v_seq, p_aggregate_type, p_aggregate_id, p_type, now()
      FROM outbox_sink s
     WHERE cm__outbox_match(s.types, p_type);
END
$$;

-- What an analytics platform needs of an order: items, amounts, discount;
-- order.paid adds how it was paid.  Ids and numbers only.
CREATE OR REPLACE FUNCTION cm__outbox_order_doc(p_order bigint, p_paid boolean) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    o     record;
    p     record;
    v_doc jsonb;
BEGIN
    SELECT x.id, x.user_id, x.status, x.total_amount, x.discount_amount, x.payment_amount,
           x.created_at, x.paid_at
      INTO o FROM orders x WHERE x.id = p_order;

    v_doc := jsonb_build_object(
        'orderId', o.id, 'userId', o.user_id, 'status', o.status,
        'items', coalesce((SELECT jsonb_agg(jsonb_build_object(
                               'productId', i.product_id, 'name', i.name, 'quantity', i.quantity,
                               'unitPrice', i.unit_price, 'amount', i.amount) ORDER BY i.product_id)
                             FROM order_items i WHERE i.order_id = o.id), '[]'::jsonb),
        'totalAmount', o.total_amount, 'discountAmount', o.discount_amount,
        'paymentAmount', o.payment_amount, 'createdAt', cm__ts(o.created_at));

    IF p_paid THEN
        -- The successful payment, if any: an order paid at creation has its
        -- payment written after this (BALANCE when there is something to
        -- pay, nothing when a coupon paid it all).
        SELECT y.id, y.method, y.card_type INTO p
          FROM payments y
         WHERE y.order_id = p_order AND y.status = 'SUCCESS'
         ORDER BY y.id DESC LIMIT 1;
        v_doc := v_doc || jsonb_build_object(
            'paidAt', cm__ts(coalesce(o.paid_at, now())),
            'paymentId', p.id,
            'paymentMethod', coalesce(p.method, CASE WHEN o.payment_amount > 0 THEN 'BALANCE' ELSE 'NONE' END),
            'cardType', p.card_type);
    END IF;

    RETURN v_doc;
END
$$;

-- Orders: created (and paid at once), paid, cancelled or expired.
-- cm_orders_expire says its cancels are expiries (commerce.cancel_reason,
-- local to its transaction).
CREATE OR REPLACE FUNCTION cm__outbox_order() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_reason text;
    v_doc    jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        v_doc := cm__outbox_order_doc(NEW.id, NEW.status = 'PAID');
        -- created and paid at once: one document, order.created without
        -- the payment fields
        PERFORM cm__outbox_emit('order', NEW.id, 'order.created',
            v_doc - '{paidAt,paymentId,paymentMethod,cardType}'::text[]);
        IF NEW.status = 'PAID' THEN
            PERFORM cm__outbox_emit('order', NEW.id, 'order.paid', v_doc);
        END IF;
    ELSIF NEW.status = 'PAID' THEN
        PERFORM cm__outbox_emit('order', NEW.id, 'order.paid', cm__outbox_order_doc(NEW.id, true));
    ELSE
        v_reason := coalesce(nullif(current_setting('commerce.cancel_reason', true), ''), 'cancelled');
        PERFORM cm__outbox_emit('order', NEW.id,
            CASE WHEN v_reason = 'expired' THEN 'order.expired' ELSE 'order.cancelled' END,
            jsonb_build_object('orderId', NEW.id, 'userId', NEW.user_id, 'previousStatus', OLD.status,
                               'status', NEW.status, 'totalAmount', NEW.total_amount,
                               'reason', v_reason, 'at', cm__ts(now())));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER orders_outbox_insert
    AFTER INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION cm__outbox_order();

CREATE OR REPLACE TRIGGER orders_outbox_update
    AFTER UPDATE OF status ON orders
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('PAID', 'CANCELLED'))
    EXECUTE FUNCTION cm__outbox_order();

-- Payments: failed (declined, timed out, never admitted), and net-cancelled
-- (망취소: approved for an order that could not take it, then cancelled at
-- the gateway).  The gateway's reason is a code or message of the gateway,
-- never card data.
CREATE OR REPLACE FUNCTION cm__outbox_payment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_user bigint;
BEGIN
    SELECT o.user_id INTO v_user FROM orders o WHERE o.id = NEW.order_id;
    IF NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED' THEN
        PERFORM cm__outbox_emit('order', NEW.order_id, 'payment.failed',
            jsonb_build_object('orderId', NEW.order_id, 'paymentId', NEW.id, 'userId', v_user,
                               'method', NEW.method, 'cardType', NEW.card_type, 'amount', NEW.amount,
                               'gateway', NEW.gateway, 'reason', left(NEW.reason, 200),
                               'at', cm__ts(now())));
    END IF;
    IF NEW.net_cancel = 'DONE' AND OLD.net_cancel IS DISTINCT FROM 'DONE' THEN
        PERFORM cm__outbox_emit('order', NEW.order_id, 'payment.cancelled',
            jsonb_build_object('orderId', NEW.order_id, 'paymentId', NEW.id, 'userId', v_user,
                               'method', NEW.method, 'cardType', NEW.card_type, 'amount', NEW.amount,
                               'gateway', NEW.gateway, 'status', NEW.status, 'netCancel', true,
                               'at', cm__ts(now())));
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER payments_outbox
    AFTER UPDATE OF status, net_cancel ON payments
    FOR EACH ROW
    WHEN ((NEW.status = 'FAILED' AND OLD.status IS DISTINCT FROM 'FAILED')
          OR (NEW.net_cancel = 'DONE' AND OLD.net_cancel IS DISTINCT FROM 'DONE'))
    EXECUTE FUNCTION cm__outbox_payment();

-- ---------------------------------------------------------------------------
-- The relay (src/domain/event/ngx_commerce_event_relay.c)

-- A sink of an instance's configuration, and its filter: registered, or
-- its filter brought up to date.  Events written from now on are fanned
-- out to it.  -> 1
CREATE OR REPLACE FUNCTION cm_outbox_register(p_sink text, p_types text[]) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF (p_sink ~ '^[A-Za-z0-9_-]{1,31}$') IS NOT TRUE
       OR cardinality(p_types) IS NULL OR cardinality(p_types) NOT BETWEEN 1 AND 32 THEN
        PERFORM cm__invalid('a sink needs a name and 1 to 32 event types');
    END IF;
    INSERT INTO outbox_sink AS s (name, types) VALUES (p_sink, p_types)
    ON CONFLICT (name) DO UPDATE SET types = EXCLUDED.types, seen_at = now()
     WHERE s.types IS DISTINCT FROM EXCLUDED.types OR s.seen_at < now() - interval '1 minute';
    RETURN 1;
END
$$;

-- Claim up to p_limit events for sink p_sink: per aggregate, only its
-- pending event with the lowest seq, and only when it is due and not
-- leased.  The rows are locked SKIP LOCKED (another instance claiming at
-- the same moment takes others) and leased for p_lease_ms under a new
-- token; the attempt is counted now, so one that dies with its relay
-- counts too.  One row per event, in seq order: the delivery id, seq,
-- attempt number, type, token, event id and the document the sinks send:
-- {"id","type","aggregateType","aggregateId","sequence","createdAt","data"}.
CREATE OR REPLACE FUNCTION cm_outbox_claim(p_sink text, p_limit int, p_lease_ms int)
RETURNS TABLE (delivery bigint, seq bigint, attempt int, type text, token uuid, event_id uuid, body text)
LANGUAGE plpgsql AS $$
DECLARE
    v_token uuid := gen_random_uuid();
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000
       OR p_lease_ms IS NULL OR p_lease_ms NOT BETWEEN 100 AND 3600000 THEN
        PERFORM cm__invalid('limit must be 1..1000 and lease 100..3600000 ms');
    END IF;

    RETURN QUERY
    WITH c AS (
        SELECT d.id
          FROM outbox_delivery d
         WHERE d.sink = p_sink AND d.state = 'PENDING'
           AND d.next_at <= now()
           AND (d.lease_until IS NULL OR d.lease_until < now())
           -- the head of its aggregate.  A scalar subquery, not NOT
           -- EXISTS: it is an index probe on the whole key whatever the
           -- statistics say (a backlog that grew from an empty table
           -- before autovacuum's analyze made the anti-join quadratic:
           -- 6 s for 6,000 pending rows instead of 3 ms).
           AND d.seq = (SELECT min(e.seq) FROM outbox_delivery e
                         WHERE e.sink = p_sink AND e.state = 'PENDING'
                           AND e.aggregate_type = d.aggregate_type
                           AND e.aggregate_id = d.aggregate_id)
         ORDER BY d.seq
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE outbox_delivery d
           SET lease_until = now() + make_interval(secs => p_lease_ms / 1000.0),
               lease_token = v_token, attempts = d.attempts + 1,
               first_attempt_at = coalesce(d.first_attempt_at, clock_timestamp()),
               last_attempt_at = clock_timestamp()
          FROM c
         WHERE d.id = c.id
        RETURNING d.id, d.seq, d.attempts, d.type
    )
    SELECT u.id, u.seq, u.attempts, u.type, v_token, o.id,
           '{"id":"' || o.id || '","type":"' || o.type || '","aggregateType":"' || o.aggregate_type
           || '","aggregateId":' || o.aggregate_id || ',"sequence":' || o.seq
           || ',"createdAt":"' || cm__ts(o.created_at) || '","data":' || o.payload::text || '}'
      FROM u JOIN outbox o ON o.seq = u.seq
     ORDER BY u.seq;
END
$$;

-- The outcome of claimed events: p_states[i] of delivery p_ids[i] is
-- D (delivered), R (retry after p_delays_ms[i]), X (dead) or P (not an
-- attempt of the event: never sent because the sink is down, or the one
-- probe of a sink that is down; retried after p_delays_ms[i], its attempt
-- given back), p_errors[i] the last error (R, X, P).  Only rows still
-- leased under p_token change.
-- -> the number of rows changed
CREATE OR REPLACE FUNCTION cm_outbox_settle(p_token uuid, p_ids bigint[], p_states text[],
                                            p_delays_ms int[], p_errors text[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    IF p_token IS NULL OR cardinality(p_ids) IS DISTINCT FROM cardinality(p_states)
       OR cardinality(p_ids) IS DISTINCT FROM cardinality(p_delays_ms)
       OR cardinality(p_ids) IS DISTINCT FROM cardinality(p_errors) THEN
        PERFORM cm__invalid('token, and ids, states, delays and errors of one length');
    END IF;

    UPDATE outbox_delivery d
       SET state = CASE u.st WHEN 'D' THEN 'DELIVERED' WHEN 'X' THEN 'DEAD' ELSE 'PENDING' END,
           delivered_at = CASE WHEN u.st = 'D' THEN clock_timestamp() END,
           dead_at = CASE WHEN u.st = 'X' THEN clock_timestamp() END,
           attempts = CASE WHEN u.st = 'P' THEN greatest(d.attempts - 1, 0) ELSE d.attempts END,
           next_at = CASE WHEN u.st IN ('R', 'P')
                          THEN clock_timestamp() + make_interval(secs => greatest(u.delay, 0) / 1000.0)
                          ELSE d.next_at END,
           last_error = CASE WHEN u.st = 'D' THEN d.last_error ELSE left(u.err, 300) END,
           lease_until = NULL, lease_token = NULL
      FROM unnest(p_ids, p_states, p_delays_ms, p_errors) AS u(id, st, delay, err)
     WHERE d.id = u.id AND d.lease_token = p_token AND d.state = 'PENDING'
       AND u.st IN ('D', 'R', 'X', 'P');
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Gauges per registered sink: pending events, the age of the oldest one,
-- and the dead ones.  -> [{"sink","backlog","oldestSeconds","dead"}]
CREATE OR REPLACE FUNCTION cm_outbox_stats() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce(json_agg(json_build_object(
               'sink', s.name,
               'backlog', (SELECT count(*) FROM outbox_delivery d
                            WHERE d.sink = s.name AND d.state = 'PENDING'),
               'oldestSeconds', coalesce((SELECT floor(extract(epoch FROM now() - min(d.created_at)))::bigint
                                            FROM outbox_delivery d
                                           WHERE d.sink = s.name AND d.state = 'PENDING'), 0),
               'dead', (SELECT count(*) FROM outbox_delivery d
                         WHERE d.sink = s.name AND d.state = 'DEAD')) ORDER BY s.name), '[]')::text
      FROM outbox_sink s
$$;

-- ---------------------------------------------------------------------------
-- The dead-letter queue (admin API)

CREATE OR REPLACE FUNCTION cm__outbox_dead_json(d outbox_delivery, o outbox) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || d.id || ',"eventId":"' || o.id || '","sink":' || to_json(d.sink)
        || ',"type":"' || o.type || '","aggregateType":"' || o.aggregate_type
        || '","aggregateId":' || o.aggregate_id || ',"sequence":' || o.seq
        || ',"attempts":' || d.attempts || ',"replays":' || d.replays
        || ',"lastError":' || coalesce(to_json(d.last_error)::text, 'null')
        || ',"createdAt":"' || cm__ts(o.created_at)
        || '","firstAttemptAt":' || coalesce('"' || cm__ts(d.first_attempt_at) || '"', 'null')
        || ',"lastAttemptAt":' || coalesce('"' || cm__ts(d.last_attempt_at) || '"', 'null')
        || ',"deadAt":"' || cm__ts(d.dead_at) || '"}'
$$;

-- The dead events, newest first.  -> {"items":[...]}
CREATE OR REPLACE FUNCTION cm_outbox_dead(p_limit int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 500 THEN
        PERFORM cm__invalid('limit must be between 1 and 500');
    END IF;
    RETURN '{"items":[' || coalesce((
        SELECT string_agg(cm__outbox_dead_json(d, o), ',' ORDER BY d.dead_at DESC, d.id DESC)
          FROM (SELECT * FROM outbox_delivery x
                 WHERE x.state = 'DEAD'
                 ORDER BY x.dead_at DESC, x.id DESC
                 LIMIT p_limit) d
          JOIN outbox o ON o.seq = d.seq), '') || ']}';
END
$$;

-- Put dead deliveries back in line: PENDING, due now, attempts from 0
-- (last_error and the replay count kept), audited EVENT_REPLAY by p_admin.
-- One (p_id), or all those of a sink and/or a type (NULL: any).
-- -> {"replayed":N,"ids":[...]} | DEAD_EVENT_NOT_FOUND (p_id not dead)
CREATE OR REPLACE FUNCTION cm_outbox_replay(p_admin bigint, p_id bigint, p_sink text, p_type text,
                                            p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    WITH r AS (
        UPDATE outbox_delivery d
           SET state = 'PENDING', dead_at = NULL, attempts = 0, replays = d.replays + 1,
               next_at = now(), first_attempt_at = NULL, last_attempt_at = NULL
         WHERE d.state = 'DEAD'
           AND (p_id IS NULL OR d.id = p_id)
           AND (p_sink IS NULL OR d.sink = p_sink)
           AND (p_type IS NULL OR d.type = p_type)
        RETURNING d.id
    )
    SELECT array_agg(r.id ORDER BY r.id) INTO v_ids FROM r;

    IF p_id IS NOT NULL AND v_ids IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'DEAD_EVENT_NOT_FOUND',
            DETAIL = format('no dead event %s', p_id);
    END IF;

    PERFORM cm__audit('EVENT_REPLAY', NULL, p_admin, p_client,
        json_build_object('id', p_id, 'sink', p_sink, 'type', p_type,
                          'replayed', coalesce(cardinality(v_ids), 0))::text);

    RETURN '{"replayed":' || coalesce(cardinality(v_ids), 0) || ',"ids":['
        || coalesce(array_to_string(v_ids, ','), '') || ']}';
END
$$;
