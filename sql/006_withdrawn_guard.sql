-- 006: a withdrawn account moves no money and places no order.
--
-- Withdrawal (cm_user_withdraw) revokes the refresh tokens at once, but an
-- access token lives out its few minutes; the database, not the token,
-- decides: a balance change or a new order for a WITHDRAWN user is refused
-- as USER_NOT_FOUND, whatever function tries it.

CREATE OR REPLACE FUNCTION cm__withdrawn_balance() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'USER_NOT_FOUND',
        DETAIL = format('user %s not found', OLD.id);
END
$$;

CREATE TRIGGER users_withdrawn_balance
    BEFORE UPDATE OF balance ON users
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

CREATE TRIGGER orders_user_active
    BEFORE INSERT ON orders
    FOR EACH ROW EXECUTE FUNCTION cm__order_user_active();
