-- catalog: products (id, name, price, stock).  Read here; their stock is
-- written by the order functions (30_order.sql), under the products' row
-- locks taken in id order.  Repeatable file: see 00_common.sql.

-- {"id","name","price","stock"}
CREATE OR REPLACE FUNCTION cm__product_json(p_id bigint, p_name text, p_price bigint, p_stock int)
RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT '{"id":' || p_id || ',"name":' || to_json(p_name)::text
        || ',"price":' || p_price || ',"stock":' || p_stock || '}'
$$;

-- -> {"id","name","price","stock"} | PRODUCT_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_product_get(p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT cm__product_json(p.id, p.name, p.price, p.stock) INTO v_doc
      FROM products p
     WHERE p.id = p_id;
    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PRODUCT_NOT_FOUND',
            DETAIL = format('product %s not found', p_id);
    END IF;
    RETURN v_doc;
END
$$;

-- Page p_page (from 0) of p_size products ordered by id; total = all products.
CREATE OR REPLACE FUNCTION cm_product_list(p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_page IS NULL OR p_page < 0 OR p_size IS NULL OR p_size < 1 OR p_size > 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'page must be >= 0 and size between 1 and 100';
    END IF;
    SELECT '{"items":' || coalesce('[' || string_agg(cm__product_json(s.id, s.name, s.price, s.stock),
                                                    ',' ORDER BY s.id) || ']', '[]')
        || ',"page":' || p_page || ',"size":' || p_size
        || ',"total":' || (SELECT count(*) FROM products) || '}'
      INTO v_doc
      FROM (SELECT p.id, p.name, p.price, p.stock
              FROM products p
             ORDER BY p.id
             OFFSET p_page::bigint * p_size
             LIMIT p_size) s;
    RETURN v_doc;
END
$$;

-- ---------------------------------------------------------------------------
-- Product changes, heard by the nginx instances' response caches
--
-- Every committed change of a product (stock by orders, expiry, failed
-- payments; price and name later) is NOTIFYed on the channel
-- commerce_product with the product's id; NOTIFY is delivered at commit,
-- to the sessions LISTENing then (each instance's worker 0, see
-- README.md "Product cache").  A hint only: the caches also expire
-- entries by TTL and drop everything when their listener reconnects.
-- Identical notifications of one transaction are folded into one by
-- Postgres.  A database serving no cache can spare the cost (a lock on
-- the notification queue at commit): ALTER DATABASE .. SET
-- commerce.cache_notify = off.
CREATE OR REPLACE FUNCTION cm__product_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('commerce.cache_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('commerce_product',
                          (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END)::text);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER products_changed
    AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION cm__product_changed();
