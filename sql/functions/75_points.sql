-- points: a user's points and their ledger (021_points.sql).  Every
-- movement is one conditional UPDATE of users.points that writes its
-- ledger row in the same statement (as the balance's charge); the CHECK
-- (points >= 0) is the last word on a spend.  A withdrawn account's
-- points never change (trigger users_withdrawn_balance, 60_account.sql).
-- Repeatable file: see 00_common.sql.

-- One ledger row as JSON.
CREATE OR REPLACE FUNCTION cm__points_entry_json(l points_ledger) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || l.id || ',"kind":"' || l.kind || '","amount":' || l.amount
        || ',"pointsAfter":' || l.points_after
        || ',"orderId":' || coalesce(l.order_id::text, 'null')
        || ',"actorId":' || coalesce(l.actor_id::text, 'null')
        || ',"reason":' || cm__json_or_null(l.reason)
        || ',"createdAt":"' || cm__ts(l.created_at) || '"}'
$$;

-- -> {"userId","points","items":[the last p_limit movements, newest first]}
-- | USER_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_points_get(p_user bigint, p_limit int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_points bigint;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 200 THEN
        PERFORM cm__invalid('limit must be between 1 and 200');
    END IF;
    SELECT u.points INTO v_points FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE';
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;
    RETURN '{"userId":' || p_user || ',"points":' || v_points || ',"items":['
        || coalesce((SELECT string_agg(cm__points_entry_json(l), ',' ORDER BY l.id DESC)
                       FROM (SELECT * FROM points_ledger x WHERE x.user_id = p_user
                              ORDER BY x.id DESC LIMIT p_limit) l), '')
        || ']}';
END
$$;

-- An ADMIN gives (p_amount > 0, GRANT) or takes back (p_amount < 0,
-- REVOKE) points, with a reason; audited POINTS_GRANT.  More taken than
-- the user has: INSUFFICIENT_POINTS, nothing changed.
-- -> {"userId","points","entry":{ledger row}}
CREATE OR REPLACE FUNCTION cm_points_grant(p_admin bigint, p_user bigint, p_amount bigint,
                                           p_reason text, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_entry points_ledger;
    v_have  bigint;
BEGIN
    IF p_amount IS NULL OR p_amount = 0 OR abs(p_amount) > 100000000 THEN
        PERFORM cm__invalid('amount must be a non-zero integer between -100000000 and 100000000');
    END IF;
    IF p_reason IS NULL OR char_length(p_reason) NOT BETWEEN 1 AND 200 OR btrim(p_reason) = '' THEN
        PERFORM cm__invalid('reason must be 1 to 200 characters');
    END IF;

    WITH u AS (
        UPDATE users
           SET points = points + p_amount
         WHERE id = p_user AND status = 'ACTIVE'
           AND points + p_amount BETWEEN 0 AND 1000000000000
        RETURNING id, points
    )
    INSERT INTO points_ledger (user_id, kind, amount, points_after, actor_id, reason)
    SELECT u.id, CASE WHEN p_amount > 0 THEN 'GRANT' ELSE 'REVOKE' END, p_amount, u.points,
           p_admin, p_reason
      FROM u
    RETURNING * INTO v_entry;

    IF v_entry.id IS NULL THEN
        -- Error path only: no such user, or not that many points.
        SELECT u.points INTO v_have FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE';
        IF NOT FOUND THEN
            PERFORM cm__user_not_found(p_user);
        END IF;
        IF p_amount > 0 THEN
            PERFORM cm__invalid(format('points %s plus %s would exceed 1000000000000',
                                       v_have, p_amount));
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INSUFFICIENT_POINTS',
            DETAIL = format('user %s has %s points, less than %s', p_user, v_have, -p_amount);
    END IF;

    PERFORM cm__audit('POINTS_GRANT', p_user, p_admin, p_client,
                      jsonb_build_object('amount', p_amount, 'pointsAfter', v_entry.points_after,
                                         'entryId', v_entry.id)::text);
    RETURN '{"userId":' || p_user || ',"points":' || v_entry.points_after
        || ',"entry":' || cm__points_entry_json(v_entry) || '}';
END
$$;
