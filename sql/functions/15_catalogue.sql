-- catalogue: stores and their managers, categories, sellers' products
-- with options and variants, sale status, the stock ledger (tables in
-- 014_catalogue.sql).  Repeatable file: see 00_common.sql.
--
-- Who may touch what (held here, never by the module): a product belongs
-- to a store; the store's owner, a manager assigned to the store, and an
-- ADMIN (users.role, read in the transaction) may change it.  Anyone else
-- gets PRODUCT_NOT_FOUND, as if it did not exist.
--
-- Stock lives in product_variants.  products.stock is their sum and
-- products.on_sale_variants the number ON_SALE, kept by the trigger
-- cm__variant_changed in the statement's transaction; both statuses are
-- generated columns (014).  Every stock change writes its stock_movements
-- row from that trigger.  A direct UPDATE of products.stock (an operator,
-- older tests) is passed on to the product's single variant.
--
-- Lock order: product row (FOR NO KEY UPDATE) -> its variants -> (the
-- trigger updates the product row already held) -> user coupon -> user ->
-- sales rows.  Every function here, and the order functions, lock the
-- product before any of its variants, so a variant's trigger never waits
-- for a product while holding a variant.  Category and store rows are
-- read, or locked alone.
--
-- Status events go to the outbox (cm__outbox_emit, 95_outbox.sql) from
-- the triggers, aggregate ('product', product id), in the transaction of
-- the change: product.status_changed and product.variant_status_changed.
-- cm__outbox_emit takes the aggregate's advisory lock: only a writer of a
-- variant or of the product, which holds the product row already, takes
-- it.

-- ---------------------------------------------------------------------------
-- Helpers

