-- search: GET /api/v1/products with q, categoryId, minPrice, maxPrice,
-- status, sort (README.md, "Search"; the column and its index:
-- 017_search.sql).  Repeatable file: see 00_common.sql.

-- The text a name is searched in, and a query normalised the same way:
-- lower case (ASCII under the C collation; Hangul has no case), white
-- space removed, so '가방' is found in '여성가죽 가방' and '여성가죽가방'.
CREATE OR REPLACE FUNCTION cm__search_norm(p text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lower(translate(p, E' \t\n\r\f\x0B\u00A0\u3000', ''))
$$;

-- The distinct characters and character bigrams of a normalised text.
CREATE OR REPLACE FUNCTION cm__search_grams(p text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT g ORDER BY g), '{}')
      FROM (SELECT substr(n, i, 1) AS g
              FROM (SELECT cm__search_norm(p) AS n) s,
                   generate_series(1, char_length(n)) i
            UNION ALL
            SELECT substr(n, i, 2)
              FROM (SELECT cm__search_norm(p) AS n) s,
                   generate_series(1, char_length(n) - 1) i) t
$$;

-- The grams a normalised query needs: its bigrams, or its one character.
CREATE OR REPLACE FUNCTION cm__search_query_grams(p_norm text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN char_length(p_norm) = 1 THEN ARRAY[p_norm]
                ELSE ARRAY(SELECT DISTINCT substr(p_norm, i, 2)
                             FROM generate_series(1, char_length(p_norm) - 1) i)
           END
$$;

-- A product's search_grams: its name's grams, and for a SOLD_OUT product
-- (no variant on sale; status is generated, not yet computed in a BEFORE
-- trigger) the pseudo-gram E'\x01sold_out', which no query can hold (a
-- query has no control character): status=SOLD_OUT, a tenth of the
-- catalogue that only the heap could check, becomes one more gram of the
-- GIN intersection.  A product that sells out or is restocked rewrites
-- its grams (the products row is updated then anyway).
CREATE OR REPLACE FUNCTION cm__search_row_grams(p_name text,
    p_on_sale_variants integer) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT cm__search_grams(p_name)
           || CASE WHEN p_on_sale_variants = 0 THEN ARRAY[E'\x01sold_out']
                   ELSE '{}'::text[] END
$$;

CREATE OR REPLACE FUNCTION cm__products_search_grams() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_grams := cm__search_row_grams(NEW.name, NEW.on_sale_variants);
    RETURN NEW;
END
$$;

-- BEFORE triggers fire in the order of their names: these come after
-- products_insert_count and products_stock_write, which set
-- on_sale_variants.  An update rewrites the grams only when the name
-- changes or the product sells out or comes back: every order writes
-- on_sale_variants (functions/15_catalogue.sql), and a direct write of
-- products.stock changes it without naming it.
CREATE OR REPLACE TRIGGER products_search_grams
    BEFORE INSERT ON products
    FOR EACH ROW EXECUTE FUNCTION cm__products_search_grams();

CREATE OR REPLACE TRIGGER products_update_search_grams
    BEFORE UPDATE ON products
    FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name
          OR (OLD.on_sale_variants = 0)
             IS DISTINCT FROM (NEW.on_sale_variants = 0))
    EXECUTE FUNCTION cm__products_search_grams();

-- The rows written before the trigger, or under an older rule (this file
-- is applied again exactly when it changes).
UPDATE products SET search_grams = cm__search_row_grams(name, on_sale_variants)
 WHERE search_grams
       IS DISTINCT FROM cm__search_row_grams(name, on_sale_variants);

