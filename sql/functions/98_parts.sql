-- parts: an order's seller parts (sub-orders) and its shipping address
-- (tables 023_order_parts.sql).  Repeatable file: see 00_common.sql.
--
-- cm__order_parts_split and cm__order_address_make are used by
-- cm__order_place (30_order.sql) in the order's transaction, so every way
-- of creating an order (balance, unpaid, card, checkout from the cart)
-- makes its parts.  cm__order_parts_doc adds them to the order
-- document.  The sellers read their parts with cm_seller_orders and
-- cm_seller_order_get.
--
-- The shipping address given with an order reaches cm__order_address_make
-- through the transaction-local setting commerce.shipping (the module's
-- statement sets it in the same statement, set_config(.., true): it ends
-- with the transaction, and cm__order_address_make clears it once read):
-- {"id","recipientCt","phoneCt","zipCode","address1Ct","address2Ct",
--  "memoCt"}, the texts sealed by the module to order_addresses' columns
-- and the row id it reserved (cm_order_address_next_id).  The order
-- document shows the address sealed, last:
--   ..,"parts":[..],"shippingAddress":{"sealedIn","sealedId","recipientCt",
--   "phoneCt","zipCode","address1Ct","address2Ct","memoCt"}|null}
-- and the module opens it (src/domain/order/ngx_commerce_order_part.c).

-- The id of an order address to be written: its texts are sealed to it.
CREATE OR REPLACE FUNCTION cm_order_address_next_id() RETURNS text
LANGUAGE sql AS $$
    SELECT nextval('order_addresses_id_seq')::text
$$;

