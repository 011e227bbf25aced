-- ---------------------------------------------------------------------------
-- Retention (seed 003: orders 5 years, logs 90 days).
--
-- Logs are purged by age in bounded batches by the retention job of every
-- instance (src/domain/retention/): SKIP LOCKED, so instances share the work
-- and never wait on each other.  Orders, their items, payments and the
-- balance ledger are never deleted before they are 5 years old: a trigger
-- refuses it, whoever deletes (a function, a job, an operator in psql).

-- Delete up to p_limit rows of p_kind older than p_age_s seconds (at least
-- a day).  -> number deleted (int).
CREATE OR REPLACE FUNCTION cm_retention_purge(p_kind text, p_age_s bigint, p_limit int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_before timestamptz;
    v_limit  int := least(greatest(coalesce(p_limit, 1000), 1), 100000);
    v_n      int;
BEGIN
    IF p_age_s IS NULL OR p_age_s < 86400 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('retention of %s: an age under a day (%s s)', p_kind, p_age_s);
    END IF;

    v_before := now() - make_interval(secs => p_age_s);

    -- the ctids of the rows the sub-select locked: a TID scan, whatever the
    -- planner guesses; no ORDER BY (any old row may go first), so the BRIN
    -- index answers "nothing old" without reading the table
    CASE p_kind
    WHEN 'payment_log' THEN
        DELETE FROM payment_interface_request_log l
         WHERE l.ctid = ANY (ARRAY(SELECT x.ctid FROM payment_interface_request_log x
                                    WHERE x.created_at < v_before
                                    LIMIT v_limit FOR UPDATE SKIP LOCKED));
    WHEN 'audit_log' THEN
        DELETE FROM audit_log l
         WHERE l.ctid = ANY (ARRAY(SELECT x.ctid FROM audit_log x
                                    WHERE x.created_at < v_before
                                    LIMIT v_limit FOR UPDATE SKIP LOCKED));
    WHEN 'outbox' THEN
        -- events every sink has: a pending or dead delivery keeps its event
        -- (the DLQ is kept until replayed); deliveries go by the cascade
        DELETE FROM outbox o
         WHERE o.ctid = ANY (ARRAY(SELECT x.ctid FROM outbox x
                                    WHERE x.created_at < v_before
                                      AND NOT EXISTS (SELECT 1 FROM outbox_delivery d
                                                       WHERE d.seq = x.seq
                                                         AND d.state <> 'DELIVERED')
                                    LIMIT v_limit FOR UPDATE SKIP LOCKED));
    ELSE
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('retention: unknown kind %s', p_kind);
    END CASE;

    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- Orders and what proves them are kept 5 years (an order item and a
-- payment by their order's age, a ledger entry by its own).
CREATE OR REPLACE FUNCTION cm__retention_keep_5y() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz;
BEGIN
    IF TG_TABLE_NAME = 'order_items' THEN
        SELECT o.created_at INTO v_at FROM orders o WHERE o.id = OLD.order_id;
    ELSE
        v_at := OLD.created_at;
    END IF;

    IF v_at IS NOT NULL AND v_at > now() - interval '5 years' THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation',
            MESSAGE = format('%s: a row from %s is kept 5 years (retention)', TG_TABLE_NAME, v_at);
    END IF;

    RETURN OLD;
END
$$;

CREATE OR REPLACE TRIGGER orders_keep_5y BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION cm__retention_keep_5y();
CREATE OR REPLACE TRIGGER order_items_keep_5y BEFORE DELETE ON order_items
    FOR EACH ROW EXECUTE FUNCTION cm__retention_keep_5y();
CREATE OR REPLACE TRIGGER payments_keep_5y BEFORE DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION cm__retention_keep_5y();
CREATE OR REPLACE TRIGGER balance_ledger_keep_5y BEFORE DELETE ON balance_ledger
    FOR EACH ROW EXECUTE FUNCTION cm__retention_keep_5y();