-- A page of the listed (not STOPPED) products matching every filter given
-- (NULL: none), as cm_product_list's: {"items","page","size","total"},
-- plus "totalExact".  Bounded work for any query at 1M products
-- (README.md, "Search", measured): every match of a common gram is most
-- of the table's pages (a GIN index has no index-only scan), so a search
-- never reads them all:
-- - the total is counted up to 10,000 (c_count); more matches answer
--   "total": 10000, "totalExact": false ("10,000+");
-- - pages reach the first 1,000 results (c_window): page * size + size
--   beyond it is refused (INVALID_REQUEST);
-- - relevance with q of 2+ characters ranks the 1,000 newest matches
--   (all of them when there are no more): where the query starts in the
--   name, then the shorter name, then the newer.  A 1-character query
--   ranks newest first; without q, by id (the list's order).
-- price (ascending, then id), newest, sales (units of the last 30 days,
-- then newest) come from an index in that order.
-- status=SOLD_OUT is a gram too (cm__search_row_grams).  Filters are
-- parameters of one dynamic query (EXECUTE .. USING), planned for the
-- values given; the sort is one of four fixed texts.
CREATE OR REPLACE FUNCTION cm_product_search(p_q text, p_category bigint,
    p_min bigint, p_max bigint, p_status text, p_sort text,
    p_page int, p_size int) RETURNS text
LANGUAGE plpgsql STABLE
-- plans of a few ms each, priced above jit_above_cost at 1M rows: JIT
-- compiling them cost more than it saved (25-100 ms)
SET jit = off AS $$
DECLARE
    c_count  CONSTANT int := 10000;
    c_window CONSTANT int := 1000;
    v_norm   text := cm__search_norm(p_q);
    v_grams  text[];
    v_cats   bigint[];
    v_where  text := 'NOT p.stopped';
    v_order  text;
    v_offset bigint;
    v_ids    bigint[];
    v_sold   bigint[];
    v_rest   bigint[];
    v_total  bigint;
BEGIN
    IF p_page IS NULL OR p_page < 0 OR p_size IS NULL OR p_size < 1 OR p_size > 100
       OR (p_q IS NOT NULL AND (v_norm = '' OR char_length(p_q) > 100))
       OR (p_min IS NOT NULL AND p_min < 0) OR (p_max IS NOT NULL AND p_max < 0)
       OR p_min > p_max
       OR (p_status IS NOT NULL AND p_status NOT IN ('ON_SALE', 'SOLD_OUT'))
       OR p_sort IS NULL OR p_sort NOT IN ('relevance', 'price', 'newest', 'sales')
    THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = 'invalid search parameters';
    END IF;
    v_offset := p_page::bigint * p_size;
    IF v_offset + p_size > c_window THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST',
            DETAIL = format('page * size + size must not exceed %s', c_window);
    END IF;
    IF v_norm IS NOT NULL THEN
        v_grams := cm__search_query_grams(v_norm);
        -- a query of 1 or 2 characters is its one gram: the index is exact
        -- (a name holds the gram iff it holds the query); longer ones are
        -- rechecked (their bigrams may be scattered in the name)
        v_where := v_where
                   || CASE WHEN char_length(v_norm) > 2
                           THEN ' AND strpos(cm__search_norm(p.name), $2) > 0'
                           ELSE '' END;
    END IF;
    IF p_status = 'SOLD_OUT' THEN
        -- its pseudo-gram (cm__search_row_grams); p.status is checked too
        v_grams := coalesce(v_grams, '{}') || E'\x01sold_out'::text;
    END IF;
    IF v_grams IS NOT NULL THEN
        v_where := v_where || ' AND p.search_grams @> $1';
    END IF;
    IF p_category IS NOT NULL THEN
        -- the category and its descendants (3 levels at most)
        WITH RECURSIVE c AS (
            SELECT id FROM categories WHERE id = p_category
            UNION ALL
            SELECT k.id FROM categories k JOIN c ON k.parent_id = c.id)
        SELECT array_agg(id) INTO v_cats FROM c;
        IF v_cats IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'CATEGORY_NOT_FOUND',
                DETAIL = format('category %s not found', p_category);
        END IF;
        v_where := v_where || ' AND p.category_id = ANY($3)';
    END IF;
    IF p_min IS NOT NULL THEN
        v_where := v_where || ' AND p.price >= $4';
    END IF;
    IF p_max IS NOT NULL THEN
        v_where := v_where || ' AND p.price <= $5';
    END IF;
    IF p_status IS NOT NULL THEN
        v_where := v_where || ' AND p.status = $6';
    END IF;

    -- the total, counted up to one more than c_count (the GIN index then
    -- the heap in its order, stopping there)
    EXECUTE 'SELECT count(*) FROM (SELECT FROM products p WHERE '
            || v_where || ' LIMIT $9 + 1) c'
       INTO v_total
      USING v_grams, v_norm, v_cats, p_min, p_max, p_status,
            v_offset, p_size, c_count;

    IF p_sort = 'relevance' AND char_length(v_norm) > 1 THEN
        -- the window's newest matches (the GIN index then a sort when they
        -- are few, the id index backwards filtered by the grams when they
        -- are many: the planner's choice), ranked
        EXECUTE 'SELECT ARRAY(SELECT w.id FROM (SELECT p.id, p.name'
                || ' FROM products p WHERE ' || v_where
                || ' ORDER BY p.id DESC LIMIT $9) w'
                || ' ORDER BY strpos(cm__search_norm(w.name), $2),'
                || ' char_length(w.name), w.id DESC OFFSET $7 LIMIT $8)'
           INTO v_ids
          USING v_grams, v_norm, v_cats, p_min, p_max, p_status,
                v_offset, p_size, c_window;
    ELSE
        -- every other order has an index: the page from the index in the
        -- sort's order filtered by the grams, or from the GIN index then
        -- a sort when the matches are few (the planner's choice, planned
        -- for these values)
        v_order := CASE p_sort
            WHEN 'price' THEN 'p.price, p.id'
            -- one character says too little to rank by: newest
            WHEN 'relevance' THEN CASE WHEN v_norm IS NULL THEN 'p.id'
                                       ELSE 'p.id DESC' END
            ELSE 'p.id DESC'
        END;
        IF p_sort = 'sales' THEN
            -- the matches sold in the last 30 days first (few: the sales
            -- of a month, not the catalogue), by units then newest; then
            -- the unsold ones, newest first, from the index
            EXECUTE 'SELECT ARRAY(SELECT p.id FROM (SELECT product_id,'
                    || ' sum(quantity) AS units FROM product_sales_daily'
                    || ' WHERE day > cm__sales_day(now()) - 30'
                    || ' GROUP BY product_id HAVING sum(quantity) > 0) s'
                    || ' JOIN products p ON p.id = s.product_id'
                    || ' WHERE ' || v_where
                    || ' ORDER BY s.units DESC, p.id DESC LIMIT $9)'
               INTO v_sold
              USING v_grams, v_norm, v_cats, p_min, p_max, p_status,
                    v_offset, p_size, c_window;
            v_ids := v_sold[v_offset + 1 : v_offset + p_size];
            IF coalesce(cardinality(v_ids), 0) < p_size THEN
                EXECUTE 'SELECT ARRAY(SELECT p.id FROM products p WHERE '
                        || v_where || ' AND p.id NOT IN (SELECT unnest($10))'
                        || ' ORDER BY p.id DESC OFFSET $7 LIMIT $8)'
                   INTO v_rest
                  USING v_grams, v_norm, v_cats, p_min, p_max, p_status,
                        greatest(v_offset - cardinality(v_sold), 0),
                        p_size - coalesce(cardinality(v_ids), 0), c_window,
                        v_sold;
                v_ids := coalesce(v_ids, '{}') || v_rest;
            END IF;
        ELSE
            EXECUTE 'SELECT ARRAY(SELECT p.id FROM products p WHERE ' || v_where
                    || ' ORDER BY ' || v_order || ' OFFSET $7 LIMIT $8)'
               INTO v_ids
              USING v_grams, v_norm, v_cats, p_min, p_max, p_status,
                    v_offset, p_size, c_window;
        END IF;
    END IF;
    -- in the page's order (cm__product_docs orders by id)
    RETURN '{"items":[' || array_to_string(ARRAY(
               SELECT cm__product_doc(u.id, false)
                 FROM unnest(v_ids) WITH ORDINALITY u (id, n)
                ORDER BY u.n), ',')
        || '],"page":' || p_page || ',"size":' || p_size
        || ',"total":' || least(v_total, c_count)
        || ',"totalExact":' || (v_total <= c_count) || '}';
END
$$;
