-- catalog: the buyers' reads of products (the document, the list).  Their
-- variants' stock is written by the order functions (30_order.sql) and the
-- sellers' (15_catalogue.sql), under the products' row locks taken in id
-- order.  Repeatable file: see 00_common.sql.

-- The product document (cm__product_doc, 15_catalogue.sql): the keys of
-- before ("id","name","price","stock") first, then status, store,
-- description, category, options, variants and images.
-- (The 4-key cm__product_json of before is dropped by 014_catalogue.sql.)

-- -> product document | PRODUCT_NOT_FOUND.  A STOPPED product is still
-- shown (with its status) to whoever has its id; it is not listed.
CREATE OR REPLACE FUNCTION cm_product_get(p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    v_doc := cm__product_doc(p_id, false);
    IF v_doc IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'PRODUCT_NOT_FOUND',
            DETAIL = format('product %s not found', p_id);
    END IF;
    RETURN v_doc;
END
$$;

-- Page p_page (from 0) of p_size products ordered by id, STOPPED ones left
-- out; total = the products listed (products_listed_idx).
CREATE OR REPLACE FUNCTION cm_product_list(p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    IF p_page IS NULL OR p_page < 0 OR p_size IS NULL OR p_size < 1 OR p_size > 100 THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'page must be >= 0 and size between 1 and 100';
    END IF;
    SELECT '{"items":[' || coalesce(cm__product_docs(ARRAY(
                                         SELECT p.id
                                           FROM products p
                                          WHERE NOT p.stopped
                                          ORDER BY p.id
                                         OFFSET p_page::bigint * p_size
                                          LIMIT p_size), false), '')
        || '],"page":' || p_page || ',"size":' || p_size
        || ',"total":' || (SELECT count(*) FROM products WHERE NOT stopped) || '}'
      INTO v_doc;
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