-- The parts of an order, one per store of its items (products.store_id;
-- the platform's products, no store, one part with store NULL): item i
-- of the order is p_amounts[i] won of store p_stores[i]; -> each store's
-- total and its share of the order's discount p_discount (the order's
-- total p_total).  The discount is split in proportion to the parts'
-- totals, whole won, by the largest remainder: each part gets
-- floor(discount * total / orderTotal), and the won left go one each to
-- the parts with the largest remainders (ties: the larger total, then the
-- lower store id, the platform's part last).  So the parts sum exactly to
-- the order's amounts and no part's discount passes its total.
-- cm__order_place (30_order.sql) inserts them with the order and its
-- items, in one statement.
DROP FUNCTION IF EXISTS cm__order_parts_make(bigint, bigint);
CREATE OR REPLACE FUNCTION cm__order_parts_split(p_total bigint, p_discount bigint,
                                                 p_stores bigint[], p_amounts bigint[])
RETURNS TABLE (store_id bigint, total bigint, discount bigint)
-- plpgsql: its query planned once per session (a sql function called with
-- sub-selects as arguments is not inlined, and was parsed and planned
-- again at every order: issue 14's perf profile)
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN QUERY
    WITH t AS (
        SELECT u.store_id, sum(u.amount)::bigint AS total
          FROM unnest(p_stores, p_amounts) AS u(store_id, amount)
         GROUP BY u.store_id
    ), s AS (
        SELECT t.*,
               CASE WHEN p_total = 0 THEN 0
                    ELSE floor(p_discount::numeric * t.total / p_total)::bigint END AS share,
               CASE WHEN p_total = 0 THEN 0
                    ELSE p_discount::numeric * t.total % p_total END AS rest
          FROM t
    ), r AS (
        SELECT s.*, row_number() OVER (ORDER BY s.rest DESC, s.total DESC,
                                                s.store_id NULLS LAST) AS rank,
               p_discount - sum(s.share) OVER () AS left_over
          FROM s
    )
    SELECT r.store_id, r.total,
           r.share + CASE WHEN r.rank <= r.left_over THEN 1 ELSE 0 END
      FROM r;
END
$$;

-- The address of order p_order of p_user: the one given (the setting
-- commerce.shipping, cleared once read), else, when the order has a
-- seller's part (p_seller), the buyer's default address book entry, else
-- ADDRESS_REQUIRED (the whole order rolls back).  cm__order_place calls it
-- when either is there.
CREATE OR REPLACE FUNCTION cm__order_address_make(p_order bigint, p_user bigint,
                                                  p_seller boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_ship   text := nullif(current_setting('commerce.shipping', true), '');
    a        jsonb;
BEGIN
    PERFORM set_config('commerce.shipping', '', true);
    IF v_ship IS NOT NULL THEN
        a := v_ship::jsonb;
        INSERT INTO order_addresses (id, order_id, user_id, sealed_in, sealed_id, recipient_ct,
                                     phone_ct, zip_code, address1_ct, address2_ct, memo_ct)
        VALUES ((a->>'id')::bigint, p_order, p_user, 'order_addresses', (a->>'id')::bigint,
                a->>'recipientCt', a->>'phoneCt', a->>'zipCode', a->>'address1Ct',
                a->>'address2Ct', a->>'memoCt');
    ELSIF p_seller THEN
        INSERT INTO order_addresses (order_id, user_id, sealed_in, sealed_id, recipient_ct,
                                     phone_ct, zip_code, address1_ct, address2_ct, memo_ct)
        SELECT p_order, p_user, 'user_addresses', u.id, u.recipient_ct, u.phone_ct, u.zip_code,
               u.address1_ct, u.address2_ct, u.memo_ct
          FROM user_addresses u
         WHERE u.user_id = p_user AND u.is_default;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'ADDRESS_REQUIRED',
                DETAIL = 'an order of a seller''s product needs a shippingAddress'
                         ' (or a default address in the address book)';
        END IF;
    END IF;
END
$$;

-- A part: {"id","orderId","storeId","storeName","status","totalAmount",
-- "discountAmount","paymentAmount","items":[..]} and, once shipped,
-- "shipment":{..} (cm__shipment_json, 71_shipping.sql).  status: the
-- part's own (it follows the order's until it is paid, 027_fulfilment.sql).
CREATE OR REPLACE FUNCTION cm__order_part_json(p_part bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || x.id || ',"orderId":' || x.order_id
        || ',"storeId":' || coalesce(x.store_id::text, 'null')
        || ',"storeName":' || coalesce((SELECT to_json(s.name)::text FROM stores s
                                         WHERE s.id = x.store_id), 'null')
        || ',"status":"' || x.status
        || '","totalAmount":' || x.total_amount || ',"discountAmount":' || x.discount_amount
        || ',"paymentAmount":' || x.payment_amount
        || ',"items":' || coalesce((SELECT '[' || string_agg(cm__order_item_json(i.product_id,
                                               i.variant_id, i.option_values, i.name, i.quantity,
                                               i.unit_price, i.amount),
                                           ',' ORDER BY i.product_id, i.variant_id) || ']'
                                      FROM order_items i WHERE i.part_id = x.id), '[]')
        || coalesce(',"shipment":' || cm__shipment_json(x.id), '')
        || '}'
      FROM order_parts x
     WHERE x.id = p_part
$$;

-- The sealed shipping address of an order, or 'null'.
CREATE OR REPLACE FUNCTION cm__order_address_json(p_order bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT '{"sealedIn":"' || a.sealed_in || '","sealedId":' || a.sealed_id
                         || ',"recipientCt":' || to_json(a.recipient_ct)::text
                         || ',"phoneCt":' || to_json(a.phone_ct)::text
                         || ',"zipCode":"' || a.zip_code
                         || '","address1Ct":' || to_json(a.address1_ct)::text
                         || ',"address2Ct":' || cm__json_or_null(a.address2_ct)
                         || ',"memoCt":' || cm__json_or_null(a.memo_ct) || '}'
                       FROM order_addresses a WHERE a.order_id = p_order), 'null')
$$;

-- The order document p_doc of order p_order with its parts and address
-- added last, when it has a seller's part; else p_doc as it is (orders
-- of the platform's products only read as before parts existed).
CREATE OR REPLACE FUNCTION cm__order_parts_doc(p_doc text, p_order bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_doc IS NULL OR NOT EXISTS (SELECT 1 FROM order_parts x
                                     WHERE x.order_id = p_order AND x.store_id IS NOT NULL) THEN
        RETURN cm__refund_doc(p_doc, p_order);                      -- 72_refund.sql
    END IF;
    -- refunds and returns before the address, which stays last (the reply
    -- opens the last object)
    RETURN left(cm__refund_doc(p_doc, p_order), -1)
        || ',"parts":[' || (SELECT string_agg(cm__order_part_json(x.id), ','
                                              ORDER BY x.store_id NULLS LAST)
                              FROM order_parts x WHERE x.order_id = p_order)
        || '],"shippingAddress":' || cm__order_address_json(p_order) || '}';
END
$$;

-- Parts follow their order's status from the order's old status only: a
-- part that went its own way (PREPARING and on, or cancelled alone)
-- stays where it is (027_fulfilment.sql).
CREATE OR REPLACE FUNCTION cm__order_parts_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE order_parts SET status = NEW.status,
                           cancelled_at = CASE WHEN NEW.status = 'CANCELLED' THEN now() END
     WHERE order_id = NEW.id AND status = OLD.status;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER orders_parts_status
    AFTER UPDATE OF status ON orders
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cm__order_parts_status();

-- The store a seller's list is of (cm__seller_store: the caller's only
-- store when p_store is NULL), its page (0..) and size (1..100) checked
-- first.  Used by the sellers' lists of parts, returns and settlements.
CREATE OR REPLACE FUNCTION cm__seller_list_store(p_actor bigint, p_store bigint, p_page int,
                                                 p_size int) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_page < 0 OR p_size NOT BETWEEN 1 AND 100 THEN
        PERFORM cm__invalid('page must be 0 or more and size 1 to 100');
    END IF;
    RETURN cm__seller_store(p_actor, p_store);
END
$$;

-- A page of a seller's list: {"storeId","items":[p_items],"page","size","total"}.
CREATE OR REPLACE FUNCTION cm__seller_list_doc(p_store bigint, p_items text, p_page int,
                                               p_size int, p_total bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{"storeId":' || p_store || ',"items":[' || coalesce(p_items, '')
        || '],"page":' || p_page || ',"size":' || p_size || ',"total":' || p_total || '}'
$$;

-- The parts of a store its owner, a manager of it or an ADMIN lists,
-- newest first; p_store NULL: the caller's only store (cm__seller_store);
-- p_status NULL: all (the part's own status, 027_fulfilment.sql).
-- -> {"storeId","items":[part without items],"page","size","total"}
CREATE OR REPLACE FUNCTION cm_seller_orders(p_actor bigint, p_store bigint, p_status text,
                                            p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
    v_total bigint;
    v_items text;
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS',
                                                 'WAITING_FOR_DEPOSIT', 'PAID', 'PAYMENT_FAILED',
                                                 'CANCELLED', 'PREPARING', 'SHIPPED', 'DELIVERED',
                                                 'PURCHASE_CONFIRMED') THEN
        PERFORM cm__invalid('status must be PENDING_PAYMENT, PAYMENT_IN_PROGRESS,'
                            ' WAITING_FOR_DEPOSIT, PAID, PAYMENT_FAILED, CANCELLED, PREPARING,'
                            ' SHIPPED, DELIVERED or PURCHASE_CONFIRMED');
    END IF;
    v_store := cm__seller_list_store(p_actor, p_store, p_page, p_size);
    SELECT count(*) INTO v_total FROM order_parts x
     WHERE x.store_id = v_store AND (p_status IS NULL OR x.status = p_status);
    SELECT string_agg('{"id":' || x.id || ',"orderId":' || x.order_id || ',"storeId":' || x.store_id
                      || ',"status":"' || x.status || '","totalAmount":' || x.total_amount
                      || ',"discountAmount":' || x.discount_amount
                      || ',"paymentAmount":' || x.payment_amount
                      || ',"createdAt":"' || cm__ts(x.created_at) || '"}', ',' ORDER BY x.id DESC)
      INTO v_items
      FROM (SELECT * FROM order_parts y
             WHERE y.store_id = v_store AND (p_status IS NULL OR y.status = p_status)
             ORDER BY y.id DESC
             LIMIT p_size OFFSET p_page::bigint * p_size) x;
    RETURN cm__seller_list_doc(v_store, v_items, p_page, p_size, v_total);
END
$$;

-- A part for its store's owner, a manager of it or an ADMIN, with the
-- order's sealed shipping address last; else ORDER_PART_NOT_FOUND.
CREATE OR REPLACE FUNCTION cm_seller_order_get(p_actor bigint, p_part bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    x record;
BEGIN
    SELECT y.id, y.order_id, y.store_id, y.created_at INTO x FROM order_parts y WHERE y.id = p_part;
    IF NOT FOUND OR cm__store_relation(p_actor, x.store_id) IS NULL THEN
        PERFORM cm__not_found('ORDER_PART_NOT_FOUND', 'order part', p_part);
    END IF;
    RETURN left(cm__order_part_json(x.id), -1) || ',"createdAt":"' || cm__ts(x.created_at)
        || '","shippingAddress":' || cm__order_address_json(x.order_id) || '}';
END
$$;

-- The address given with an order, for cm__order_address_make in the same
-- statement: SELECT cm_order_create(..) FROM cm_order_shipping($n) AS s.
-- p_sealed NULL: none given.
CREATE OR REPLACE FUNCTION cm_order_shipping(p_sealed text) RETURNS void
LANGUAGE sql AS $$
    SELECT set_config('commerce.shipping', coalesce(p_sealed, ''), true)
$$;

