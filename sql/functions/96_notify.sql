-- notify: what the notification sinks of the outbox relay
-- (src/domain/event/ngx_commerce_event_notify.c) read about the recipient
-- of an event and its order.  Repeatable file: see 00_common.sql.  No table:
-- a notification is an outbox delivery like any other (012_outbox.sql).
--
-- The recipient's phone and email leave the database encrypted (cm_pii
-- ciphertexts, aad "users.phone:<id>", "users.email:<id>"): the module
-- decrypts them in memory, only to send, and never writes them anywhere.

-- The recipient of a notification and the variables of its templates.
-- p_order 0: no order.  Amounts are formatted for Korean text (12,300).
-- -> {"userId","status":"ACTIVE"|"WITHDRAWN"|"MISSING","phoneCt","emailCt",
--     "nameCt","name","vars":{"orderId","productName","itemCount",
--     "totalAmount","paymentAmount","orderStatus"}}
CREATE OR REPLACE FUNCTION cm_notify_recipient(p_user bigint, p_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    u      record;
    o      record;
    v_vars jsonb := '{}'::jsonb;
BEGIN
    SELECT x.id, x.status, x.phone_ct, x.email_ct, x.name_ct, x.name
      INTO u FROM users x WHERE x.id = p_user;
    IF NOT FOUND THEN
        RETURN json_build_object('userId', p_user, 'status', 'MISSING')::text;
    END IF;
    IF u.status <> 'ACTIVE' THEN
        -- nothing personal is kept of a withdrawn user, and nothing is sent
        RETURN json_build_object('userId', p_user, 'status', u.status)::text;
    END IF;

    IF p_order > 0 THEN
        SELECT y.id, y.status, y.total_amount, y.payment_amount,
               (SELECT i.name FROM order_items i WHERE i.order_id = y.id
                 ORDER BY i.product_id, i.variant_id LIMIT 1) AS first_name,
               (SELECT count(*) FROM order_items i WHERE i.order_id = y.id) AS n
          INTO o FROM orders y WHERE y.id = p_order AND y.user_id = p_user;
        IF FOUND THEN
            v_vars := jsonb_build_object(
                'orderId', o.id::text,
                'productName', coalesce(o.first_name, '')
                    || CASE WHEN o.n > 1 THEN ' 외 ' || (o.n - 1) || '건' ELSE '' END,
                'itemCount', o.n::text,
                'totalAmount', to_char(o.total_amount, 'FM999,999,999,999,990'),
                'paymentAmount', to_char(o.payment_amount, 'FM999,999,999,999,990'),
                'orderStatus', o.status);
        END IF;
    END IF;

    RETURN json_build_object('userId', u.id, 'status', u.status, 'phoneCt', u.phone_ct,
                             'emailCt', u.email_ct, 'nameCt', u.name_ct, 'name', u.name,
                             'vars', v_vars)::text;
END
$$;
