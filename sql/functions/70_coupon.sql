-- coupon: first-come coupon campaigns, issuing, a user's coupons.  Tables
-- in 010_coupons.sql.  Repeatable file: see 00_common.sql.
--
-- Redis will be the gate, Postgres is the truth: cm_coupon_issue is exact
-- on its own, under any concurrency, with or without a gate in front of it.
--   1. a conditional UPDATE of the campaign's counter
--      (issued_quantity < total_quantity, re-evaluated on the newest row
--      version when it waited) takes the campaign row lock and draws the
--      coupon's issue_no;
--   2. holding that lock until commit, every other issue of the campaign
--      has committed, rolled back or waits behind us, so the next
--      statement's snapshot (READ COMMITTED: a new one per statement) sees
--      every coupon of the user: seq = max(seq) + 1, LIMIT_REACHED above
--      the limit (the RAISE undoes the increment);
--   3. the INSERT is bounded by the constraints themselves (issue_no in
--      1..total, seq in 1..per_user_limit, both unique); a conflict on the
--      user's seq (possible only if a writer skipped step 1) is
--      LIMIT_REACHED too, never a raw unique violation.
--
-- Lock order: campaign row (UPDATE) -> user_coupons insert (its foreign-key
-- checks take FOR KEY SHARE on users and the campaign, which the campaign's
-- FOR NO KEY UPDATE does not block).  Issues of one campaign queue on its
-- row for the length of a transaction; issues of different campaigns do
-- not meet.
--
-- The campaign document:
--   {"id","name","discountType","discountValue","maxDiscount","minOrderAmount",
--    "totalQuantity","remaining","perUserLimit","issueStartsAt","issueEndsAt",
--    "validDays","createdAt"}
-- The user coupon document:
--   {"id","couponId","name","discountType","discountValue","status",
--    "issuedAt","expiresAt"}
-- couponId is the campaign's id; status shows an AVAILABLE coupon past
-- expires_at as EXPIRED.

-- ---------------------------------------------------------------------------
-- Documents (inlined)

