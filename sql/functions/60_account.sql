-- account: signup, login, refresh-token rotation, logout, withdrawal, roles,
-- password rehash and the security audit log.  Tables: the users columns,
-- refresh_tokens and audit_log of 005_identity.sql.  Repeatable file: see
-- 00_common.sql.
--
-- PII never reaches the database in clear: the module encrypts email, phone
-- and name (cm_pii, AES-256-GCM, `v1.<kid>.<nonce>.<ct>`, aad
-- "users.email:<id>" ...) and looks emails up by their blind index
-- (HMAC-SHA256, 64 lowercase hex).  The aad names the row, so a signup takes
-- its id first (cm_user_next_id), encrypts, then calls cm_signup.  Passwords
-- arrive as PHC hash strings; refresh tokens as the hex SHA-256 of the token.
-- audit_log.detail is JSON written only by these functions: ids, roles,
-- reasons, never PII.  cm__pii_ct_ok, the ciphertext check, is part of the
-- users table's CHECK constraint and is defined with it in 005_identity.sql.
--
-- Refresh tokens: a login starts a family whose id is the id of its first
-- token (one INSERT: id = family_id = nextval).  Each refresh turns the
-- presented ACTIVE token into ROTATED and adds an ACTIVE one to the family.
-- Presenting a ROTATED token again is reuse (stolen token): every ACTIVE
-- token of the family becomes REVOKED.  cm_refresh_rotate never raises for
-- a bad token, so that revocation commits.
--
-- Lock order (no cycle, so no deadlock):
--   user row -> family's first token row -> the presented token row
--   cm_login_finish:    user FOR KEY SHARE (ACTIVE) -> inserts the new family
--   cm_refresh_rotate:  unlocked read of the token (user_id, family_id never
--                       change) -> user FOR KEY SHARE (ACTIVE) -> family root
--                       FOR UPDATE -> presented token FOR UPDATE -> family
--   cm_logout:          unlocked read -> user FOR KEY SHARE -> family root
--                       FOR UPDATE -> family
--   cm_user_withdraw:   user FOR UPDATE -> all the user's tokens -> addresses, cart
--   cm_role_set:        user FOR NO KEY UPDATE
-- FOR KEY SHARE does not block balance updates or orders (FOR NO KEY UPDATE)
-- but does wait for a withdrawal (FOR UPDATE) and then re-checks
-- status = 'ACTIVE' on the new row version: a login or refresh racing a
-- withdrawal either sees it committed (refused) or commits first (its token
-- is then revoked by the withdrawal's next statement).  The family root lock
-- serialises everything done to one family (two rotations of one token,
-- rotation vs logout), so two UPDATEs over a family never lock its rows in
-- opposite orders.

-- ---------------------------------------------------------------------------
-- Internal helpers

-- Append an audit row.  client is cut at 255 characters (it is an address).
CREATE OR REPLACE FUNCTION cm__audit(p_event text, p_user bigint, p_actor bigint, p_client text,
                                     p_detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (event, user_id, actor_id, client, detail)
    VALUES (p_event, p_user, p_actor, left(p_client, 255), p_detail);
END
$$;

-- USER_NOT_FOUND for user p_user.
CREATE OR REPLACE FUNCTION cm__user_not_found(p_user bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
        DETAIL = format('user %s not found', p_user);
END
$$;

-- {"ok":true,"userId","role"} (login / refresh); role is CHECK-constrained.
CREATE OR REPLACE FUNCTION cm__session_json(p_user bigint, p_role text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"ok":true,"userId":' || p_user || ',"role":"' || p_role || '"}'
$$;

-- ---------------------------------------------------------------------------
-- Signup

-- The id for the next signup (needed before cm_signup: it is in the aad).
CREATE OR REPLACE FUNCTION cm_user_next_id() RETURNS bigint
LANGUAGE sql AS $$
    SELECT nextval('users_signup_id_seq')
$$;

-- A new CONSUMER with id p_id (from cm_user_next_id).  users.name is ''
-- (the name is in name_ct).  The email is taken when another account has the
-- same blind index: the unique constraint decides, so concurrent signups of
-- one email give one account and EMAIL_TAKEN to the others.
-- -> {"id","role","createdAt"} | EMAIL_TAKEN | INVALID_REQUEST
CREATE OR REPLACE FUNCTION cm_signup(p_id bigint, p_email_idx text, p_email_ct text, p_phone_ct text,
                                     p_name_ct text, p_hash text, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_created    timestamptz;
    v_constraint text;
BEGIN
    IF p_id IS NULL OR p_id < 1 THEN
        PERFORM cm__invalid('user id must be positive');
    END IF;
    IF (p_email_idx ~ '^[0-9a-f]{64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('email index must be 64 lowercase hex digits');
    END IF;
    IF cm__pii_ct_ok(p_email_ct) IS NOT TRUE OR cm__pii_ct_ok(p_name_ct) IS NOT TRUE
       OR (p_phone_ct IS NOT NULL AND cm__pii_ct_ok(p_phone_ct) IS NOT TRUE) THEN
        PERFORM cm__invalid('email, name and phone must be cm_pii ciphertexts (phone may be null)');
    END IF;
    IF (p_hash ~ '^\$[a-z0-9-]+\$' AND length(p_hash) <= 1024) IS NOT TRUE THEN
        PERFORM cm__invalid('password hash must be a PHC string');
    END IF;

    BEGIN
        INSERT INTO users (id, name, email_idx, email_ct, phone_ct, name_ct, password_hash)
        VALUES (p_id, '', p_email_idx, p_email_ct, p_phone_ct, p_name_ct, p_hash)
        RETURNING created_at INTO v_created;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
        IF v_constraint = 'users_email_idx_key' THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'EMAIL_TAKEN',
                DETAIL = 'an account with this email already exists';
        END IF;
        RAISE;   -- users_pkey: the caller reused an id (a bug, not a business error)
    END;

    PERFORM cm__audit('SIGNUP', p_id, p_id, p_client, NULL);
    -- No PII in events: the id, the role and the time only.
    PERFORM cm__outbox_emit('user', p_id, 'user.signed_up',
        jsonb_build_object('userId', p_id, 'role', 'CONSUMER', 'createdAt', cm__ts(v_created)));
    RETURN '{"id":' || p_id || ',"role":"CONSUMER","createdAt":"' || cm__ts(v_created) || '"}';
END
$$;

-- ---------------------------------------------------------------------------
-- Login

-- The account to check a password against: {"userId","hash","role"}, or
-- NULL for an unknown or withdrawn email (the caller then still hashes, to
-- answer in the same time, and calls cm_login_finish(NULL, false, ..)).
CREATE OR REPLACE FUNCTION cm_login_lookup(p_email_idx text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"userId":' || u.id || ',"hash":' || to_json(u.password_hash)::text
           || ',"role":"' || u.role || '"}'
      INTO v_doc
      FROM users u
     WHERE u.email_idx = p_email_idx
       AND u.status = 'ACTIVE'
       AND u.password_hash IS NOT NULL;
    RETURN v_doc;
END
$$;

-- The outcome of a password check.  p_ok: a new refresh-token family with
-- the token hashed p_refresh_hash, valid p_ttl seconds, audit LOGIN_OK
-- -> {"ok":true,"userId","role"}.  Otherwise (or when the user is no longer
-- ACTIVE) audit LOGIN_FAILED with detail {"reason":"unknown_email" |
-- "bad_password" | "not_active"} -> {"ok":false}.  p_user NULL = unknown email.
CREATE OR REPLACE FUNCTION cm_login_finish(p_user bigint, p_ok boolean, p_client text,
                                           p_refresh_hash text, p_ttl int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
    v_id   bigint;
BEGIN
    IF p_user IS NULL THEN
        PERFORM cm__audit('LOGIN_FAILED', NULL, NULL, p_client, '{"reason":"unknown_email"}');
        RETURN '{"ok":false}';
    END IF;
    IF p_ok IS NOT TRUE THEN
        PERFORM cm__audit('LOGIN_FAILED', p_user, NULL, p_client, '{"reason":"bad_password"}');
        RETURN '{"ok":false}';
    END IF;
    IF (p_refresh_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE OR p_ttl IS NULL OR p_ttl < 1 THEN
        PERFORM cm__invalid('refresh hash must be 64 lowercase hex digits and ttl positive');
    END IF;

    -- Held to commit: a withdrawal (FOR UPDATE) waits, or is seen.
    SELECT u.role INTO v_role
      FROM users u
     WHERE u.id = p_user AND u.status = 'ACTIVE'
       FOR KEY SHARE;
    IF NOT FOUND THEN
        PERFORM cm__audit('LOGIN_FAILED', p_user, NULL, p_client, '{"reason":"not_active"}');
        RETURN '{"ok":false}';
    END IF;

    v_id := nextval(pg_get_serial_sequence('refresh_tokens', 'id'));
    INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, status, expires_at)
    VALUES (v_id, v_id, p_user, p_refresh_hash, 'ACTIVE', now() + make_interval(secs => p_ttl));

    PERFORM cm__audit('LOGIN_OK', p_user, p_user, p_client, '{"familyId":' || v_id || '}');
    RETURN cm__session_json(p_user, v_role);
END
$$;

-- A password hash made with other parameters than the current ones
-- (commerce_password_iterations raised) is replaced at the next successful
-- login, by the module, with a hash of the same password at the current
-- cost.  Only if it is still the hash the login checked: a password changed
-- meanwhile, or a withdrawal, is never overwritten.
-- -> {"rehashed":bool}
CREATE OR REPLACE FUNCTION cm_password_rehash(p_user bigint, p_old_hash text, p_new_hash text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_new_hash IS NULL OR p_new_hash !~ '^\$[a-z0-9-]+\$' OR length(p_new_hash) > 1024 THEN
        PERFORM cm__invalid('the new hash must be a PHC string');
    END IF;
    UPDATE users
       SET password_hash = p_new_hash
     WHERE id = p_user AND status = 'ACTIVE' AND password_hash = p_old_hash;
    RETURN '{"rehashed":' || FOUND || '}';
END
$$;

-- ---------------------------------------------------------------------------
-- Refresh tokens

-- Exchange the token hashed p_old_hash for the one hashed p_new_hash.
-- -> {"ok":true,"userId","role"} | {"ok":false,"reason":"invalid"|"expired"|"reused"}
--   invalid: unknown, REVOKED, or its user withdrawn;
--   expired: ACTIVE but past expires_at (left as it is);
--   reused:  ROTATED: every ACTIVE token of the family REVOKED, audit
--            REFRESH_REUSE.
-- Never raises for a bad token (the revocation must commit); raises only
-- INVALID_REQUEST for a malformed p_new_hash / p_ttl, before any write.
CREATE OR REPLACE FUNCTION cm_refresh_rotate(p_old_hash text, p_new_hash text, p_ttl int,
                                             p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id      bigint;
    v_family  bigint;
    v_user    bigint;
    v_role    text;
    v_status  text;
    v_expires timestamptz;
    v_revoked int;
BEGIN
    IF (p_new_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE OR p_ttl IS NULL OR p_ttl < 1 THEN
        PERFORM cm__invalid('new refresh hash must be 64 lowercase hex digits and ttl positive');
    END IF;
    IF (p_old_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE OR p_old_hash = p_new_hash THEN
        RETURN '{"ok":false,"reason":"invalid"}';
    END IF;

    -- Unlocked: id, family_id and user_id never change.
    SELECT t.id, t.family_id, t.user_id INTO v_id, v_family, v_user
      FROM refresh_tokens t
     WHERE t.token_hash = p_old_hash;
    IF NOT FOUND THEN
        RETURN '{"ok":false,"reason":"invalid"}';
    END IF;

    SELECT u.role INTO v_role
      FROM users u
     WHERE u.id = v_user AND u.status = 'ACTIVE'
       FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN '{"ok":false,"reason":"invalid"}';
    END IF;

    -- The family lock, then the presented token (the same row for the first
    -- token of a family).  A concurrent rotation of this token waits here and
    -- then reads ROTATED: reuse.
    PERFORM FROM refresh_tokens t WHERE t.id = v_family FOR UPDATE;
    SELECT t.status, t.expires_at INTO v_status, v_expires
      FROM refresh_tokens t
     WHERE t.id = v_id
       FOR UPDATE;

    IF v_status = 'ROTATED' THEN
        -- New statement, new snapshot: sees tokens committed meanwhile.
        UPDATE refresh_tokens
           SET status = 'REVOKED'
         WHERE family_id = v_family AND status = 'ACTIVE';
        GET DIAGNOSTICS v_revoked = ROW_COUNT;
        PERFORM cm__audit('REFRESH_REUSE', v_user, NULL, p_client,
                          '{"familyId":' || v_family || ',"revoked":' || v_revoked || '}');
        RETURN '{"ok":false,"reason":"reused"}';
    END IF;
    IF v_status <> 'ACTIVE' THEN
        RETURN '{"ok":false,"reason":"invalid"}';
    END IF;
    IF v_expires <= now() THEN
        RETURN '{"ok":false,"reason":"expired"}';
    END IF;

    UPDATE refresh_tokens
       SET status = 'ROTATED', rotated_at = now()
     WHERE id = v_id;
    INSERT INTO refresh_tokens (family_id, user_id, token_hash, status, expires_at)
    VALUES (v_family, v_user, p_new_hash, 'ACTIVE', now() + make_interval(secs => p_ttl));

    PERFORM cm__audit('REFRESH', v_user, v_user, p_client, '{"familyId":' || v_family || '}');
    RETURN cm__session_json(v_user, v_role);
END
$$;

-- Log out the session of the token hashed p_hash: every ACTIVE token of its
-- family REVOKED, audit LOGOUT {"familyId","revoked"}.
-- -> {"ok":true} when the token is known (even if already dead), else
--    {"ok":false} (nothing written, no audit row).
CREATE OR REPLACE FUNCTION cm_logout(p_hash text, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_family  bigint;
    v_user    bigint;
    v_revoked int;
BEGIN
    IF (p_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE THEN
        RETURN '{"ok":false}';
    END IF;
    SELECT t.family_id, t.user_id INTO v_family, v_user
      FROM refresh_tokens t
     WHERE t.token_hash = p_hash;
    IF NOT FOUND THEN
        RETURN '{"ok":false}';
    END IF;

    PERFORM FROM users u WHERE u.id = v_user FOR KEY SHARE;
    PERFORM FROM refresh_tokens t WHERE t.id = v_family FOR UPDATE;
    UPDATE refresh_tokens
       SET status = 'REVOKED'
     WHERE family_id = v_family AND status = 'ACTIVE';
    GET DIAGNOSTICS v_revoked = ROW_COUNT;

    PERFORM cm__audit('LOGOUT', v_user, v_user, p_client,
                      '{"familyId":' || v_family || ',"revoked":' || v_revoked || '}');
    RETURN '{"ok":true}';
END
$$;

-- ---------------------------------------------------------------------------
-- Accounts

-- -> {"id","role","emailCt","phoneCt","nameCt","name","createdAt"}; the *Ct
-- are ciphertexts for the module to decrypt (null for demo users, whose
-- name is the plaintext "name"; "" for signed-up users).  Withdrawn:
-- USER_NOT_FOUND.
CREATE OR REPLACE FUNCTION cm_user_get(p_user bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"id":' || u.id || ',"role":"' || u.role || '"'
           || ',"emailCt":' || cm__json_or_null(u.email_ct)
           || ',"phoneCt":' || cm__json_or_null(u.phone_ct)
           || ',"nameCt":' || cm__json_or_null(u.name_ct)
           || ',"name":' || to_json(u.name)::text
           || ',"createdAt":"' || cm__ts(u.created_at) || '"}'
      INTO v_doc
      FROM users u
     WHERE u.id = p_user AND u.status = 'ACTIVE';
    IF v_doc IS NULL THEN
        PERFORM cm__user_not_found(p_user);
    END IF;
    RETURN v_doc;
END
$$;

-- Withdrawal: the account's PII, email index and password hash erased,
-- name '', status WITHDRAWN (the email may sign up again); every refresh
-- token REVOKED; audit WITHDRAW {"revokedTokens"}.  Orders, payments,
-- ledger and balance stay (bookkeeping; they hold no PII).
-- -> {"ok":true} | USER_NOT_FOUND (unknown or already withdrawn)
CREATE OR REPLACE FUNCTION cm_user_withdraw(p_user bigint, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_revoked int;
BEGIN
    -- FOR UPDATE: logins / refreshes of this user (FOR KEY SHARE) wait.
    PERFORM FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE' FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;

    UPDATE users
       SET email_ct = NULL, email_idx = NULL, phone_ct = NULL, name_ct = NULL,
           password_hash = NULL, name = '', status = 'WITHDRAWN', withdrawn_at = now()
     WHERE id = p_user;

    UPDATE refresh_tokens
       SET status = 'REVOKED'
     WHERE user_id = p_user AND status <> 'REVOKED';
    GET DIAGNOSTICS v_revoked = ROW_COUNT;

    -- the address book is personal data; the cart goes with the account
    -- (18_cart.sql: their writers lock the user row after this one)
    DELETE FROM user_addresses WHERE user_id = p_user;
    DELETE FROM order_addresses WHERE user_id = p_user;   -- the orders keep their amounts
    DELETE FROM cart_items WHERE user_id = p_user;
    DELETE FROM carts WHERE user_id = p_user;

    PERFORM cm__audit('WITHDRAW', p_user, p_user, p_client, '{"revokedTokens":' || v_revoked || '}');
    PERFORM cm__outbox_emit('user', p_user, 'user.withdrawn',
        jsonb_build_object('userId', p_user, 'withdrawnAt', cm__ts(now())));
    RETURN '{"ok":true}';
END
$$;

-- Admin p_admin sets p_user's role (CONSUMER|SELLER|MANAGER|ADMIN); audit
-- ROLE_CHANGE {"from","to"} (also when unchanged).  The new role reaches
-- the user's access tokens at the next refresh.
-- -> {"id","role"} | USER_NOT_FOUND (unknown or withdrawn) | INVALID_REQUEST
CREATE OR REPLACE FUNCTION cm_role_set(p_admin bigint, p_user bigint, p_role text, p_client text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_from text;
BEGIN
    IF p_role IS NULL OR p_role NOT IN ('CONSUMER', 'SELLER', 'MANAGER', 'ADMIN') THEN
        PERFORM cm__invalid('role must be one of CONSUMER, SELLER, MANAGER, ADMIN');
    END IF;

    SELECT u.role INTO v_from
      FROM users u
     WHERE u.id = p_user AND u.status = 'ACTIVE'
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;

    IF v_from <> p_role THEN
        UPDATE users SET role = p_role WHERE id = p_user;
    END IF;

    PERFORM cm__audit('ROLE_CHANGE', p_user, p_admin, p_client,
                      '{"from":"' || v_from || '","to":"' || p_role || '"}');
    RETURN '{"id":' || p_user || ',"role":"' || p_role || '"}';
END
$$;

-- ---------------------------------------------------------------------------
-- A withdrawn account moves no money and places no order
--
-- Withdrawal (cm_user_withdraw) revokes the refresh tokens at once, but an
-- access token lives out its few minutes; the database, not the token,
-- decides: a balance change or a new order for a WITHDRAWN user is refused
-- as USER_NOT_FOUND, whatever function tries it.  The triggers are bound
-- here, beside their functions (CREATE OR REPLACE: idempotent).

CREATE OR REPLACE FUNCTION cm__withdrawn_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
        DETAIL = format('user %s not found', OLD.id);
END
$$;

CREATE OR REPLACE TRIGGER users_withdrawn_balance
    BEFORE UPDATE OF balance, points ON users
    FOR EACH ROW WHEN (OLD.status = 'WITHDRAWN')
    EXECUTE FUNCTION cm__withdrawn_balance();

CREATE OR REPLACE FUNCTION cm__order_user_active() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM users u WHERE u.id = NEW.user_id AND u.status = 'WITHDRAWN') THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
            DETAIL = format('user %s not found', NEW.user_id);
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER orders_user_active
    BEFORE INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION cm__order_user_active();

-- ---------------------------------------------------------------------------
-- Audit

-- One audit_log row as JSON ("detail" is stored JSON, embedded as it is).
CREATE OR REPLACE FUNCTION cm__audit_item_json(p_id bigint, p_event text, p_user bigint, p_actor bigint,
                                               p_client text, p_detail text, p_created timestamptz)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"event":"' || p_event || '"'
        || ',"userId":' || coalesce(p_user::text, 'null')
        || ',"actorId":' || coalesce(p_actor::text, 'null')
        || ',"client":' || cm__json_or_null(p_client)
        || ',"detail":' || coalesce(p_detail, 'null')
        || ',"createdAt":"' || cm__ts(p_created) || '"}'
$$;

-- The newest p_limit (1..1000) events, of user p_user or of everyone (NULL).
-- "detail" is the stored JSON object (or null), embedded as JSON.
-- -> {"items":[{"id","event","userId","actorId","client","detail","createdAt"}]}
-- Two queries, so each has its own plan (audit_log_user_id_idx backward /
-- audit_log_pkey backward).
CREATE OR REPLACE FUNCTION cm_audit_list(p_user bigint, p_limit int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 1000 THEN
        PERFORM cm__invalid('limit must be between 1 and 1000');
    END IF;

    IF p_user IS NULL THEN
        SELECT string_agg(cm__audit_item_json(s.id, s.event, s.user_id, s.actor_id, s.client,
                                              s.detail, s.created_at), ',' ORDER BY s.id DESC)
          INTO v_items
          FROM (SELECT a.* FROM audit_log a ORDER BY a.id DESC LIMIT p_limit) s;
    ELSE
        SELECT string_agg(cm__audit_item_json(s.id, s.event, s.user_id, s.actor_id, s.client,
                                              s.detail, s.created_at), ',' ORDER BY s.id DESC)
          INTO v_items
          FROM (SELECT a.* FROM audit_log a
                 WHERE a.user_id = p_user
                 ORDER BY a.id DESC LIMIT p_limit) s;
    END IF;
    RETURN '{"items":[' || coalesce(v_items, '') || ']}';
END
$$;