-- The product cache's hint (10_catalog.sql's trigger sends it for writes of
-- products; variant-only changes send it here).
CREATE OR REPLACE FUNCTION cm__product_notify(p_product bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('commerce.cache_notify', true) IS DISTINCT FROM 'off' THEN
        PERFORM pg_notify('commerce_product', p_product::text);
    END IF;
END
$$;

-- A domain event of a product, in the transaction of the change: the
-- outbox (95_outbox.sql), aggregate ('product', id).
CREATE OR REPLACE FUNCTION cm__catalogue_event(p_product bigint, p_type text, p_payload jsonb)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cm__outbox_emit('product', p_product, p_type, p_payload);
END
$$;

-- Sets the transaction-local context the stock trigger records.
CREATE OR REPLACE FUNCTION cm__stock_context(p_reason text, p_actor bigint, p_order bigint,
                                             p_note text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- one statement, not four (every order runs this twice)
    PERFORM set_config('commerce.stock_reason', coalesce(p_reason, ''), true),
            set_config('commerce.stock_actor', coalesce(p_actor::text, ''), true),
            set_config('commerce.stock_order', coalesce(p_order::text, ''), true),
            set_config('commerce.stock_note', coalesce(p_note, ''), true);
END
$$;

CREATE OR REPLACE FUNCTION cm__not_found(p_code text, p_what text, p_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = p_code,
        DETAIL = format('%s %s not found', p_what, p_id);
END
$$;

CREATE OR REPLACE FUNCTION cm__conflict(p_code text, p_detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = p_code, DETAIL = p_detail;
END
$$;

-- ---------------------------------------------------------------------------
-- Triggers: variants keep their product; the ledger; status events

CREATE OR REPLACE FUNCTION cm__variant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    d_stock  int;
    d_on     int;
    v_reason text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        d_stock := NEW.stock;
        d_on := (NEW.status = 'ON_SALE')::int;
    ELSE
        d_stock := NEW.stock - OLD.stock;
        d_on := (NEW.status = 'ON_SALE')::int - (OLD.status = 'ON_SALE')::int;
    END IF;

    IF TG_OP = 'INSERT' OR d_stock <> 0 THEN
        v_reason := nullif(current_setting('commerce.stock_reason', true), '');
        IF TG_OP = 'INSERT' THEN
            v_reason := 'INITIAL';
        END IF;
        INSERT INTO stock_movements (variant_id, product_id, reason, delta, stock_after, actor_id,
                                     order_id, note)
        VALUES (NEW.id, NEW.product_id, coalesce(v_reason, 'OPERATOR'), d_stock, NEW.stock,
                nullif(current_setting('commerce.stock_actor', true), '')::bigint,
                nullif(current_setting('commerce.stock_order', true), '')::bigint,
                nullif(current_setting('commerce.stock_note', true), ''));
    END IF;

    -- The variant's status event before the product's it may cause.
    IF TG_OP = 'UPDATE' AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM cm__catalogue_event(NEW.product_id, 'product.variant_status_changed',
            jsonb_build_object('productId', NEW.product_id, 'variantId', NEW.id, 'sku', NEW.sku,
                               'from', OLD.status, 'to', NEW.status, 'stock', NEW.stock,
                               'at', cm__ts(now())));
    END IF;

    -- The product's sum and count.  At depth 2 the product's own trigger
    -- (a direct write of products.stock, or the default variant of a new
    -- product) is writing through us and sets them itself; the restock
    -- queue's holds (76_waitlist.sql) come at depth 2 from a variant's.
    IF (pg_trigger_depth() = 1 OR v_reason LIKE 'WAITLIST%') AND (d_stock <> 0 OR d_on <> 0) THEN
        UPDATE products
           SET stock = stock + d_stock, on_sale_variants = on_sale_variants + d_on,
               updated_at = now()
         WHERE id = NEW.product_id;
    ELSIF pg_trigger_depth() = 1 THEN
        PERFORM cm__product_notify(NEW.product_id);
    END IF;

    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER product_variants_changed
    AFTER INSERT OR UPDATE OF stock, stopped, sku, price_delta ON product_variants
    FOR EACH ROW EXECUTE FUNCTION cm__variant_changed();

-- A product inserted by anything but cm_seller_product_create (demo data,
-- an operator, older tests) gets its default variant with its stock.
CREATE OR REPLACE FUNCTION cm__product_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('commerce.explicit_variants', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO product_variants (product_id, stock) VALUES (NEW.id, NEW.stock);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER products_inserted
    AFTER INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION cm__product_inserted();

-- Its count of variants on sale, from the start.
CREATE OR REPLACE FUNCTION cm__product_insert_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('commerce.explicit_variants', true) IS DISTINCT FROM 'on' THEN
        NEW.on_sale_variants := CASE WHEN NEW.stock > 0 THEN 1 ELSE 0 END;
    ELSE
        NEW.stock := 0;
        NEW.on_sale_variants := 0;
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER products_insert_count
    BEFORE INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION cm__product_insert_count();

-- A direct write of products.stock: the product's single variant takes
-- it (and its ledger row).  The variants' trigger writes products.stock at
-- depth 2 and passes through here untouched.
CREATE OR REPLACE FUNCTION cm__product_stock_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NEW;
    END IF;
    UPDATE product_variants SET stock = NEW.stock, updated_at = now()
     WHERE product_id = NEW.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n <> 1 THEN
        RAISE EXCEPTION 'products.stock of product % is the sum of its % variants: change a variant',
            NEW.id, n;
    END IF;
    NEW.on_sale_variants := (SELECT count(*) FROM product_variants v
                              WHERE v.product_id = NEW.id AND v.status = 'ON_SALE');
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER products_stock_write
    BEFORE UPDATE OF stock ON products
    FOR EACH ROW WHEN (OLD.stock IS DISTINCT FROM NEW.stock)
    EXECUTE FUNCTION cm__product_stock_write();

CREATE OR REPLACE FUNCTION cm__product_status_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A product being created (its variants arriving) has no status yet.
    IF current_setting('commerce.explicit_variants', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM cm__catalogue_event(NEW.id, 'product.status_changed',
        jsonb_build_object('productId', NEW.id, 'storeId', NEW.store_id, 'from', OLD.status,
                           'to', NEW.status, 'stock', NEW.stock, 'at', cm__ts(now())));
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER products_status_changed
    AFTER UPDATE ON products
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cm__product_status_changed();

-- ---------------------------------------------------------------------------
-- The product document
--
-- {"id","name","price","stock","status","storeId","description",
--  "category":{"id","name"}|null,"options":[{"name","values":[..]}],
--  "variants":[{"id","sku","optionValues","price","stock","status"}],
--  "images":["/images/<sha256>.<ext>",..]} (+ "version" for sellers).  The first four keys are the
-- document of before; a variant's price is the product's plus its delta.

-- The options as compact JSON (plpgsql: its query's plan is cached; a
-- LANGUAGE sql function with a FROM is planned at every call).
CREATE OR REPLACE FUNCTION cm__options_json(p_options jsonb) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT coalesce('[' || string_agg('{"name":' || to_json(e.o ->> 'name')::text
                                      || ',"values":' || to_json(ARRAY(
                                             SELECT jsonb_array_elements_text(e.o -> 'values')))::text
                                      || '}', ',' ORDER BY e.i) || ']', '[]')
      INTO v_doc
      FROM jsonb_array_elements(p_options) WITH ORDINALITY AS e(o, i);
    RETURN v_doc;
END
$$;

-- The documents of products p_ids, by id, joined by ',' (NULL: none).
-- One query for a whole list page: its plan is cached, the category and
-- the variants are index look-ups per product.  ARRAY(.. ORDER BY) over
-- an index in that order, rather than string_agg(.. ORDER BY), which
-- sorts (a tuplesort per product: a third of the time of a read).
-- force_generic_plan: with a one-element array the custom plan is always
-- estimated cheaper than the generic one (1 row against 10), so plpgsql
-- planned the query again at every call (~100 us, 3/4 of a product read,
-- measured with pgbench product_get: 4.4k -> 14.0k tps); the GUC's save
-- and restore per call costs far less.
CREATE OR REPLACE FUNCTION cm__product_docs(p_ids bigint[], p_seller boolean) RETURNS text
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_doc text;
BEGIN
    v_doc := array_to_string(ARRAY(
        SELECT '{"id":' || p.id || ',"name":' || to_json(p.name)::text
            || ',"price":' || p.price || ',"stock":' || p.stock
            || ',"status":"' || p.status || '","storeId":' || coalesce(p.store_id::text, 'null')
            || ',"description":' || to_json(p.description)::text
            || ',"category":' || coalesce((SELECT '{"id":' || c.id || ',"name":'
                                                  || to_json(c.name)::text || '}'
                                             FROM categories c WHERE c.id = p.category_id), 'null')
            || ',"options":' || CASE WHEN p.options = '[]' THEN '[]'
                                     ELSE cm__options_json(p.options) END
            || ',"variants":[' || array_to_string(ARRAY(
                   SELECT '{"id":' || v.id || ',"sku":' || cm__json_or_null(v.sku)
                       || ',"optionValues":' || to_json(v.option_values)::text
                       || ',"price":' || (p.price + v.price_delta) || ',"stock":' || v.stock
                       || ',"status":"' || v.status || '"}'
                     FROM product_variants v
                    WHERE v.product_id = p.id
                    ORDER BY v.product_id, v.id), ',')
            || '],"images":' || to_json(ARRAY(
                   SELECT '/images/' || cm__image_file(i.hash, i.type)
                     FROM product_images i
                    WHERE i.product_id = p.id
                    ORDER BY i.product_id, i.position))::text
            || CASE WHEN p_seller THEN ',"version":' || p.version ELSE '' END
            || '}'
          FROM products p
         WHERE p.id = ANY (p_ids)
         ORDER BY p.id), ',');
    RETURN nullif(v_doc, '');
END
$$;

-- One product's document, or NULL.
CREATE OR REPLACE FUNCTION cm__product_doc(p_id bigint, p_seller boolean) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN cm__product_docs(ARRAY[p_id], p_seller);
END
$$;

-- ---------------------------------------------------------------------------
-- Stores and managers

-- {"id","ownerId","name","bankCode","accountLast4","managers":[ids],"createdAt"}
CREATE OR REPLACE FUNCTION cm__store_doc(p_store bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"id":' || s.id || ',"ownerId":' || s.owner_id || ',"name":' || to_json(s.name)::text
        || ',"bankCode":"' || s.bank_code || '","accountLast4":"' || s.account_last4
        || '","managers":' || coalesce((SELECT '[' || string_agg(m.user_id::text, ',' ORDER BY m.user_id)
                                                 || ']'
                                          FROM store_managers m WHERE m.store_id = s.id), '[]')
        || ',"createdAt":"' || cm__ts(s.created_at) || '"}'
      INTO v_doc
      FROM stores s
     WHERE s.id = p_store;
    RETURN v_doc;
END
$$;

-- Seller p_owner opens its store.  The account number and holder arrive
-- encrypted (the module's PII keyring, bound to the owner's id).
-- -> store document | STORE_EXISTS | USER_NOT_FOUND | INVALID_REQUEST
CREATE OR REPLACE FUNCTION cm_store_create(p_owner bigint, p_name text, p_bank_code text,
                                           p_number_ct text, p_holder_ct text, p_last4 text,
                                           p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_name IS NULL OR char_length(p_name) NOT BETWEEN 1 AND 100 OR btrim(p_name) = '' THEN
        PERFORM cm__invalid('name must be 1 to 100 characters');
    END IF;
    IF p_bank_code IS NULL OR p_bank_code !~ '^[0-9]{3}$' THEN
        PERFORM cm__invalid('bankCode must be 3 digits');
    END IF;
    IF p_last4 IS NULL OR p_last4 !~ '^[0-9]{4}$'
       OR NOT coalesce(cm__pii_ct_ok(p_number_ct) AND cm__pii_ct_ok(p_holder_ct), false) THEN
        PERFORM cm__invalid('accountNumber and accountHolder are required');
    END IF;
    PERFORM FROM users u WHERE u.id = p_owner AND u.status = 'ACTIVE';
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_owner);
    END IF;

    INSERT INTO stores (owner_id, name, bank_code, account_number_ct, account_holder_ct,
                        account_last4)
    VALUES (p_owner, p_name, p_bank_code, p_number_ct, p_holder_ct, p_last4)
    ON CONFLICT (owner_id) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        PERFORM cm__conflict('STORE_EXISTS', format('user %s already has a store', p_owner));
    END IF;

    PERFORM cm__audit('STORE_CREATE', p_owner, p_owner, p_client, '{"storeId":' || v_id || '}');
    RETURN cm__store_doc(v_id);
END
$$;

-- The store of seller p_owner. -> store document | STORE_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_store_get(p_owner bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT s.id INTO v_id FROM stores s WHERE s.owner_id = p_owner;
    IF v_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'STORE_NOT_FOUND',
            DETAIL = 'you have no store yet';
    END IF;
    RETURN cm__store_doc(v_id);
END
$$;

-- Admin p_admin assigns MANAGER p_user to store p_store (again: nothing
-- changes, audited all the same).  Audit MANAGER_ASSIGN.
-- -> {"storeId","userId","assignedAt"} | STORE_NOT_FOUND | USER_NOT_FOUND
--    | NOT_A_MANAGER (409: the user's role is not MANAGER)
CREATE OR REPLACE FUNCTION cm_store_manager_assign(p_admin bigint, p_store bigint, p_user bigint,
                                                   p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_role text;
    v_at   timestamptz;
BEGIN
    PERFORM FROM stores s WHERE s.id = p_store;
    IF NOT FOUND THEN
        PERFORM cm__not_found('STORE_NOT_FOUND', 'store', p_store);
    END IF;
    -- The role cannot change under us: FOR SHARE makes cm_role_set (FOR NO
    -- KEY UPDATE of the same row) wait for our commit.
    SELECT u.role INTO v_role FROM users u WHERE u.id = p_user AND u.status = 'ACTIVE' FOR SHARE;
    IF NOT FOUND THEN
        PERFORM cm__user_not_found(p_user);
    END IF;
    IF v_role <> 'MANAGER' THEN
        PERFORM cm__conflict('NOT_A_MANAGER', format('user %s is %s, not MANAGER', p_user, v_role));
    END IF;

    INSERT INTO store_managers (store_id, user_id, assigned_by)
    VALUES (p_store, p_user, p_admin)
    ON CONFLICT (store_id, user_id) DO NOTHING;
    SELECT m.assigned_at INTO v_at FROM store_managers m
     WHERE m.store_id = p_store AND m.user_id = p_user;

    PERFORM cm__audit('MANAGER_ASSIGN', p_user, p_admin, p_client,
                      '{"storeId":' || p_store || '}');
    RETURN '{"storeId":' || p_store || ',"userId":' || p_user || ',"assignedAt":"'
        || cm__ts(v_at) || '"}';
END
$$;

-- How p_actor stands to store p_store: OWNER, MANAGER, ADMIN or NULL.
-- An ADMIN takes a manager off a store: the assignment row goes, the
-- manager loses the store's products at once (cm__store_relation reads the
-- row in every seller call).  Audit MANAGER_UNASSIGN.
CREATE OR REPLACE FUNCTION cm_store_manager_unassign(p_admin bigint, p_store bigint, p_user bigint,
                                                     p_client text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM stores s WHERE s.id = p_store;
    IF NOT FOUND THEN
        PERFORM cm__not_found('STORE_NOT_FOUND', 'store', p_store);
    END IF;
    DELETE FROM store_managers m WHERE m.store_id = p_store AND m.user_id = p_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'MANAGER_NOT_ASSIGNED',
            DETAIL = format('user %s is not a manager of store %s', p_user, p_store);
    END IF;
    PERFORM cm__audit('MANAGER_UNASSIGN', p_user, p_admin, p_client,
                      '{"storeId":' || p_store || '}');
    RETURN '';
END
$$;

CREATE OR REPLACE FUNCTION cm__store_relation(p_actor bigint, p_store bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_store IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM stores s WHERE s.id = p_store AND s.owner_id = p_actor) THEN
            RETURN 'OWNER';
        END IF;
        IF EXISTS (SELECT 1 FROM store_managers m WHERE m.store_id = p_store AND m.user_id = p_actor)
        THEN
            RETURN 'MANAGER';
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM users u WHERE u.id = p_actor AND u.role = 'ADMIN'
                                       AND u.status = 'ACTIVE') THEN
        RETURN 'ADMIN';
    END IF;
    RETURN NULL;
END
$$;

-- ---------------------------------------------------------------------------
-- Categories

-- {"items":[{"id","name","children":[...]}]}, by name then id at each level.
CREATE OR REPLACE FUNCTION cm__category_children(p_parent bigint, p_depth int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT coalesce('[' || string_agg('{"id":' || c.id || ',"name":' || to_json(c.name)::text
                                      || ',"children":'
                                      || CASE WHEN p_depth < 3
                                              THEN cm__category_children(c.id, p_depth + 1)
                                              ELSE '[]' END || '}',
                                      ',' ORDER BY c.name, c.id) || ']', '[]')
      INTO v_doc
      FROM categories c
     WHERE c.parent_id IS NOT DISTINCT FROM p_parent AND c.depth = p_depth;
    RETURN v_doc;
END
$$;

CREATE OR REPLACE FUNCTION cm_category_tree() RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN '{"items":' || cm__category_children(NULL, 1) || '}';
END
$$;

CREATE OR REPLACE FUNCTION cm__category_json(p_id bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_doc text;
BEGIN
    SELECT '{"id":' || c.id || ',"name":' || to_json(c.name)::text || ',"parentId":'
        || coalesce(c.parent_id::text, 'null') || ',"depth":' || c.depth || '}'
      INTO v_doc
      FROM categories c WHERE c.id = p_id;
    RETURN v_doc;
END
$$;

CREATE OR REPLACE FUNCTION cm__category_name(p_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_name IS NULL OR char_length(p_name) NOT BETWEEN 1 AND 50 OR btrim(p_name) = '' THEN
        PERFORM cm__invalid('name must be 1 to 50 characters');
    END IF;
END
$$;

-- -> {"id","name","parentId","depth"} | CATEGORY_NOT_FOUND (parent) |
--    CATEGORY_TOO_DEEP (400: the parent is at level 3) | CATEGORY_EXISTS
CREATE OR REPLACE FUNCTION cm_category_create(p_admin bigint, p_name text, p_parent bigint,
                                              p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_depth smallint;
    v_id    bigint;
BEGIN
    PERFORM cm__category_name(p_name);
    IF p_parent IS NOT NULL THEN
        SELECT c.depth INTO v_depth FROM categories c WHERE c.id = p_parent FOR KEY SHARE;
        IF NOT FOUND THEN
            PERFORM cm__not_found('CATEGORY_NOT_FOUND', 'category', p_parent);
        END IF;
        IF v_depth >= 3 THEN
            PERFORM cm__conflict('CATEGORY_TOO_DEEP', 'categories have at most 3 levels');
        END IF;
    END IF;
    INSERT INTO categories (parent_id, parent_depth, depth, name)
    VALUES (p_parent, v_depth, coalesce(v_depth + 1, 1), p_name)
    ON CONFLICT DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        PERFORM cm__conflict('CATEGORY_EXISTS', 'a sibling category has this name');
    END IF;
    PERFORM cm__audit('CATEGORY_CHANGE', NULL, p_admin, p_client,
                      '{"categoryId":' || v_id || ',"op":"create"}');
    RETURN cm__category_json(v_id);
END
$$;

-- Rename.  The products of the category show its name: their cached
-- documents are dropped (one NOTIFY each, at commit).
CREATE OR REPLACE FUNCTION cm_category_rename(p_admin bigint, p_id bigint, p_name text,
                                              p_client text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cm__category_name(p_name);
    BEGIN
        UPDATE categories SET name = p_name WHERE id = p_id;
    EXCEPTION WHEN unique_violation THEN
        PERFORM cm__conflict('CATEGORY_EXISTS', 'a sibling category has this name');
    END;
    IF NOT FOUND THEN
        PERFORM cm__not_found('CATEGORY_NOT_FOUND', 'category', p_id);
    END IF;
    PERFORM cm__product_notify(p.id) FROM products p WHERE p.category_id = p_id;
    PERFORM cm__audit('CATEGORY_CHANGE', NULL, p_admin, p_client,
                      '{"categoryId":' || p_id || ',"op":"rename"}');
    RETURN cm__category_json(p_id);
END
$$;

-- Delete a category without children or products.
-- -> '' | CATEGORY_NOT_FOUND | CATEGORY_NOT_EMPTY
CREATE OR REPLACE FUNCTION cm_category_delete(p_admin bigint, p_id bigint, p_client text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM categories c WHERE c.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('CATEGORY_NOT_FOUND', 'category', p_id);
    END IF;
    -- FOR UPDATE waits for (and then blocks) the FOR KEY SHARE of inserts
    -- naming it: nothing new refers to it once we look.
    IF EXISTS (SELECT 1 FROM categories c WHERE c.parent_id = p_id)
       OR EXISTS (SELECT 1 FROM products p WHERE p.category_id = p_id) THEN
        PERFORM cm__conflict('CATEGORY_NOT_EMPTY', 'the category has subcategories or products');
    END IF;
    DELETE FROM categories WHERE id = p_id;
    PERFORM cm__audit('CATEGORY_CHANGE', NULL, p_admin, p_client,
                      '{"categoryId":' || p_id || ',"op":"delete"}');
    RETURN '';
END
$$;

-- ---------------------------------------------------------------------------
-- Sellers' products

-- The store p_actor creates in: p_store if it may act for it, else its own
-- store, else the one store it manages.
CREATE OR REPLACE FUNCTION cm__seller_store(p_actor bigint, p_store bigint) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ids bigint[];
BEGIN
    IF p_store IS NOT NULL THEN
        IF cm__store_relation(p_actor, p_store) IS NULL
           OR NOT EXISTS (SELECT 1 FROM stores s WHERE s.id = p_store) THEN
            PERFORM cm__not_found('STORE_NOT_FOUND', 'store', p_store);
        END IF;
        RETURN p_store;
    END IF;
    SELECT array_agg(x.id ORDER BY x.id) INTO v_ids
      FROM (SELECT s.id FROM stores s WHERE s.owner_id = p_actor
            UNION SELECT m.store_id FROM store_managers m WHERE m.user_id = p_actor) x;
    IF v_ids IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'STORE_NOT_FOUND',
            DETAIL = 'you have no store: open one first (POST /api/v1/seller/store)';
    END IF;
    IF cardinality(v_ids) > 1 THEN
        PERFORM cm__invalid('storeId is required: you act for several stores');
    END IF;
    RETURN v_ids[1];
END
$$;

-- Locks product p_product for p_actor (FOR NO KEY UPDATE, the first lock
-- of every change) and says how p_actor stands to its store; a product
-- the actor may not touch is PRODUCT_NOT_FOUND, as an unknown one.
CREATE OR REPLACE FUNCTION cm__seller_product_lock(p_actor bigint, p_product bigint,
                                                   OUT store_id bigint, OUT owner_id bigint,
                                                   OUT relation text)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT p.store_id INTO store_id FROM products p WHERE p.id = p_product FOR NO KEY UPDATE;
    IF FOUND THEN
        relation := cm__store_relation(p_actor, store_id);
    END IF;
    IF relation IS NULL THEN
        PERFORM cm__not_found('PRODUCT_NOT_FOUND', 'product', p_product);
    END IF;
    SELECT s.owner_id INTO owner_id FROM stores s WHERE s.id = store_id;
END
$$;

CREATE OR REPLACE FUNCTION cm__seller_audit(p_event text, p_owner bigint, p_actor bigint,
                                            p_client text, p_product bigint, p_store bigint,
                                            p_relation text, p_extra text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cm__audit(p_event, p_owner, p_actor, p_client,
                      '{"productId":' || p_product || ',"storeId":' || coalesce(p_store::text, 'null')
                      || ',"as":"' || p_relation || '"' || coalesce(',' || p_extra, '') || '}');
END
$$;

-- The options of a product: 0..3 of {"name","values":[1..20 distinct]},
-- names distinct; -> the number of combinations.
CREATE OR REPLACE FUNCTION cm__options_check(p_options jsonb) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    o      jsonb;
    n      int := 1;
    v_name text;
    v_vals text[];
    v_names text[] := '{}';
BEGIN
    IF jsonb_typeof(p_options) IS DISTINCT FROM 'array' OR jsonb_array_length(p_options) > 3 THEN
        PERFORM cm__invalid('options must be an array of at most 3 options');
    END IF;
    FOR o IN SELECT e FROM jsonb_array_elements(p_options) AS e LOOP
        v_name := o ->> 'name';
        IF jsonb_typeof(o -> 'name') IS DISTINCT FROM 'string'
           OR char_length(v_name) NOT BETWEEN 1 AND 50 OR v_name = ANY (v_names) THEN
            PERFORM cm__invalid('option names must be 1 to 50 characters and distinct');
        END IF;
        v_names := v_names || v_name;
        IF jsonb_typeof(o -> 'values') IS DISTINCT FROM 'array'
           OR jsonb_array_length(o -> 'values') NOT BETWEEN 1 AND 20
           OR EXISTS (SELECT 1 FROM jsonb_array_elements(o -> 'values') x
                       WHERE jsonb_typeof(x) <> 'string'
                          OR char_length(x #>> '{}') NOT BETWEEN 1 AND 50) THEN
            PERFORM cm__invalid('an option has 1 to 20 values of 1 to 50 characters');
        END IF;
        v_vals := ARRAY(SELECT jsonb_array_elements_text(o -> 'values'));
        IF (SELECT count(DISTINCT x) FROM unnest(v_vals) x) <> cardinality(v_vals) THEN
            PERFORM cm__invalid('the values of an option must be distinct');
        END IF;
        n := n * cardinality(v_vals);
    END LOOP;
    RETURN n;
END
$$;

-- Seller p_actor creates a product from p_body (checked by the module,
-- cm_parse_product, and again here): name, description, categoryId,
-- price, options, variants (one per combination of option values), and
-- storeId for an actor of several stores.  Audit PRODUCT_CREATE.
-- -> seller product document | STORE_NOT_FOUND | CATEGORY_NOT_FOUND |
--    INVALID_REQUEST (the option/variant matrix, prices, SKUs)
CREATE OR REPLACE FUNCTION cm_seller_product_create(p_actor bigint, p_body jsonb, p_client text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_store    bigint;
    v_options  jsonb := coalesce(p_body -> 'options', '[]');
    v_variants jsonb := p_body -> 'variants';
    v_combos   int;
    v_price    bigint;
    v_id       bigint;
    v_rel      text;
    v_owner    bigint;
    v_cat      bigint;
    x          jsonb;
    v_vals     text[];
    k          int;
BEGIN
    IF jsonb_typeof(p_body) IS DISTINCT FROM 'object' THEN
        PERFORM cm__invalid('the body must be an object');
    END IF;
    IF jsonb_typeof(p_body -> 'storeId') NOT IN ('number', 'null') THEN
        PERFORM cm__invalid('storeId must be an integer');
    END IF;
    v_store := cm__seller_store(p_actor, (p_body ->> 'storeId')::bigint);
    v_rel := cm__store_relation(p_actor, v_store);
    SELECT s.owner_id INTO v_owner FROM stores s WHERE s.id = v_store;

    IF jsonb_typeof(p_body -> 'name') IS DISTINCT FROM 'string'
       OR char_length(p_body ->> 'name') NOT BETWEEN 1 AND 100 THEN
        PERFORM cm__invalid('name must be 1 to 100 characters');
    END IF;
    IF jsonb_typeof(p_body -> 'price') IS DISTINCT FROM 'number'
       OR (p_body ->> 'price')::numeric NOT BETWEEN 0 AND 1000000000000 THEN
        PERFORM cm__invalid('price must be an integer from 0 to 1000000000000');
    END IF;
    v_price := (p_body ->> 'price')::bigint;
    IF jsonb_typeof(p_body -> 'categoryId') = 'number' THEN
        v_cat := (p_body ->> 'categoryId')::bigint;
        PERFORM FROM categories c WHERE c.id = v_cat;
        IF NOT FOUND THEN
            PERFORM cm__not_found('CATEGORY_NOT_FOUND', 'category', v_cat);
        END IF;
    END IF;

    v_combos := cm__options_check(v_options);
    IF jsonb_typeof(v_variants) IS DISTINCT FROM 'array'
       OR jsonb_array_length(v_variants) <> v_combos THEN
        PERFORM cm__invalid(format('variants must hold one variant per combination of option '
                                   'values: %s', v_combos));
    END IF;

    -- The variants, inserted after the product (the trigger adds their
    -- stock and count to it); no default variant of the insert trigger.
    PERFORM set_config('commerce.explicit_variants', 'on', true);
    INSERT INTO products (name, price, stock, store_id, category_id, description, options)
    VALUES (p_body ->> 'name', v_price, 0, v_store, v_cat, coalesce(p_body ->> 'description', ''),
            v_options)
    RETURNING id INTO v_id;
    PERFORM cm__stock_context('INITIAL', p_actor, NULL, NULL);

    FOR x IN SELECT e FROM jsonb_array_elements(v_variants) AS e LOOP
        v_vals := ARRAY(SELECT jsonb_array_elements_text(coalesce(x -> 'optionValues', '[]')));
        -- one value of each option, in the options' order
        IF cardinality(v_vals) <> jsonb_array_length(v_options) THEN
            PERFORM cm__invalid('each variant names one value of each option, in order');
        END IF;
        FOR k IN 1 .. cardinality(v_vals) LOOP
            IF NOT (v_options -> (k - 1) -> 'values') ? v_vals[k] THEN
                PERFORM cm__invalid(format('unknown value of option %s', v_options -> (k - 1) ->> 'name'));
            END IF;
        END LOOP;
        IF jsonb_typeof(x -> 'stock') IS DISTINCT FROM 'number'
           OR (x ->> 'stock')::numeric NOT BETWEEN 0 AND 1000000000 THEN
            PERFORM cm__invalid('a variant''s stock is an integer from 0 to 1000000000');
        END IF;
        IF v_price + coalesce((x ->> 'priceDelta')::bigint, 0) < 0 THEN
            PERFORM cm__invalid('a variant''s price (price + priceDelta) must not be negative');
        END IF;
        BEGIN
            INSERT INTO product_variants (product_id, sku, option_values, price_delta, stock)
            VALUES (v_id, x ->> 'sku', v_vals, coalesce((x ->> 'priceDelta')::bigint, 0),
                    (x ->> 'stock')::int);
        EXCEPTION
            WHEN unique_violation THEN
                PERFORM cm__invalid('two variants have the same option values or SKU');
            WHEN check_violation THEN
                PERFORM cm__invalid('a variant''s sku, priceDelta or stock is out of range');
        END;
    END LOOP;
    PERFORM set_config('commerce.explicit_variants', '', true);
    PERFORM cm__stock_context(NULL, NULL, NULL, NULL);

    PERFORM cm__seller_audit('PRODUCT_CREATE', v_owner, p_actor, p_client, v_id, v_store, v_rel, NULL);
    RETURN cm__product_doc(v_id, true);
END
$$;

-- -> seller product document | PRODUCT_NOT_FOUND (unknown, or not p_actor's)
CREATE OR REPLACE FUNCTION cm_seller_product_get(p_actor bigint, p_product bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
BEGIN
    SELECT p.store_id INTO v_store FROM products p WHERE p.id = p_product;
    IF NOT FOUND OR cm__store_relation(p_actor, v_store) IS NULL THEN
        PERFORM cm__not_found('PRODUCT_NOT_FOUND', 'product', p_product);
    END IF;
    RETURN cm__product_doc(p_product, true);
END
$$;

-- Seller p_actor changes product p_product: any of name, description,
-- categoryId (null: none), price, status (ON_SALE | STOPPED), with
-- "version" the document's version it read: another edit committed since
-- is VERSION_CONFLICT (optimistic lock of a person's edit).  Options and
-- variants do not change here (a variant: cm_seller_variant_update).
-- Audit PRODUCT_UPDATE with the fields changed.
CREATE OR REPLACE FUNCTION cm_seller_product_update(p_actor bigint, p_product bigint, p_body jsonb,
                                                    p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    l       record;
    p       record;
    v_cat   bigint;
    v_price bigint;
    v_fields text;
BEGIN
    IF jsonb_typeof(p_body) IS DISTINCT FROM 'object' THEN
        PERFORM cm__invalid('the body must be an object');
    END IF;
    SELECT * INTO l FROM cm__seller_product_lock(p_actor, p_product);
    SELECT x.price, x.version, x.category_id, x.stopped INTO p FROM products x WHERE x.id = p_product;

    IF p_body ? 'version' AND (p_body ->> 'version')::bigint IS DISTINCT FROM p.version THEN
        PERFORM cm__conflict('VERSION_CONFLICT',
            format('product %s is at version %s: read it again', p_product, p.version));
    END IF;
    IF p_body ? 'name' AND (jsonb_typeof(p_body -> 'name') IS DISTINCT FROM 'string'
                            OR char_length(p_body ->> 'name') NOT BETWEEN 1 AND 100) THEN
        PERFORM cm__invalid('name must be 1 to 100 characters');
    END IF;
    IF p_body ? 'price' THEN
        IF jsonb_typeof(p_body -> 'price') IS DISTINCT FROM 'number'
           OR (p_body ->> 'price')::numeric NOT BETWEEN 0 AND 1000000000000 THEN
            PERFORM cm__invalid('price must be an integer from 0 to 1000000000000');
        END IF;
        v_price := (p_body ->> 'price')::bigint;
        IF EXISTS (SELECT 1 FROM product_variants v
                    WHERE v.product_id = p_product AND v_price + v.price_delta < 0) THEN
            PERFORM cm__invalid('a variant''s price (price + priceDelta) would be negative');
        END IF;
    END IF;
    v_cat := p.category_id;
    IF p_body ? 'categoryId' THEN
        v_cat := (p_body ->> 'categoryId')::bigint;
        IF v_cat IS NOT NULL AND NOT EXISTS (SELECT 1 FROM categories c WHERE c.id = v_cat) THEN
            PERFORM cm__not_found('CATEGORY_NOT_FOUND', 'category', v_cat);
        END IF;
    END IF;
    IF p_body ? 'status' AND coalesce(p_body ->> 'status', '') NOT IN ('ON_SALE', 'STOPPED') THEN
        PERFORM cm__invalid('status must be ON_SALE or STOPPED');
    END IF;

    UPDATE products
       SET name = coalesce(p_body ->> 'name', name),
           description = CASE WHEN p_body ? 'description' THEN coalesce(p_body ->> 'description', '')
                              ELSE description END,
           category_id = v_cat,
           price = coalesce(v_price, price),
           stopped = CASE WHEN p_body ? 'status' THEN p_body ->> 'status' = 'STOPPED' ELSE stopped END,
           version = version + 1,
           updated_at = now()
     WHERE id = p_product;

    SELECT string_agg(to_json(k)::text, ',' ORDER BY k) INTO v_fields
      FROM jsonb_object_keys(p_body) AS k WHERE k <> 'version';
    PERFORM cm__seller_audit('PRODUCT_UPDATE', l.owner_id, p_actor, p_client, p_product, l.store_id,
                             l.relation, '"fields":[' || coalesce(v_fields, '') || ']');
    RETURN cm__product_doc(p_product, true);
END
$$;

-- Seller p_actor changes variant p_variant of product p_product: stock
-- (set) or stockDelta (+N / -N), sku, priceDelta, status (ON_SALE |
-- STOPPED), reason (the ledger's note).  The stock moves by one
-- conditional UPDATE: never below 0 (OUT_OF_STOCK), whatever orders do
-- meanwhile.  Audit VARIANT_UPDATE.  -> seller product document |
-- PRODUCT_NOT_FOUND | VARIANT_NOT_FOUND | OUT_OF_STOCK | INVALID_REQUEST
-- A seller deletes a product nobody ordered (an order keeps its product:
-- PRODUCT_HAS_ORDERS, STOP it instead).  Its variants, their ledger, the
-- cart lines holding them and its image rows go in this transaction; the
-- image files no other product shows are removed by the image sweep
-- (ngx_commerce_seller_sweep.c asks cm_image_files_unused before it
-- removes a file).  Audited PRODUCT_DELETE, event product.deleted.
CREATE OR REPLACE FUNCTION cm_seller_product_delete(p_actor bigint, p_product bigint,
                                                    p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    l      record;
    v_name text;
    v_imgs int;
BEGIN
    l := cm__seller_product_lock(p_actor, p_product);
    IF EXISTS (SELECT 1 FROM order_items i WHERE i.product_id = p_product) THEN
        PERFORM cm__conflict('PRODUCT_HAS_ORDERS',
            format('product %s was ordered: set its status to STOPPED instead', p_product));
    END IF;
    -- every hash it shows, locked as an image delete locks it
    PERFORM cm__image_hash_lock(h.hash)
       FROM (SELECT DISTINCT i.hash FROM product_images i
              WHERE i.product_id = p_product ORDER BY i.hash) h;
    DELETE FROM product_images WHERE product_id = p_product;
    GET DIAGNOSTICS v_imgs = ROW_COUNT;
    -- the variants first: a cart line added meanwhile waits, then finds none
    PERFORM FROM product_variants v WHERE v.product_id = p_product ORDER BY v.id FOR UPDATE;
    DELETE FROM cart_items c USING product_variants v
     WHERE c.variant_id = v.id AND v.product_id = p_product;
    DELETE FROM stock_movements m WHERE m.product_id = p_product;
    DELETE FROM product_variants WHERE product_id = p_product;
    DELETE FROM products WHERE id = p_product RETURNING name INTO v_name;
    PERFORM cm__seller_audit('PRODUCT_DELETE', l.owner_id, p_actor, p_client, p_product,
                             l.store_id, l.relation, '"images":' || v_imgs);
    PERFORM cm__catalogue_event(p_product, 'product.deleted',
        jsonb_build_object('productId', p_product, 'storeId', l.store_id, 'name', v_name,
                           'at', cm__ts(now())));
    RETURN '';
END
$$;

CREATE OR REPLACE FUNCTION cm_seller_variant_update(p_actor bigint, p_product bigint,
                                                    p_variant bigint, p_body jsonb, p_client text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    l       record;
    v       record;
    v_delta bigint;
    v_set   bigint;
    v_price bigint;
    v_fields text;
BEGIN
    IF jsonb_typeof(p_body) IS DISTINCT FROM 'object' THEN
        PERFORM cm__invalid('the body must be an object');
    END IF;
    SELECT * INTO l FROM cm__seller_product_lock(p_actor, p_product);
    SELECT x.id, x.stock INTO v FROM product_variants x
     WHERE x.id = p_variant AND x.product_id = p_product;
    IF NOT FOUND THEN
        PERFORM cm__not_found('VARIANT_NOT_FOUND', 'variant', p_variant);
    END IF;
    IF p_body ? 'stock' AND p_body ? 'stockDelta' THEN
        PERFORM cm__invalid('give stock or stockDelta, not both');
    END IF;
    IF p_body ? 'stock' THEN
        IF jsonb_typeof(p_body -> 'stock') IS DISTINCT FROM 'number'
           OR (p_body ->> 'stock')::numeric NOT BETWEEN 0 AND 1000000000 THEN
            PERFORM cm__invalid('stock must be an integer from 0 to 1000000000');
        END IF;
        v_set := (p_body ->> 'stock')::bigint;
    END IF;
    IF p_body ? 'stockDelta' THEN
        IF jsonb_typeof(p_body -> 'stockDelta') IS DISTINCT FROM 'number'
           OR (p_body ->> 'stockDelta')::numeric NOT BETWEEN -1000000000 AND 1000000000
           OR (p_body ->> 'stockDelta')::numeric = 0 THEN
            PERFORM cm__invalid('stockDelta must be a nonzero integer from -1000000000 to 1000000000');
        END IF;
        v_delta := (p_body ->> 'stockDelta')::bigint;
    END IF;
    IF p_body ? 'status' AND coalesce(p_body ->> 'status', '') NOT IN ('ON_SALE', 'STOPPED') THEN
        PERFORM cm__invalid('status must be ON_SALE or STOPPED');
    END IF;
    IF p_body ? 'priceDelta' THEN
        IF jsonb_typeof(p_body -> 'priceDelta') IS DISTINCT FROM 'number' THEN
            PERFORM cm__invalid('priceDelta must be an integer');
        END IF;
        v_price := (SELECT x.price FROM products x WHERE x.id = p_product)
                   + (p_body ->> 'priceDelta')::bigint;
        IF v_price < 0 THEN
            PERFORM cm__invalid('a variant''s price (price + priceDelta) must not be negative');
        END IF;
    END IF;
    IF p_body ? 'reason' AND (jsonb_typeof(p_body -> 'reason') IS DISTINCT FROM 'string'
                              OR char_length(p_body ->> 'reason') > 200) THEN
        PERFORM cm__invalid('reason must be a string of at most 200 characters');
    END IF;

    PERFORM cm__stock_context(CASE WHEN v_delta IS NOT NULL THEN 'SELLER_ADJUST' ELSE 'SELLER_SET' END,
                              p_actor, NULL, p_body ->> 'reason');
    BEGIN
        UPDATE product_variants x
           SET stock = CASE WHEN v_set IS NOT NULL THEN v_set
                            WHEN v_delta IS NOT NULL THEN x.stock + v_delta
                            ELSE x.stock END,
               sku = CASE WHEN p_body ? 'sku' THEN p_body ->> 'sku' ELSE x.sku END,
               price_delta = coalesce((p_body ->> 'priceDelta')::bigint, x.price_delta),
               stopped = CASE WHEN p_body ? 'status' THEN p_body ->> 'status' = 'STOPPED'
                              ELSE x.stopped END,
               updated_at = now()
         WHERE x.id = p_variant
           AND (v_delta IS NULL OR x.stock + v_delta >= 0);
    EXCEPTION
        WHEN unique_violation THEN
            PERFORM cm__conflict('SKU_TAKEN', 'another variant of the product has this SKU');
        WHEN check_violation THEN
            PERFORM cm__invalid('sku, priceDelta or stock out of range');
    END;
    IF NOT FOUND THEN
        PERFORM cm__conflict('OUT_OF_STOCK',
            format('variant %s has %s in stock: it cannot go down by %s', p_variant,
                   (SELECT x.stock FROM product_variants x WHERE x.id = p_variant), -v_delta));
    END IF;
    PERFORM cm__stock_context(NULL, NULL, NULL, NULL);
    UPDATE products SET version = version + 1 WHERE id = p_product;

    SELECT string_agg(to_json(k)::text, ',' ORDER BY k) INTO v_fields
      FROM jsonb_object_keys(p_body) AS k;
    PERFORM cm__seller_audit('VARIANT_UPDATE', l.owner_id, p_actor, p_client, p_product, l.store_id,
                             l.relation, '"variantId":' || p_variant || ',"fields":['
                                         || coalesce(v_fields, '') || ']');
    RETURN cm__product_doc(p_product, true);
END
$$;

-- The stock ledger of a variant, newest first (sellers; as for the product).
-- -> {"items":[{"id","reason","delta","stockAfter","actorId","orderId","note","createdAt"}]}
-- The products of a store its owner, a manager of it or an ADMIN lists
-- (STOPPED ones too), newest first, with the seller's documents.  p_store
-- NULL: the caller's only store (cm__seller_store).  p_status NULL: all.
CREATE OR REPLACE FUNCTION cm_seller_products(p_actor bigint, p_store bigint, p_status text,
                                              p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
    v_ids   bigint[];
    v_total bigint;
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('ON_SALE', 'SOLD_OUT', 'STOPPED') THEN
        PERFORM cm__invalid('status must be ON_SALE, SOLD_OUT or STOPPED');
    END IF;
    IF p_page < 0 OR p_size NOT BETWEEN 1 AND 100 THEN
        PERFORM cm__invalid('page must be 0 or more and size 1 to 100');
    END IF;
    v_store := cm__seller_store(p_actor, p_store);
    SELECT count(*) INTO v_total FROM products p
     WHERE p.store_id = v_store AND (p_status IS NULL OR p.status = p_status);
    v_ids := ARRAY(SELECT p.id FROM products p
                    WHERE p.store_id = v_store AND (p_status IS NULL OR p.status = p_status)
                    ORDER BY p.id DESC
                    LIMIT p_size OFFSET p_page::bigint * p_size);
    RETURN '{"storeId":' || v_store || ',"items":['
        || coalesce((SELECT string_agg(cm__product_doc(x.id, true), ',' ORDER BY x.o)
                       FROM unnest(v_ids) WITH ORDINALITY AS x(id, o)), '')
        || '],"page":' || p_page || ',"size":' || p_size || ',"total":' || v_total || '}';
END
$$;

CREATE OR REPLACE FUNCTION cm_seller_stock_movements(p_actor bigint, p_product bigint,
                                                     p_variant bigint, p_limit int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
    v_doc   text;
BEGIN
    SELECT p.store_id INTO v_store FROM products p WHERE p.id = p_product;
    IF NOT FOUND OR cm__store_relation(p_actor, v_store) IS NULL THEN
        PERFORM cm__not_found('PRODUCT_NOT_FOUND', 'product', p_product);
    END IF;
    PERFORM FROM product_variants v WHERE v.id = p_variant AND v.product_id = p_product;
    IF NOT FOUND THEN
        PERFORM cm__not_found('VARIANT_NOT_FOUND', 'variant', p_variant);
    END IF;
    SELECT '{"items":' || coalesce('[' || string_agg('{"id":' || m.id || ',"reason":"' || m.reason
               || '","delta":' || m.delta || ',"stockAfter":' || m.stock_after
               || ',"actorId":' || coalesce(m.actor_id::text, 'null')
               || ',"orderId":' || coalesce(m.order_id::text, 'null')
               || ',"note":' || cm__json_or_null(m.note)
               || ',"createdAt":"' || cm__ts(m.created_at) || '"}', ',' ORDER BY m.id DESC) || ']',
               '[]') || '}'
      INTO v_doc
      FROM (SELECT * FROM stock_movements x WHERE x.variant_id = p_variant
             ORDER BY x.id DESC LIMIT greatest(1, least(coalesce(p_limit, 50), 200))) m;
    RETURN v_doc;
END
$$;
