-- 005_identity: the tables of accounts (signup, login, refresh-token
-- rotation, logout, withdrawal), roles and the security audit log.  The
-- functions that use them are in functions/60_account.sql, which also
-- states how PII, refresh-token families and the lock order work.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
--
-- PII never reaches the database in clear: the *_ct columns hold cm_pii
-- ciphertexts (`v1.<kid>.<nonce>.<ct>`), email_idx the blind index of the
-- email (HMAC-SHA256, 64 lowercase hex), password_hash a PHC string.

-- ---------------------------------------------------------------------------
-- Schema

-- A cm_pii ciphertext text: v1.<kid 1..65535>.<12-byte nonce>.<ct + 16-byte tag>,
-- both unpadded base64url.  Keeps plaintext out of the *_ct columns.
-- The only function of a versioned migration: the CHECK constraint
-- users_pii_ct_check below calls it, so it must exist before the
-- constraint, and PostgreSQL does not re-check existing rows when it is
-- replaced.  A change to it is a new migration that replaces it and
-- re-validates the constraint, never an edit in sql/functions/.
CREATE OR REPLACE FUNCTION cm__pii_ct_ok(p_ct text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_ct ~ '^v1\.[1-9][0-9]{0,4}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$'
       AND length(p_ct) <= 8192
$$;

-- New columns are NULL or have a constant default: no table rewrite, and
-- the demo users (1..1000) stay as they were: CONSUMER, ACTIVE, no email.
ALTER TABLE users
    ADD COLUMN email_ct      text,
    ADD COLUMN email_idx     text CONSTRAINT users_email_idx_key UNIQUE,
    ADD COLUMN phone_ct      text,
    ADD COLUMN name_ct       text,
    ADD COLUMN password_hash text,
    ADD COLUMN role          text NOT NULL DEFAULT 'CONSUMER'
        CONSTRAINT users_role_check CHECK (role IN ('CONSUMER', 'SELLER', 'MANAGER', 'ADMIN')),
    ADD COLUMN status        text NOT NULL DEFAULT 'ACTIVE'
        CONSTRAINT users_status_check CHECK (status IN ('ACTIVE', 'WITHDRAWN')),
    ADD COLUMN withdrawn_at  timestamptz,
    ADD CONSTRAINT users_email_idx_check CHECK (email_idx ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT users_pii_ct_check CHECK (cm__pii_ct_ok(email_ct) AND cm__pii_ct_ok(phone_ct)
                                             AND cm__pii_ct_ok(name_ct)),
    ADD CONSTRAINT users_password_hash_check CHECK (password_hash ~ '^\$[a-z0-9-]+\$'
                                                    AND length(password_hash) <= 1024),
    ADD CONSTRAINT users_withdrawn_check CHECK ((status = 'WITHDRAWN') = (withdrawn_at IS NOT NULL)),
    -- a withdrawn account keeps nothing personal and cannot log in
    ADD CONSTRAINT users_withdrawn_erased_check CHECK (status = 'ACTIVE'
        OR (email_ct IS NULL AND email_idx IS NULL AND phone_ct IS NULL AND name_ct IS NULL
            AND password_hash IS NULL AND name = ''));

-- Ids of signed-up users, above every demo/legacy id (users.id is supplied).
CREATE SEQUENCE users_signup_id_seq START 1000001 OWNED BY users.id;

CREATE TABLE refresh_tokens (
    id          bigserial   PRIMARY KEY,
    family_id   bigint      NOT NULL,
    user_id     bigint      NOT NULL REFERENCES users (id),
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    status      text        NOT NULL CHECK (status IN ('ACTIVE', 'ROTATED', 'REVOKED')),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz,
    CHECK (status <> 'ROTATED' OR rotated_at IS NOT NULL)
) WITH (fillfactor = 80);   -- status changes once or twice: room for HOT

-- Revoke a family (reuse, logout); a user's tokens (withdrawal).
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

-- Security events.  A log: no foreign keys (a row must never be refused and
-- outlives what it points at).  detail is JSON without PII.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    event      text        NOT NULL CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH',
                                                     'REFRESH_REUSE', 'LOGOUT', 'WITHDRAW', 'ROLE_CHANGE')),
    user_id    bigint,
    actor_id   bigint,
    client     text,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A user's events, newest first (cm_audit_list with a user).
CREATE INDEX audit_log_user_id_idx ON audit_log (user_id, id);
