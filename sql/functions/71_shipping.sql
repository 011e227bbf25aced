-- shipping: a seller part's way to the buyer and its purchase confirmation
-- (issue 13 sections 1 and 2; tables 027_fulfilment.sql, 028_shipping.sql).
-- Repeatable file: see 00_common.sql.
--
-- A seller moves a paid part: PAID -> PREPARING (cm_seller_order_prepare)
-- -> SHIPPED with a parcel (cm_seller_order_ship: a shipments row).  The
-- carrier tells the rest: the module pulls a parcel's tracking info (on a
-- pushed callback, never trusting the push's own body, or when the poll
-- job finds its events stopped) and hands the whole answer to
-- cm_shipment_track, which records the events (unique per level and time:
-- a repeated event inserts nothing), moves the parcel's level forward only,
-- and at level 6 makes the part DELIVERED (an outgoing parcel) or tells the
-- returns that the parcel came back (cm__return_received, 72_refund.sql).
-- The buyer confirms a DELIVERED part (cm_order_part_confirm), or the job
-- does p_after seconds after delivery (cm_parts_autoconfirm); confirming
-- earns points (points_ledger EARN) in the same transaction.
--
-- Times: the job's functions take p_now (the module passes now()) so tests
-- move the rows' times back rather than wait.

-- A parcel as the buyer and the seller see it, or NULL:
-- {"carrier","trackingNumber","level","deliveredAt","events":[{"level",
-- "time","kind","where"}]} (events oldest first).
CREATE OR REPLACE FUNCTION cm__shipment_json(p_part bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"carrier":"' || s.carrier || '","trackingNumber":"' || s.tracking_number
        || '","level":' || s.level
        || ',"deliveredAt":' || coalesce('"' || cm__ts(s.delivered_at) || '"', 'null')
        || ',"events":' || coalesce((SELECT '[' || string_agg('{"level":' || e.level
                                              || ',"time":"' || cm__ts(e.event_time)
                                              || '","kind":' || to_json(e.kind)::text
                                              || ',"where":' || to_json(e.location)::text || '}',
                                              ',' ORDER BY e.event_time, e.level, e.id) || ']'
                                       FROM shipment_events e WHERE e.shipment_id = s.id), '[]')
        || '}'
      FROM shipments s
     WHERE s.part_id = p_part AND s.return_id IS NULL
$$;

-- The seller p_actor (its store's owner, a manager of it, an ADMIN; else
-- ORDER_PART_NOT_FOUND) moves part p_part from p_from (else
-- ORDER_PART_STATE) to p_to, stamping the step's time, under the part's
-- row lock.
CREATE OR REPLACE FUNCTION cm__seller_part_move(p_actor bigint, p_part bigint, p_from text,
                                                p_to text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    x order_parts;
BEGIN
    SELECT * INTO x FROM order_parts y WHERE y.id = p_part FOR UPDATE;
    IF NOT FOUND OR x.store_id IS NULL OR cm__store_relation(p_actor, x.store_id) IS NULL THEN
        PERFORM cm__not_found('ORDER_PART_NOT_FOUND', 'order part', p_part);
    END IF;
    IF x.status <> p_from THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_PART_STATE',
            DETAIL = format('order part %s is %s, not %s', p_part, x.status, p_from);
    END IF;
    UPDATE order_parts
       SET status = p_to,
           prepared_at = CASE WHEN p_to = 'PREPARING' THEN now() ELSE prepared_at END,
           shipped_at = CASE WHEN p_to = 'SHIPPED' THEN now() ELSE shipped_at END
     WHERE id = p_part;
END
$$;

-- What the outbox tells of a part's step (order.shipped, order.delivered,
-- order.confirmed): ids and the parcel, no personal data.
CREATE OR REPLACE FUNCTION cm__shipping_event(p_part bigint, p_type text, p_extra jsonb)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    x record;
BEGIN
    SELECT y.id, y.order_id, y.store_id, o.user_id, y.payment_amount,
           s.carrier, s.tracking_number
      INTO x
      FROM order_parts y JOIN orders o ON o.id = y.order_id
      LEFT JOIN shipments s ON s.part_id = y.id AND s.return_id IS NULL
     WHERE y.id = p_part;
    PERFORM cm__outbox_emit('order', x.order_id, p_type,
        jsonb_build_object('orderId', x.order_id, 'partId', x.id, 'storeId', x.store_id,
                           'userId', x.user_id, 'paymentAmount', x.payment_amount,
                           'carrier', x.carrier, 'trackingNumber', x.tracking_number)
        || coalesce(p_extra, '{}'::jsonb));
END
$$;

-- POST /seller/orders/{partId}/prepare: PAID -> PREPARING.
-- -> the seller's part document (cm_seller_order_get).
CREATE OR REPLACE FUNCTION cm_seller_order_prepare(p_actor bigint, p_part bigint) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cm__seller_part_move(p_actor, p_part, 'PAID', 'PREPARING');
    RETURN cm_seller_order_get(p_actor, p_part);
END
$$;

-- POST /seller/orders/{partId}/shipment: PREPARING -> SHIPPED with its
-- parcel (registered with the carrier by the poll job).  A carrier's
-- tracking number used already: TRACKING_NUMBER_TAKEN.
CREATE OR REPLACE FUNCTION cm_seller_order_ship(p_actor bigint, p_part bigint, p_carrier text,
                                                p_number text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_carrier IS NULL OR p_carrier NOT IN ('CJ', 'LOTTE', 'HANJIN') THEN
        PERFORM cm__invalid('carrier must be CJ, LOTTE or HANJIN');
    END IF;
    IF p_number IS NULL OR p_number !~ '^[0-9]{9,14}$' THEN
        PERFORM cm__invalid('trackingNumber must be 9 to 14 digits');
    END IF;
    PERFORM cm__seller_part_move(p_actor, p_part, 'PREPARING', 'SHIPPED');
    BEGIN
        INSERT INTO shipments (part_id, carrier, tracking_number)
        VALUES (p_part, p_carrier, p_number);
    EXCEPTION WHEN unique_violation THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'TRACKING_NUMBER_TAKEN',
            DETAIL = format('%s tracking number %s is already used', p_carrier, p_number);
    END;
    PERFORM cm__shipping_event(p_part, 'order.shipped', NULL);
    RETURN cm_seller_order_get(p_actor, p_part);
END
$$;

-- The poll job: up to p_limit parcels still travelling that are not
-- registered for push yet, or whose news (an event, a poll, the
-- registration) is older than p_poll_after seconds; each leased for
-- p_lease seconds (SKIP LOCKED, then lease_until: two instances never take
-- the same parcel).  A parcel whose registration or poll failed comes back
-- when its lease ends.
-- -> [{"id","carrier","trackingNumber","register"}]
CREATE OR REPLACE FUNCTION cm_shipments_due(p_now timestamptz, p_poll_after int, p_lease int,
                                            p_limit int) RETURNS text
LANGUAGE sql AS $$
    WITH d AS (
        SELECT s.id FROM shipments s
         WHERE s.level < 6
           AND (s.lease_until IS NULL OR s.lease_until <= p_now)
           AND (s.registered_at IS NULL
                OR greatest(s.last_event_at, s.polled_at, s.registered_at)
                   <= p_now - make_interval(secs => p_poll_after))
         ORDER BY coalesce(s.last_event_at, s.created_at), s.id
         LIMIT p_limit
         FOR UPDATE SKIP LOCKED
    ), u AS (
        UPDATE shipments s SET lease_until = p_now + make_interval(secs => p_lease)
          FROM d WHERE s.id = d.id
        RETURNING s.id, s.carrier, s.tracking_number, s.registered_at IS NULL AS reg
    )
    SELECT coalesce(json_agg(json_build_object('id', u.id, 'carrier', u.carrier,
                                               'trackingNumber', u.tracking_number,
                                               'register', u.reg) ORDER BY u.id)::text, '[]')
      FROM u
$$;

-- The carrier acknowledged the push registration of parcel p_id.
CREATE OR REPLACE FUNCTION cm_shipment_registered(p_id bigint, p_now timestamptz) RETURNS text
LANGUAGE sql AS $$
    UPDATE shipments SET registered_at = coalesce(registered_at, p_now), lease_until = NULL
     WHERE id = p_id
    RETURNING '{"id":' || id || '}'
$$;

-- The carrier's tracking info of p_carrier's parcel p_number (its whole
-- answer p_doc, pulled from the carrier): the events recorded, the level
-- moved forward only, level 6 delivers.  Not our parcel: {"known":false}.
-- -> {"known","id","level","inserted"}
CREATE OR REPLACE FUNCTION cm_shipment_track(p_carrier text, p_number text, p_doc text,
                                             p_now timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    s       shipments;
    d       jsonb;
    e       jsonb;
    v_new   int := 0;
    v_level smallint;
    v_at    timestamptz;
BEGIN
    SELECT * INTO s FROM shipments x
     WHERE x.carrier = p_carrier AND x.tracking_number = p_number FOR UPDATE;
    IF NOT FOUND THEN
        RETURN '{"known":false}';
    END IF;

    BEGIN
        d := p_doc::jsonb;
    EXCEPTION WHEN others THEN
        d := NULL;
    END;

    IF jsonb_typeof(d->'trackingDetails') = 'array' THEN
        FOR e IN SELECT * FROM jsonb_array_elements(d->'trackingDetails') LOOP
            CONTINUE WHEN jsonb_typeof(e) <> 'object'
                       OR jsonb_typeof(e->'level') <> 'number' OR (e->>'level') !~ '^[1-6]$'
                       OR jsonb_typeof(e->'time') <> 'number'
                       OR (e->>'time') !~ '^[0-9]{1,15}$';
            INSERT INTO shipment_events (shipment_id, level, event_time, kind, location,
                                         received_at)
            VALUES (s.id, (e->>'level')::smallint,
                    to_timestamp((e->>'time')::bigint / 1000.0),
                    left(CASE WHEN jsonb_typeof(e->'kind') = 'string' THEN e->>'kind' ELSE '' END,
                         100),
                    left(CASE WHEN jsonb_typeof(e->'where') = 'string' THEN e->>'where' ELSE '' END,
                         100),
                    p_now)
            ON CONFLICT ON CONSTRAINT shipment_events_key DO NOTHING;
            IF FOUND THEN
                v_new := v_new + 1;
            END IF;
        END LOOP;
    END IF;

    SELECT greatest(max(e2.level), s.level) INTO v_level
      FROM shipment_events e2 WHERE e2.shipment_id = s.id;
    v_level := coalesce(v_level, s.level);
    IF v_level = 6 AND s.level < 6 THEN
        SELECT least(min(e3.event_time), p_now) INTO v_at
          FROM shipment_events e3 WHERE e3.shipment_id = s.id AND e3.level = 6;
    END IF;

    UPDATE shipments
       SET level = v_level,
           delivered_at = coalesce(delivered_at, v_at),
           last_event_at = CASE WHEN v_new > 0 THEN p_now ELSE last_event_at END,
           polled_at = p_now,
           lease_until = NULL
     WHERE id = s.id;

    IF v_level = 6 AND s.level < 6 THEN
        IF s.return_id IS NOT NULL THEN
            -- a return's parcel is back (72_refund.sql); the part stays
            PERFORM cm__return_received(s.return_id);
        ELSE
            UPDATE order_parts SET status = 'DELIVERED', delivered_at = v_at
             WHERE id = s.part_id AND status = 'SHIPPED';
            IF FOUND THEN
                PERFORM cm__shipping_event(s.part_id, 'order.delivered', NULL);
            END IF;
        END IF;
    END IF;

    RETURN json_build_object('known', true, 'id', s.id, 'level', v_level,
                             'inserted', v_new)::text;
END
$$;

-- Confirms DELIVERED part p_part (locked by the caller) at p_now: the
-- points earned, floor(paymentAmount * p_bp / 10000) (p_bp: basis points
-- of the payment, commerce_shipping points=), an EARN row naming the
-- order; order.confirmed.  Returns the points earned.
CREATE OR REPLACE FUNCTION cm__part_confirm(p_part bigint, p_bp int, p_now timestamptz,
                                            p_auto boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    x       record;
    v_pts   bigint;
    v_after bigint;
BEGIN
    UPDATE order_parts y SET status = 'PURCHASE_CONFIRMED', confirmed_at = p_now
      FROM orders o
     WHERE y.id = p_part AND y.status = 'DELIVERED' AND o.id = y.order_id
    RETURNING y.order_id, y.payment_amount, o.user_id INTO x;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    v_pts := floor(x.payment_amount::numeric * p_bp / 10000)::bigint;
    IF v_pts > 0 THEN
        UPDATE users SET points = points + v_pts WHERE id = x.user_id
        RETURNING points INTO v_after;
        INSERT INTO points_ledger (user_id, kind, amount, points_after, order_id, reason)
        VALUES (x.user_id, 'EARN', v_pts, v_after, x.order_id,
                'purchase confirmed: part ' || p_part);
    END IF;
    PERFORM cm__shipping_event(p_part, 'order.confirmed',
                               jsonb_build_object('pointsEarned', v_pts, 'automatic', p_auto));
    RETURN v_pts;
END
$$;

-- Is a return of part p_part open (REQUESTED, APPROVED, RECEIVED)?
CREATE OR REPLACE FUNCTION cm__part_return_open(p_part bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM order_returns r
                    WHERE r.part_id = p_part AND r.status IN ('REQUESTED', 'APPROVED', 'RECEIVED'))
$$;

-- POST /orders/{id}/parts/{partId}/confirm: the buyer p_user confirms a
-- DELIVERED part of their order.  Another's order: ORDER_NOT_FOUND; a
-- part not of it: ORDER_PART_NOT_FOUND; not DELIVERED: ORDER_PART_STATE;
-- a return open: RETURN_OPEN.  -> the part's document.
CREATE OR REPLACE FUNCTION cm_order_part_confirm(p_user bigint, p_order bigint, p_part bigint,
                                                 p_bp int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    x order_parts;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = p_order AND o.user_id = p_user) THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_NOT_FOUND',
            DETAIL = format('order %s not found', p_order);
    END IF;
    SELECT * INTO x FROM order_parts y WHERE y.id = p_part AND y.order_id = p_order FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('ORDER_PART_NOT_FOUND', 'order part', p_part);
    END IF;
    IF x.status <> 'DELIVERED' THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ORDER_PART_STATE',
            DETAIL = format('order part %s is %s, not DELIVERED', p_part, x.status);
    END IF;
    IF cm__part_return_open(p_part) THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'RETURN_OPEN',
            DETAIL = format('order part %s has a return open', p_part);
    END IF;
    PERFORM cm__part_confirm(p_part, p_bp, now(), false);
    RETURN cm__order_part_json(p_part);
END
$$;

-- The confirmation job: up to p_limit parts DELIVERED at least p_after
-- seconds before p_now, without an open return, confirmed (SKIP LOCKED: a
-- part the buyer is confirming right now, or another instance, is left).
-- -> how many.
CREATE OR REPLACE FUNCTION cm_parts_autoconfirm(p_now timestamptz, p_after int, p_bp int,
                                                p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r   record;
    v_n int := 0;
BEGIN
    FOR r IN SELECT x.id FROM order_parts x
              WHERE x.status = 'DELIVERED'
                AND x.delivered_at <= p_now - make_interval(secs => p_after)
                AND NOT cm__part_return_open(x.id)
              ORDER BY x.delivered_at, x.id
              LIMIT p_limit
              FOR UPDATE SKIP LOCKED
    LOOP
        -- the row lock came after the filter: read the part again under it
        CONTINUE WHEN cm__part_return_open(r.id);
        PERFORM cm__part_confirm(r.id, p_bp, p_now, true);
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END
$$;
