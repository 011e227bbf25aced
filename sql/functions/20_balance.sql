-- balance: a user's balance and its charges.  Every movement writes a
-- balance_ledger row with the balance after it, in the statement that
-- moves the money.  Debits for orders are in 30_order.sql (one conditional
-- UPDATE users .. WHERE balance >= amount); a withdrawn account's balance
-- never changes (trigger users_withdrawn_balance, 60_account.sql).
-- Repeatable file: see 00_common.sql.

-- {"userId","balance"}
CREATE OR REPLACE FUNCTION cm__balance_json(p_user bigint, p_balance bigint)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"userId":' || p_user || ',"balance":' || p_balance || '}'
$$;

-- -> {"userId","balance"} | USER_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_balance_get(p_user bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_balance bigint;
BEGIN
    SELECT u.balance INTO v_balance FROM users u WHERE u.id = p_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
            DETAIL = format('user %s not found', p_user);
    END IF;
    RETURN cm__balance_json(p_user, v_balance);
END
$$;

-- Add p_amount (> 0) to the balance unless the result would exceed p_cap.
-- The increment and the cap test are one conditional UPDATE (re-evaluated on
-- the latest row version under concurrency), the ledger row is written by the
-- same statement.
CREATE OR REPLACE FUNCTION cm_balance_charge(p_user bigint, p_amount bigint, p_cap bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    IF p_amount IS NULL OR p_amount <= 0 OR p_cap IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'amount must be a positive integer (and the cap given)';
    END IF;

    WITH u AS (
        UPDATE users
           SET balance = balance + p_amount
         WHERE id = p_user
           AND balance <= p_cap - p_amount
        RETURNING id, balance
    ), l AS (
        INSERT INTO balance_ledger (user_id, kind, amount, balance_after)
        SELECT u.id, 'CHARGE', p_amount, u.balance FROM u
    )
    SELECT u.balance INTO v_balance FROM u;

    IF NOT FOUND THEN
        -- Error path only: tell "no such user" from "over the cap".
        SELECT u.balance INTO v_balance FROM users u WHERE u.id = p_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
                DETAIL = format('user %s not found', p_user);
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'BALANCE_LIMIT_EXCEEDED',
            DETAIL = format('charging %s to balance %s would exceed the limit of %s',
                            p_amount, v_balance, p_cap);
    END IF;
    RETURN cm__balance_json(p_user, v_balance);
END
$$;

-- Error path helper: raise INSUFFICIENT_BALANCE with the current balance.
CREATE OR REPLACE FUNCTION cm__raise_insufficient(p_user bigint, p_needed bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint;
BEGIN
    SELECT u.balance INTO v_balance FROM users u WHERE u.id = p_user;
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INSUFFICIENT_BALANCE',
        DETAIL = format('balance %s is less than the payment amount %s', coalesce(v_balance, 0), p_needed);
END
$$;
