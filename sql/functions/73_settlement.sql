-- settlement: the weekly settlement of the sellers' confirmed parts, its
-- payouts, statements, tax invoices and the reconciliation (issue 13
-- section 4; tables 030_settlement.sql).  Repeatable file: see
-- 00_common.sql.
--
-- cm_settlement_run(as_of, hold, fee, minimum) settles the week whose
-- Monday 00:00 Asia/Seoul is the latest Monday <= as_of: for every store,
-- the parts PURCHASE_CONFIRMED with confirmed_at + hold <= that Monday not
-- settled before (their payment_amount: what the buyer paid for the store's
-- part after its share of the coupon discount: the seller bears its share),
-- minus their refunded_amount, minus the refunds made after an earlier
-- settlement of a part (refunds.settled_in NULL, created before the
-- Monday, not FAILED), minus the fee (fee_bp / 10000 of the gross, rounded
-- down to the won: in the seller's favour; the fee is not given back when a
-- part is refunded), plus what the store's previous settlement carried
-- over.  A net below the minimum (or negative) is carried to the next
-- settlement of the store; a net at or above it is paid (a payouts row).
-- The module's job calls it with now(); the admin route with a given time.
-- One settlement per store and week (settlements_store_week_key), each
-- part once (settlement_lines' key), each settlement carried into one next
-- (prev_id unique): a rerun or a second instance makes nothing again.
--
-- Lock order: the store (FOR NO KEY UPDATE) -> its parts (FOR NO KEY
-- UPDATE) -> its refunds -> the payout -> the outbox's advisory lock.

-- ---------------------------------------------------------------------------
-- Documents

-- The Monday 00:00 Asia/Seoul on or before p_ts.
CREATE OR REPLACE FUNCTION cm__settlement_week(p_ts timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT date_trunc('week', p_ts AT TIME ZONE 'Asia/Seoul') AT TIME ZONE 'Asia/Seoul'
$$;

-- A payout's idempotency key at the payout API.
CREATE OR REPLACE FUNCTION cm__payout_key(p_id bigint, p_attempt int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'po-' || p_id || '-' || p_attempt
$$;

-- A settlement's short document (lists) and its statement (lines, the
-- refunds deducted, the payout, the tax invoice).
CREATE OR REPLACE FUNCTION cm__settlement_doc(p_id bigint, p_full boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT row_to_json(x)::text INTO v_doc FROM (
        SELECT s.id, s.store_id AS "storeId",
               to_char(s.week_start AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD') AS "week",
               cm__ts(s.week_start) AS "weekStart",
               s.gross, s.refunds, (s.fee_bp / 100.0)::float8 AS "feeRate", s.fee,
               s.carried_in AS "carriedIn", s.net, s.minimum,
               s.paid_amount AS "paidAmount", s.carried_out AS "carriedOut",
               CASE WHEN p.id IS NULL THEN 'CARRIED_OVER'
                    WHEN p.status = 'SUCCEEDED' THEN 'PAID'
                    WHEN p.status = 'DEAD' THEN 'PAYOUT_FAILED'
                    ELSE 'PAYING' END AS status,
               CASE WHEN p.id IS NULL THEN NULL ELSE
                   (SELECT row_to_json(y) FROM (
                       SELECT p.id, p.amount, p.status, p.attempt,
                              cm__payout_key(p.id, p.attempt) AS "idempotencyKey",
                              cm__ts(p.paid_at) AS "paidAt") y) END AS payout,
               CASE WHEN p_full THEN
                   (SELECT coalesce(json_agg(l ORDER BY l."partId"), '[]') FROM (
                       SELECT sl.part_id AS "partId", sl.order_id AS "orderId",
                              cm__ts(sl.confirmed_at) AS "confirmedAt", sl.amount,
                              sl.refunded
                         FROM settlement_lines sl WHERE sl.settlement_id = s.id) l) END AS lines,
               CASE WHEN p_full THEN
                   (SELECT coalesce(json_agg(f ORDER BY f."refundId"), '[]') FROM (
                       SELECT r.id AS "refundId", r.part_id AS "partId", r.amount,
                              NOT EXISTS (SELECT 1 FROM settlement_lines sl
                                           WHERE sl.part_id = r.part_id
                                             AND sl.settlement_id = s.id) AS "afterSettlement"
                         FROM refunds r WHERE r.settled_in = s.id) f) END AS "refundLines",
               (SELECT row_to_json(t) FROM (
                   SELECT i.id, 'PLATFORM' AS issuer,
                          (SELECT row_to_json(st) FROM (SELECT so.id AS "storeId", so.name
                                                         FROM stores so WHERE so.id = s.store_id) st)
                              AS recipient,
                          i.supply_amount AS "supplyAmount", i.vat, i.total,
                          cm__ts(i.issued_at) AS "issuedAt"
                     FROM settlement_tax_invoices i WHERE i.settlement_id = s.id) t) AS "taxInvoice",
               cm__ts(s.created_at) AS "createdAt"
          FROM settlements s LEFT JOIN payouts p ON p.settlement_id = s.id
         WHERE s.id = p_id) x;
    IF NOT p_full THEN
        v_doc := replace(replace(v_doc, ',"lines":null', ''), ',"refundLines":null', '');
    END IF;
    RETURN v_doc;
END
$$;

-- ---------------------------------------------------------------------------
-- The run

-- Settles one store for the week p_week (its lock held by the caller).
-- The settlement's id, or NULL when there was nothing to settle or the
-- store was settled for this week or a later one.
CREATE OR REPLACE FUNCTION cm__settlement_store(p_store bigint, p_week timestamptz, p_hold int,
                                                p_fee_bp int, p_minimum bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_prev   settlements%ROWTYPE;
    v_id     bigint;
    v_gross  bigint;
    v_refund bigint;
    v_later  bigint;
    v_fee    bigint;
    v_net    bigint;
    v_paid   bigint;
    v_parts  bigint[];
BEGIN
    SELECT * INTO v_prev FROM settlements s
     WHERE s.store_id = p_store ORDER BY s.week_start DESC LIMIT 1;
    IF FOUND AND v_prev.week_start >= p_week THEN
        RETURN NULL;
    END IF;

    SELECT array_agg(x.id ORDER BY x.id), coalesce(sum(x.payment_amount), 0),
           coalesce(sum(x.refunded_amount), 0)
      INTO v_parts, v_gross, v_refund
      FROM (SELECT p.id, p.payment_amount, p.refunded_amount FROM order_parts p
             WHERE p.store_id = p_store AND p.status = 'PURCHASE_CONFIRMED'
               AND p.confirmed_at + make_interval(secs => p_hold) <= p_week
               AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.part_id = p.id)
             ORDER BY p.id
               FOR NO KEY UPDATE) x;

    SELECT coalesce(sum(r.amount), 0) INTO v_later
      FROM refunds r JOIN settlement_lines l ON l.part_id = r.part_id
      JOIN order_parts p ON p.id = r.part_id
     WHERE p.store_id = p_store AND r.settled_in IS NULL AND r.status <> 'FAILED'
       AND r.created_at <= p_week;

    IF v_parts IS NULL AND v_later = 0 AND coalesce(v_prev.carried_out, 0) = 0 THEN
        RETURN NULL;
    END IF;

    v_fee := v_gross * p_fee_bp / 10000;
    v_net := coalesce(v_prev.carried_out, 0) + v_gross - v_refund - v_later - v_fee;
    v_paid := CASE WHEN v_net >= p_minimum THEN v_net ELSE 0 END;

    INSERT INTO settlements (store_id, week_start, prev_id, gross, refunds, fee_bp, fee,
                             carried_in, net, minimum, paid_amount, carried_out)
    VALUES (p_store, p_week, v_prev.id, v_gross, v_refund + v_later, p_fee_bp, v_fee,
            coalesce(v_prev.carried_out, 0), v_net, p_minimum, v_paid, v_net - v_paid)
    ON CONFLICT ON CONSTRAINT settlements_store_week_key DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;

    INSERT INTO settlement_lines (settlement_id, part_id, order_id, confirmed_at, amount, refunded)
    SELECT v_id, p.id, p.order_id, p.confirmed_at, p.payment_amount, p.refunded_amount
      FROM order_parts p WHERE p.id = ANY (v_parts);

    -- the refunds of the parts settled now (in their refunded_amount) and
    -- the later refunds of parts settled before
    UPDATE refunds r SET settled_in = v_id
     WHERE r.settled_in IS NULL AND r.status <> 'FAILED'
       AND (r.part_id = ANY (v_parts)
            OR (r.created_at <= p_week
                AND r.part_id IN (SELECT l.part_id FROM settlement_lines l
                                   JOIN order_parts p ON p.id = l.part_id
                                  WHERE p.store_id = p_store AND l.settlement_id <> v_id)));

    IF v_paid > 0 THEN
        INSERT INTO payouts (settlement_id, store_id, amount) VALUES (v_id, p_store, v_paid);
    END IF;
    IF v_fee > 0 THEN
        INSERT INTO settlement_tax_invoices (settlement_id, store_id, supply_amount, vat, total)
        VALUES (v_id, p_store, (v_fee * 10 + 5) / 11, v_fee - (v_fee * 10 + 5) / 11, v_fee);
    END IF;

    -- the statement's e-mail to the store's owner (the notify sink's
    -- settlement_statement: sellerId and the amounts as text)
    PERFORM cm__outbox_emit('store', p_store, 'settlement.statement',
        jsonb_build_object('settlementId', v_id, 'storeId', p_store,
                           'sellerId', (SELECT s.owner_id FROM stores s WHERE s.id = p_store),
                           'storeName', (SELECT s.name FROM stores s WHERE s.id = p_store),
                           'week', to_char(p_week AT TIME ZONE 'Asia/Seoul', 'YYYY-MM-DD'),
                           'gross', v_gross, 'refunds', v_refund + v_later, 'fee', v_fee,
                           'carriedIn', coalesce(v_prev.carried_out, 0),
                           'paid', v_paid, 'carriedOut', v_net - v_paid,
                           'salesAmount', to_char(v_gross, 'FM999,999,999,999,990'),
                           'refundAmount', to_char(v_refund + v_later, 'FM999,999,999,999,990'),
                           'feeAmount', to_char(v_fee, 'FM999,999,999,999,990'),
                           'paidAmount', to_char(v_paid, 'FM999,999,999,999,990'),
                           'carriedAmount', to_char(v_net - v_paid, 'FM999,999,999,999,990')));
    RETURN v_id;
END
$$;

-- Settles every store for the week of p_as_of (see the top of the file).
-- p_hold: seconds after confirmation; p_fee_bp: the fee in 1/10000;
-- p_minimum: the least amount paid.  {"weekStart","asOf","settlements":[..]}:
-- the settlements made by this call.
CREATE OR REPLACE FUNCTION cm_settlement_run(p_as_of timestamptz, p_hold int, p_fee_bp int,
                                             p_minimum bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_week  timestamptz := cm__settlement_week(p_as_of);
    v_store bigint;
    v_id    bigint;
    v_ids   bigint[] := '{}';
BEGIN
    IF p_as_of IS NULL OR p_as_of > now() THEN
        PERFORM cm__invalid('asOf must not be in the future');
    END IF;
    IF p_hold < 0 OR p_fee_bp NOT BETWEEN 0 AND 10000 OR p_minimum < 1 THEN
        PERFORM cm__invalid('bad settlement parameters');
    END IF;
    FOR v_store IN
        SELECT DISTINCT p.store_id FROM order_parts p
         WHERE p.status = 'PURCHASE_CONFIRMED' AND p.store_id IS NOT NULL
           AND p.confirmed_at + make_interval(secs => p_hold) <= v_week
           AND NOT EXISTS (SELECT 1 FROM settlement_lines l WHERE l.part_id = p.id)
        UNION
        SELECT p.store_id FROM refunds r JOIN settlement_lines l ON l.part_id = r.part_id
          JOIN order_parts p ON p.id = r.part_id
         WHERE r.settled_in IS NULL AND r.status <> 'FAILED' AND r.created_at <= v_week
        UNION
        SELECT s.store_id FROM settlements s
         WHERE s.carried_out <> 0 AND s.week_start < v_week
           AND NOT EXISTS (SELECT 1 FROM settlements n WHERE n.prev_id = s.id)
        ORDER BY 1
    LOOP
        PERFORM 1 FROM stores s WHERE s.id = v_store FOR NO KEY UPDATE;
        v_id := cm__settlement_store(v_store, v_week, p_hold, p_fee_bp, p_minimum);
        IF v_id IS NOT NULL THEN
            v_ids := v_ids || v_id;
        END IF;
    END LOOP;
    RETURN '{"weekStart":"' || cm__ts(v_week) || '","asOf":"' || cm__ts(p_as_of)
        || '","settlements":['
        || coalesce((SELECT string_agg(cm__settlement_doc(i, false), ',' ORDER BY i)
                       FROM unnest(v_ids) i), '')
        || ']}';
END
$$;

-- The admin route's run: p_as_of as RFC 3339 text with its offset
-- ("2026-12-07T00:00:00+09:00", "...Z"), no later than now.
CREATE OR REPLACE FUNCTION cm_settlement_run_at(p_as_of text, p_hold int, p_fee_bp int,
                                                p_minimum bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_ts timestamptz;
BEGIN
    IF p_as_of !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
        PERFORM cm__invalid('asOf must be an RFC 3339 time with its offset, such as 2026-12-07T00:00:00+09:00');
    END IF;
    BEGIN
        v_ts := p_as_of::timestamptz;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format OR invalid_time_zone_displacement_value THEN
        PERFORM cm__invalid('asOf must be an RFC 3339 time with its offset, such as 2026-12-07T00:00:00+09:00');
    END;
    IF v_ts > now() THEN
        PERFORM cm__invalid('asOf must not be in the future');
    END IF;
    RETURN cm_settlement_run(v_ts, p_hold, p_fee_bp, p_minimum);
END
$$;

-- ---------------------------------------------------------------------------
-- Statements (the store's owner, its managers, an ADMIN: cm__store_relation)

CREATE OR REPLACE FUNCTION cm_settlement_list(p_actor bigint, p_store bigint, p_page int,
                                              p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
    v_total bigint;
    v_items text;
BEGIN
    v_store := cm__seller_list_store(p_actor, p_store, p_page, p_size);
    SELECT count(*) INTO v_total FROM settlements s WHERE s.store_id = v_store;
    SELECT string_agg(cm__settlement_doc(x.id, false), ',' ORDER BY x.week_start DESC)
      INTO v_items
      FROM (SELECT s.id, s.week_start FROM settlements s WHERE s.store_id = v_store
             ORDER BY s.week_start DESC LIMIT p_size OFFSET p_page::bigint * p_size) x;
    RETURN cm__seller_list_doc(v_store, v_items, p_page, p_size, v_total);
END
$$;

CREATE OR REPLACE FUNCTION cm_settlement_get(p_actor bigint, p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
BEGIN
    SELECT s.store_id INTO v_store FROM settlements s WHERE s.id = p_id;
    IF v_store IS NULL OR cm__store_relation(p_actor, v_store) IS NULL THEN
        PERFORM cm__not_found('SETTLEMENT_NOT_FOUND', 'settlement', p_id);
    END IF;
    RETURN cm__settlement_doc(p_id, true);
END
$$;

-- ---------------------------------------------------------------------------
-- Payouts (the module's job)

-- Leases up to p_batch due payouts for p_lease seconds:
-- [{"id","key","attempt","action":"send"|"check","amount","storeId",
--   "ownerId","bankCode","accountCt","holderCt"}]: send a REQUESTED
-- payout, pull the status of a PENDING one.
CREATE OR REPLACE FUNCTION cm_payout_claim(p_batch int, p_lease int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_doc text;
BEGIN
    WITH due AS (
        SELECT p.id FROM payouts p
         WHERE p.status IN ('REQUESTED', 'PENDING') AND p.next_at <= now()
           AND (p.lease_until IS NULL OR p.lease_until < now())
         ORDER BY p.next_at, p.id
         LIMIT p_batch
           FOR NO KEY UPDATE SKIP LOCKED),
    leased AS (
        UPDATE payouts p SET lease_until = now() + make_interval(secs => p_lease)
          FROM due WHERE p.id = due.id
        RETURNING p.*)
    SELECT string_agg('{"id":' || l.id || ',"key":"' || cm__payout_key(l.id, l.attempt)
                      || '","attempt":' || l.attempt || ',"action":"'
                      || CASE l.status WHEN 'REQUESTED' THEN 'send' ELSE 'check' END
                      || '","amount":' || l.amount || ',"storeId":' || l.store_id
                      || ',"ownerId":' || s.owner_id || ',"bankCode":"' || s.bank_code
                      || '","accountCt":' || to_json(s.account_number_ct)::text
                      || ',"holderCt":' || to_json(s.account_holder_ct)::text || '}',
                      ',' ORDER BY l.id)
      INTO v_doc
      FROM leased l JOIN stores s ON s.id = l.store_id;
    RETURN '[' || coalesce(v_doc, '') || ']';
END
$$;

-- The outcome of one exchange with the payout API about payout p_id's
-- attempt p_attempt (a stale answer, of another attempt or of a payout no
-- longer waiting, changes nothing):
--   ACCEPTED   the request was taken (PENDING there): pull it after p_check s
--   SUCCEEDED  the API's status says paid
--   FAILED     the API's status says failed (p_reason): a new attempt
--   UNKNOWN    the API does not know the key: send it again
--   ERROR      no usable answer (p_reason): the same key again later
-- A try that failed (FAILED, or ERROR on a send) counts; past p_retries
-- tries the payout is DEAD (settlement.payout_dead, for the operators).
-- Backoff: 2^tries seconds, at most 60.
CREATE OR REPLACE FUNCTION cm_payout_result(p_id bigint, p_attempt int, p_outcome text,
                                            p_reason text, p_retries int, p_check int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p payouts%ROWTYPE;
BEGIN
    SELECT * INTO p FROM payouts x WHERE x.id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND OR p.attempt <> p_attempt OR p.status NOT IN ('REQUESTED', 'PENDING') THEN
        RETURN 'STALE';
    END IF;
    IF p_outcome = 'ACCEPTED' THEN
        UPDATE payouts SET status = 'PENDING', lease_until = NULL,
                           sent_at = coalesce(sent_at, now()),
                           next_at = now() + make_interval(secs => p_check)
         WHERE id = p_id;
    ELSIF p_outcome = 'SUCCEEDED' THEN
        UPDATE payouts SET status = 'SUCCEEDED', lease_until = NULL, paid_at = now(),
                           last_error = NULL
         WHERE id = p_id;
        PERFORM cm__outbox_emit('store', p.store_id, 'settlement.paid',
            jsonb_build_object('settlementId', p.settlement_id, 'payoutId', p.id,
                               'storeId', p.store_id, 'amount', p.amount));
    ELSIF p_outcome = 'UNKNOWN' THEN
        UPDATE payouts SET status = 'REQUESTED', lease_until = NULL, next_at = now()
         WHERE id = p_id;
    ELSIF p_outcome IN ('FAILED', 'ERROR') THEN
        IF p_outcome = 'ERROR' AND p.status = 'PENDING' THEN
            -- a status we could not read: ask again, it was accepted
            UPDATE payouts SET lease_until = NULL, last_error = left(p_reason, 300),
                               next_at = now() + make_interval(secs => p_check)
             WHERE id = p_id;
            RETURN p.status;
        END IF;
        IF p.tries + 1 > p_retries THEN
            UPDATE payouts SET status = 'DEAD', lease_until = NULL, dead_at = now(),
                               tries = p.tries + 1, last_error = left(p_reason, 300),
                               attempt = p.attempt + (p_outcome = 'FAILED')::int
             WHERE id = p_id;
            PERFORM cm__outbox_emit('store', p.store_id, 'settlement.payout_dead',
                jsonb_build_object('settlementId', p.settlement_id, 'payoutId', p.id,
                                   'storeId', p.store_id, 'amount', p.amount,
                                   'reason', left(p_reason, 300)));
        ELSE
            UPDATE payouts SET status = 'REQUESTED', lease_until = NULL,
                               tries = p.tries + 1, last_error = left(p_reason, 300),
                               attempt = p.attempt + (p_outcome = 'FAILED')::int,
                               next_at = now() + make_interval(secs => least(60, 2 ^ p.tries))
             WHERE id = p_id;
        END IF;
    ELSE
        PERFORM cm__invalid('unknown payout outcome');
    END IF;
    RETURN (SELECT x.status FROM payouts x WHERE x.id = p_id);
END
$$;

-- A callback of the payout API named key p_key: only a hint, the job pulls
-- the payout's status at once.  Changes nothing else, whatever it says.
CREATE OR REPLACE FUNCTION cm_payout_callback(p_key text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_m text[] := regexp_match(p_key, '^po-([0-9]{1,18})-([0-9]{1,9})$');
BEGIN
    IF v_m IS NULL THEN
        PERFORM cm__invalid('payoutId must be a payout key (po-<id>-<attempt>)');
    END IF;
    UPDATE payouts SET next_at = now()
     WHERE id = v_m[1]::bigint AND attempt = v_m[2]::int AND status = 'PENDING'
       AND next_at > now();
    RETURN '{"received":true}';
END
$$;

-- The dead payouts, newest first (ADMIN).
CREATE OR REPLACE FUNCTION cm_payout_dead(p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items text;
    v_total bigint;
BEGIN
    IF p_page < 0 OR p_size NOT BETWEEN 1 AND 100 THEN
        PERFORM cm__invalid('page must be 0 or more and size 1 to 100');
    END IF;
    SELECT count(*) INTO v_total FROM payouts p WHERE p.status = 'DEAD';
    SELECT string_agg(row_to_json(x)::text, ',' ORDER BY x."deadAt" DESC, x.id DESC) INTO v_items
      FROM (SELECT p.id, p.settlement_id AS "settlementId", p.store_id AS "storeId", p.amount,
                   p.attempt, p.tries, p.replays, p.last_error AS "lastError",
                   cm__ts(p.dead_at) AS "deadAt"
              FROM payouts p WHERE p.status = 'DEAD'
             ORDER BY p.dead_at DESC, p.id DESC
             LIMIT p_size OFFSET p_page::bigint * p_size) x;
    RETURN '{"items":[' || coalesce(v_items, '') || '],"page":' || p_page || ',"size":' || p_size
        || ',"total":' || v_total || '}';
END
$$;

-- A dead payout sent again (ADMIN): REQUESTED, its tries from 0; the same
-- key when its last outcome was unknown, a new one after a failure.
CREATE OR REPLACE FUNCTION cm_payout_replay(p_admin bigint, p_id bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT p.status INTO v_status FROM payouts p WHERE p.id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('PAYOUT_NOT_FOUND', 'payout', p_id);
    END IF;
    IF v_status <> 'DEAD' THEN
        PERFORM cm__conflict('PAYOUT_NOT_DEAD', format('payout %s is %s, not DEAD', p_id, v_status));
    END IF;
    UPDATE payouts SET status = 'REQUESTED', dead_at = NULL, tries = 0, replays = replays + 1,
                       next_at = now()
     WHERE id = p_id;
    RETURN (SELECT row_to_json(x)::text FROM (
        SELECT p.id, p.settlement_id AS "settlementId", p.status, p.attempt, p.replays
          FROM payouts p WHERE p.id = p_id) x);
END
$$;

-- ---------------------------------------------------------------------------
-- Reconciliation: per store, the confirmed sales settled (the parts'
-- payment_amount now) against what they became: payouts paid and owed,
-- fees, refunds deducted (the refund rows settled_in a settlement) and the
-- carry-over not yet carried into a next settlement.  balanced: sales =
-- paid + owed + fees + refunds + carried, and every settlement's refunds
-- are its refund rows, every line's amount its part's payment_amount.
CREATE OR REPLACE FUNCTION cm_settlement_reconcile()
RETURNS TABLE (store_id bigint, sales bigint, refunds bigint, fees bigint, paid bigint,
               owed bigint, carried bigint, balanced boolean)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    WITH st AS (SELECT DISTINCT s.store_id FROM settlements s),
    t AS (
        SELECT st.store_id,
               (SELECT coalesce(sum(p.payment_amount), 0) FROM settlement_lines l
                  JOIN order_parts p ON p.id = l.part_id
                  JOIN settlements s ON s.id = l.settlement_id
                 WHERE s.store_id = st.store_id)::bigint AS sales,
               (SELECT coalesce(sum(r.amount), 0) FROM refunds r
                  JOIN settlements s ON s.id = r.settled_in
                 WHERE s.store_id = st.store_id)::bigint AS refunds,
               (SELECT coalesce(sum(s.fee), 0) FROM settlements s
                 WHERE s.store_id = st.store_id)::bigint AS fees,
               (SELECT coalesce(sum(p.amount), 0) FROM payouts p
                 WHERE p.store_id = st.store_id AND p.status = 'SUCCEEDED')::bigint AS paid,
               (SELECT coalesce(sum(p.amount), 0) FROM payouts p
                 WHERE p.store_id = st.store_id AND p.status <> 'SUCCEEDED')::bigint AS owed,
               (SELECT coalesce(sum(s.carried_out), 0) FROM settlements s
                 WHERE s.store_id = st.store_id
                   AND NOT EXISTS (SELECT 1 FROM settlements n WHERE n.prev_id = s.id))::bigint
                   AS carried,
               (SELECT count(*) FROM settlements s
                 WHERE s.store_id = st.store_id
                   AND s.refunds <> (SELECT coalesce(sum(r.amount), 0) FROM refunds r
                                      WHERE r.settled_in = s.id)) AS bad_refunds,
               (SELECT count(*) FROM settlement_lines l JOIN order_parts p ON p.id = l.part_id
                  JOIN settlements s ON s.id = l.settlement_id
                 WHERE s.store_id = st.store_id
                   AND (l.amount <> p.payment_amount OR p.store_id <> s.store_id)) AS bad_lines,
               (SELECT coalesce(sum(s.gross), 0) FROM settlements s
                 WHERE s.store_id = st.store_id)::bigint AS gross
          FROM st)
    SELECT t.store_id, t.sales, t.refunds, t.fees, t.paid, t.owed, t.carried,
           t.sales = t.paid + t.owed + t.fees + t.refunds + t.carried
           AND t.sales = t.gross AND t.bad_refunds = 0 AND t.bad_lines = 0
      FROM t ORDER BY t.store_id;
END
$$;