CREATE OR REPLACE FUNCTION cm__coupon_json(p_id bigint, p_name text, p_type text, p_value bigint,
                                           p_max_discount bigint, p_min_order bigint,
                                           p_total int, p_issued int, p_per_user int,
                                           p_starts timestamptz, p_ends timestamptz,
                                           p_valid_days int, p_created timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"name":' || to_json(p_name)::text
        || ',"discountType":"' || p_type || '","discountValue":' || p_value
        || ',"maxDiscount":' || coalesce(p_max_discount::text, 'null')
        || ',"minOrderAmount":' || p_min_order
        || ',"totalQuantity":' || p_total || ',"remaining":' || (p_total - p_issued)
        || ',"perUserLimit":' || p_per_user
        || ',"issueStartsAt":"' || cm__ts(p_starts) || '","issueEndsAt":"' || cm__ts(p_ends)
        || '","validDays":' || p_valid_days
        || ',"createdAt":"' || cm__ts(p_created) || '"}'
$$;

-- The status a user sees: an AVAILABLE coupon past its expiry is EXPIRED.
CREATE OR REPLACE FUNCTION cm__coupon_status(p_status text, p_expires timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_status = 'AVAILABLE' AND p_expires <= now() THEN 'EXPIRED' ELSE p_status END
$$;

CREATE OR REPLACE FUNCTION cm__user_coupon_json(p_id bigint, p_campaign bigint, p_name text,
                                                p_type text, p_value bigint, p_status text,
                                                p_issued timestamptz, p_expires timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"couponId":' || p_campaign || ',"name":' || to_json(p_name)::text
        || ',"discountType":"' || p_type || '","discountValue":' || p_value
        || ',"status":"' || cm__coupon_status(p_status, p_expires)
        || '","issuedAt":"' || cm__ts(p_issued) || '","expiresAt":"' || cm__ts(p_expires) || '"}'
$$;

-- ---------------------------------------------------------------------------
-- Errors

CREATE OR REPLACE FUNCTION cm__coupon_not_found(p_campaign bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_NOT_FOUND',
        DETAIL = format('coupon %s not found', p_campaign);
END
$$;

CREATE OR REPLACE FUNCTION cm__coupon_limit_reached(p_campaign bigint, p_limit int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_LIMIT_REACHED',
        DETAIL = format('coupon %s is limited to %s per user', p_campaign, p_limit);
END
$$;

CREATE OR REPLACE FUNCTION cm__coupon_sold_out(p_campaign bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_SOLD_OUT',
        DETAIL = format('coupon %s is sold out', p_campaign);
END
$$;

-- ---------------------------------------------------------------------------
-- Campaigns

-- Create a campaign (the module checks the actor's role: MANAGER, ADMIN).
-- Every argument is checked here before a CHECK constraint would fire:
--   name 1..100 characters, not blank, no control character;
--   discount type FIXED (value an amount) or RATE (value 1..100 %);
--   max discount: RATE only, > 0, optional; min order amount >= 0, optional (0);
--   total quantity 1..100,000,000; per-user limit 1..100 and <= total;
--   issue window: ends after it starts, and in the future; valid days 1..3650.
-- -> campaign document | INVALID_REQUEST | USER_NOT_FOUND (actor)
CREATE OR REPLACE FUNCTION cm_coupon_create(p_actor bigint, p_name text, p_discount_type text,
                                            p_discount_value bigint, p_max_discount bigint,
                                            p_min_order_amount bigint, p_total_quantity int,
                                            p_per_user_limit int, p_issue_starts_at timestamptz,
                                            p_issue_ends_at timestamptz, p_valid_days int)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    c coupon_campaigns%ROWTYPE;
BEGIN
    IF p_name IS NULL OR char_length(p_name) NOT BETWEEN 1 AND 100 OR p_name !~ '\S'
       OR p_name ~ '[[:cntrl:]]' THEN
        PERFORM cm__invalid('name must be 1 to 100 characters, not blank, without control characters');
    END IF;
    IF p_discount_type IS NULL OR p_discount_type NOT IN ('FIXED', 'RATE') THEN
        PERFORM cm__invalid('discountType must be FIXED or RATE');
    END IF;
    IF p_discount_value IS NULL OR p_discount_value <= 0 OR p_discount_value > 1000000000000 THEN
        PERFORM cm__invalid('discountValue must be a positive amount up to 1000000000000');
    END IF;
    IF p_discount_type = 'RATE' AND p_discount_value > 100 THEN
        PERFORM cm__invalid('discountValue of a RATE coupon is a percentage, 1 to 100');
    END IF;
    IF p_max_discount IS NOT NULL THEN
        IF p_discount_type <> 'RATE' THEN
            PERFORM cm__invalid('maxDiscount applies to RATE coupons only');
        END IF;
        IF p_max_discount <= 0 OR p_max_discount > 1000000000000 THEN
            PERFORM cm__invalid('maxDiscount must be a positive amount up to 1000000000000');
        END IF;
    END IF;
    IF p_min_order_amount < 0 OR p_min_order_amount > 1000000000000 THEN
        PERFORM cm__invalid('minOrderAmount must be between 0 and 1000000000000');
    END IF;
    IF p_total_quantity IS NULL OR p_total_quantity NOT BETWEEN 1 AND 100000000 THEN
        PERFORM cm__invalid('totalQuantity must be between 1 and 100000000');
    END IF;
    IF p_per_user_limit IS NULL OR p_per_user_limit NOT BETWEEN 1 AND 100 THEN
        PERFORM cm__invalid('perUserLimit must be between 1 and 100');
    END IF;
    IF p_per_user_limit > p_total_quantity THEN
        PERFORM cm__invalid('perUserLimit must not exceed totalQuantity');
    END IF;
    IF p_issue_starts_at IS NULL OR p_issue_ends_at IS NULL THEN
        PERFORM cm__invalid('issueStartsAt and issueEndsAt are required');
    END IF;
    IF p_issue_ends_at <= p_issue_starts_at THEN
        PERFORM cm__invalid('issueEndsAt must be after issueStartsAt');
    END IF;
    IF p_issue_ends_at <= now() THEN
        PERFORM cm__invalid('issueEndsAt must be in the future');
    END IF;
    IF p_valid_days IS NULL OR p_valid_days NOT BETWEEN 1 AND 3650 THEN
        PERFORM cm__invalid('validDays must be between 1 and 3650');
    END IF;

    PERFORM FROM users u WHERE u.id = p_actor AND u.status = 'ACTIVE';
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_actor);
    END IF;

    INSERT INTO coupon_campaigns (name, discount_type, discount_value, max_discount,
                                  min_order_amount, total_quantity, per_user_limit,
                                  issue_starts_at, issue_ends_at, valid_days, created_by)
    VALUES (p_name, p_discount_type, p_discount_value, p_max_discount,
            coalesce(p_min_order_amount, 0), p_total_quantity, p_per_user_limit,
            p_issue_starts_at, p_issue_ends_at, p_valid_days, p_actor)
    RETURNING * INTO c;

    RETURN cm__coupon_json(c.id, c.name, c.discount_type, c.discount_value, c.max_discount,
                           c.min_order_amount, c.total_quantity, c.issued_quantity,
                           c.per_user_limit, c.issue_starts_at, c.issue_ends_at,
                           c.valid_days, c.created_at);
END
$$;

-- -> campaign document (whether issuable or not) | COUPON_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_coupon_get(p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT cm__coupon_json(c.id, c.name, c.discount_type, c.discount_value, c.max_discount,
                           c.min_order_amount, c.total_quantity, c.issued_quantity,
                           c.per_user_limit, c.issue_starts_at, c.issue_ends_at,
                           c.valid_days, c.created_at)
      INTO v_doc
      FROM coupon_campaigns c
     WHERE c.id = p_id;
    IF v_doc IS NULL THEN
        PERFORM cm__coupon_not_found(p_id);
    END IF;
    RETURN v_doc;
END
$$;

-- The issuable campaigns: now inside the issue window and remaining > 0,
-- ordered by id.  -> {"items":[campaign document...]}
-- Campaigns are few (a sequential scan over them); an index on
-- issue_ends_at would serve many ended ones.
CREATE OR REPLACE FUNCTION cm_coupon_list() RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"items":' || coalesce('[' || string_agg(
               cm__coupon_json(c.id, c.name, c.discount_type, c.discount_value, c.max_discount,
                               c.min_order_amount, c.total_quantity, c.issued_quantity,
                               c.per_user_limit, c.issue_starts_at, c.issue_ends_at,
                               c.valid_days, c.created_at),
               ',' ORDER BY c.id) || ']', '[]') || '}'
      INTO v_doc
      FROM coupon_campaigns c
     WHERE c.issue_starts_at <= now() AND now() < c.issue_ends_at
       AND c.issued_quantity < c.total_quantity;
    RETURN v_doc;
END
$$;

-- How many coupons of the campaign are left: total - issued, the value a
-- Redis gate is warmed with (never trusted alone: cm_coupon_issue decides).
-- -> int | COUPON_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_coupon_remaining(p_campaign bigint) RETURNS int
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_remaining int;
BEGIN
    SELECT c.total_quantity - c.issued_quantity INTO v_remaining
      FROM coupon_campaigns c
     WHERE c.id = p_campaign;
    IF NOT FOUND THEN
        PERFORM cm__coupon_not_found(p_campaign);
    END IF;
    RETURN v_remaining;
END
$$;

-- ---------------------------------------------------------------------------
-- Issuing

-- Issue one coupon of p_campaign to p_user, first come first served (see
-- the head of this file for why it is exact).  Error precedence:
-- INVALID_REQUEST, COUPON_NOT_FOUND, USER_NOT_FOUND (unknown or withdrawn),
-- COUPON_NOT_ISSUABLE (now outside [issueStartsAt, issueEndsAt)),
-- COUPON_LIMIT_REACHED, COUPON_SOLD_OUT.  The checks before the UPDATE read
-- without a lock and only answer early; the UPDATE and the statements
-- after it decide.
-- -> user coupon document (AVAILABLE)
CREATE OR REPLACE FUNCTION cm_coupon_issue(p_user bigint, p_campaign bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    c          coupon_campaigns%ROWTYPE;
    v_issue_no int;
    v_seq      int;
    v_id       bigint;
    v_issued   timestamptz := now();
    v_expires  timestamptz;
BEGIN
    IF p_user IS NULL OR p_campaign IS NULL THEN
        PERFORM cm__invalid('user and coupon are required');
    END IF;

    SELECT * INTO c FROM coupon_campaigns WHERE id = p_campaign;
    IF NOT FOUND THEN
        PERFORM cm__coupon_not_found(p_campaign);
    END IF;
    PERFORM FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE';
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;
    IF v_issued < c.issue_starts_at OR v_issued >= c.issue_ends_at THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_NOT_ISSUABLE',
            DETAIL = format('coupon %s is issued from %s to %s', p_campaign,
                            cm__ts(c.issue_starts_at), cm__ts(c.issue_ends_at));
    END IF;

    -- Early answers without the lock (a repeat caller or a sold-out
    -- campaign does not queue on the campaign row).
    IF (SELECT count(*) FROM user_coupons uc
         WHERE uc.campaign_id = p_campaign AND uc.user_id = p_user) >= c.per_user_limit THEN
        PERFORM cm__coupon_limit_reached(p_campaign, c.per_user_limit);
    END IF;
    IF c.issued_quantity >= c.total_quantity THEN
        PERFORM cm__coupon_sold_out(p_campaign);
    END IF;

    -- The decision.  Takes the campaign row lock until commit.
    UPDATE coupon_campaigns
       SET issued_quantity = issued_quantity + 1
     WHERE id = p_campaign
       AND issued_quantity < total_quantity
    RETURNING issued_quantity INTO v_issue_no;
    IF NOT FOUND THEN
        PERFORM cm__coupon_sold_out(p_campaign);
    END IF;

    -- Under the lock: every coupon of this campaign is committed (or ours).
    SELECT coalesce(max(uc.seq), 0) + 1 INTO v_seq
      FROM user_coupons uc
     WHERE uc.campaign_id = p_campaign AND uc.user_id = p_user;
    IF v_seq > c.per_user_limit THEN
        PERFORM cm__coupon_limit_reached(p_campaign, c.per_user_limit);
    END IF;

    v_expires := v_issued + make_interval(days => c.valid_days);
    INSERT INTO user_coupons (campaign_id, user_id, issue_no, seq, total_quantity,
                              per_user_limit, issued_at, expires_at)
    VALUES (p_campaign, p_user, v_issue_no, v_seq, c.total_quantity,
            c.per_user_limit, v_issued, v_expires)
    ON CONFLICT (campaign_id, user_id, seq) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        PERFORM cm__coupon_limit_reached(p_campaign, c.per_user_limit);
    END IF;

    -- The user's aggregate (95_outbox.sql); last, after every lock.
    PERFORM cm__outbox_emit('user', p_user, 'coupon.issued',
        jsonb_build_object('userCouponId', v_id, 'couponId', p_campaign, 'userId', p_user,
                           'discountType', c.discount_type, 'discountValue', c.discount_value,
                           'issuedAt', cm__ts(v_issued), 'expiresAt', cm__ts(v_expires)));

    RETURN cm__user_coupon_json(v_id, p_campaign, c.name, c.discount_type, c.discount_value,
                                'AVAILABLE', v_issued, v_expires);
END
$$;

-- ---------------------------------------------------------------------------
-- A user's coupons

-- p_status NULL: all; AVAILABLE: not used, not expired (held by a live
-- order included); USED; EXPIRED: not used and past expires_at.  Newest
-- first.  -> {"items":[user coupon document...]} | USER_NOT_FOUND | INVALID_REQUEST
CREATE OR REPLACE FUNCTION cm_user_coupons(p_user bigint, p_status text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('AVAILABLE', 'USED', 'EXPIRED') THEN
        PERFORM cm__invalid('status must be AVAILABLE, USED or EXPIRED');
    END IF;
    PERFORM FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE';
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;

    SELECT '{"items":' || coalesce('[' || string_agg(
               cm__user_coupon_json(uc.id, uc.campaign_id, c.name, c.discount_type,
                                    c.discount_value, uc.status, uc.issued_at, uc.expires_at),
               ',' ORDER BY uc.id DESC) || ']', '[]') || '}'
      INTO v_doc
      FROM user_coupons uc
      JOIN coupon_campaigns c ON c.id = uc.campaign_id
     WHERE uc.user_id = p_user
       AND (p_status IS NULL OR cm__coupon_status(uc.status, uc.expires_at) = p_status);
    RETURN v_doc;
END
$$;

-- ---------------------------------------------------------------------------
-- Coupons on orders (sql/README.md, "Coupons on orders")
--
-- Called by the order and card functions inside their transaction; the
-- coupon's state moves with the order's, under the order's locks:
--   created      cm__coupon_discount locks the coupon row, checks it and
--                prices the discount; cm__coupon_hold sets reserved_by (and
--                USED at once when the order is created PAID);
--   paid         cm__coupon_use: USED;
--   cancelled / expired / payment failed
--                cm__coupon_release: reserved_by cleared, AVAILABLE again
--                (EXPIRED if its time has passed).
-- A held coupon stays good for its order even if it expires before the
-- payment: the price was fixed when the order was created.
-- Lock order: create = products -> coupon -> user; pay = order -> coupon
-- -> user; expire and fail = order -> products -> coupon.  Issuing only
-- locks the campaign row, which the order path never locks.

-- The discount of user coupon p_coupon of p_user on an order of p_total,
-- the coupon row locked (FOR NO KEY UPDATE) until the order commits: of two
-- orders with one coupon, the second waits, then sees reserved_by.
--   FIXED: min(value, total);  RATE: floor(total * value / 100), capped
--   by max_discount.
-- -> bigint | COUPON_NOT_FOUND (no such coupon, or another user's) |
--    COUPON_NOT_AVAILABLE (used, expired, or held by a live order) |
--    COUPON_NOT_APPLICABLE (total under the campaign's minOrderAmount)
CREATE OR REPLACE FUNCTION cm__coupon_discount(p_user bigint, p_coupon bigint, p_total bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    c          record;
    v_discount bigint;
BEGIN
    SELECT uc.status, uc.reserved_by, uc.expires_at, k.discount_type, k.discount_value,
           k.max_discount, k.min_order_amount
      INTO c
      FROM user_coupons uc
      JOIN coupon_campaigns k ON k.id = uc.campaign_id
     WHERE uc.id = p_coupon AND uc.user_id = p_user
       FOR NO KEY UPDATE OF uc;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_NOT_FOUND',
            DETAIL = format('user coupon %s not found', p_coupon);
    END IF;
    IF c.status <> 'AVAILABLE' OR c.reserved_by IS NOT NULL OR c.expires_at <= now() THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_NOT_AVAILABLE',
            DETAIL = format('user coupon %s is %s', p_coupon,
                            CASE WHEN c.status = 'USED' THEN 'used'
                                 WHEN c.reserved_by IS NOT NULL THEN 'held by another order'
                                 ELSE 'expired' END);
    END IF;
    IF p_total < c.min_order_amount THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'COUPON_NOT_APPLICABLE',
            DETAIL = format('user coupon %s needs an order of at least %s (this one is %s)',
                            p_coupon, c.min_order_amount, p_total);
    END IF;

    IF c.discount_type = 'FIXED' THEN
        v_discount := least(c.discount_value, p_total);
    ELSE
        -- numeric: total (up to 5 x 10^16) x 100 stays exact
        v_discount := floor(p_total::numeric * c.discount_value / 100)::bigint;
        IF c.max_discount IS NOT NULL THEN
            v_discount := least(v_discount, c.max_discount);
        END IF;
    END IF;
    RETURN v_discount;
END
$$;

-- The order p_order holds the coupon cm__coupon_discount locked; p_paid:
-- the order is PAID already (nothing to pay), so the coupon is USED now.
CREATE OR REPLACE FUNCTION cm__coupon_hold(p_coupon bigint, p_order bigint, p_paid boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_coupons
       SET reserved_by = p_order,
           status = CASE WHEN p_paid THEN 'USED' ELSE status END,
           used_at = CASE WHEN p_paid THEN now() END
     WHERE id = p_coupon;
END
$$;

-- The order p_order became PAID (the caller holds its row): its coupon, if
-- any, is USED.
CREATE OR REPLACE FUNCTION cm__coupon_use(p_order bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_coupons
       SET status = 'USED', used_at = now()
     WHERE reserved_by = p_order AND status = 'AVAILABLE';
END
$$;

-- The orders p_orders ended unpaid (cancelled, expired, payment failed; the
-- caller holds their rows): their coupons are free again.
CREATE OR REPLACE FUNCTION cm__coupon_release(p_orders bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE user_coupons
       SET reserved_by = NULL
     WHERE reserved_by = ANY (p_orders) AND status = 'AVAILABLE';
END
$$;

-- ---------------------------------------------------------------------------
-- The Redis gates to warm (the module's warm job, at start and then every
-- minute, sets the missing ones): every campaign inside its issue window,
-- sold-out ones too (their gate then refuses without reaching Postgres),
-- at most p_limit, by id.  -> rows (id, remaining, per_user_limit)
CREATE OR REPLACE FUNCTION cm_coupon_gates(p_limit int)
RETURNS TABLE (id bigint, remaining int, per_user_limit int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
        SELECT c.id, c.total_quantity - c.issued_quantity, c.per_user_limit
          FROM coupon_campaigns c
         WHERE c.issue_starts_at <= now() AND now() < c.issue_ends_at
         ORDER BY c.id
         LIMIT p_limit;
END
$$;
