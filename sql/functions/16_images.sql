-- Images of sellers' products (tables 018_images.sql; sql/README.md
-- "Images", where the order of file and row operations that leaves no
-- orphan and no missing file is argued).  The module probes the bytes
-- (cm_image_probe), hashes them and links <hash>.<ext> on a thread before
-- it calls cm_seller_image_add; the functions below keep the rows, say
-- which files no row shows any more ("unlink"), and answer the last
-- question before a file goes (cm_image_file_used).
--
-- Every change locks the product first (cm__seller_product_lock: another
-- store's product is PRODUCT_NOT_FOUND, as an unknown one), so the count
-- of 10 and the dense positions hold under concurrent uploads, and takes a
-- transaction lock on each hash it adds or drops, so that the question
-- "does any row still show this file?" has one answer at a time.

-- The file of a row: <hash>.<ext>, its URL '/images/' || that.
CREATE OR REPLACE FUNCTION cm__image_file(p_hash text, p_type text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_hash || CASE p_type WHEN 'JPEG' THEN '.jpg' WHEN 'PNG' THEN '.png'
                                 ELSE '.webp' END
$$;

CREATE OR REPLACE FUNCTION cm__image_hash_lock(p_hash text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('image:' || p_hash, 0))
$$;

-- {"productId","images":[{"id","url","position","type","width","height",
-- "bytes"}]} of product p_product, by position.
CREATE OR REPLACE FUNCTION cm__images_doc(p_product bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"productId":' || p_product || ',"images":[' || array_to_string(ARRAY(
               SELECT '{"id":' || i.id || ',"url":"/images/' || cm__image_file(i.hash, i.type)
                   || '","position":' || i.position || ',"type":"' || i.type
                   || '","width":' || i.width || ',"height":' || i.height
                   || ',"bytes":' || i.bytes || '}'
                 FROM product_images i
                WHERE i.product_id = p_product
                ORDER BY i.product_id, i.position), ',') || ']}'
$$;

-- Seller p_actor adds an image to product p_product, last.
-- -> images document | PRODUCT_NOT_FOUND | IMAGE_LIMIT (10 already) |
-- INVALID_REQUEST.  Audit PRODUCT_IMAGE_ADD.
CREATE OR REPLACE FUNCTION cm_seller_image_add(p_actor bigint, p_product bigint, p_hash text,
                                               p_type text, p_width integer, p_height integer,
                                               p_bytes integer, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_lock record;
    v_n integer;
    v_id bigint;
BEGIN
    v_lock := cm__seller_product_lock(p_actor, p_product);
    SELECT count(*) INTO v_n FROM product_images WHERE product_id = p_product;
    IF v_n >= 10 THEN
        RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'IMAGE_LIMIT',
            DETAIL = format('product %s has 10 images already: delete one first', p_product);
    END IF;
    IF p_hash !~ '^[0-9a-f]{64}$' OR p_type NOT IN ('JPEG', 'PNG', 'WEBP')
       OR p_width < 1 OR p_height < 1 OR p_bytes NOT BETWEEN 1 AND 5242880 THEN
        PERFORM cm__invalid('not an image');
    END IF;
    PERFORM cm__image_hash_lock(p_hash);
    INSERT INTO product_images (product_id, position, hash, type, width, height, bytes)
    VALUES (p_product, v_n + 1, p_hash, p_type, p_width, p_height, p_bytes)
    RETURNING id INTO v_id;
    UPDATE products SET updated_at = now() WHERE id = p_product;
    PERFORM cm__seller_audit('PRODUCT_IMAGE_ADD', v_lock.owner_id, p_actor, p_client, p_product,
                             v_lock.store_id, v_lock.relation,
                             '"imageId":' || v_id || ',"hash":"' || p_hash || '"');
    RETURN cm__images_doc(p_product);
END
$$;

-- -> images document | PRODUCT_NOT_FOUND
CREATE OR REPLACE FUNCTION cm_seller_images(p_actor bigint, p_product bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_store bigint;
BEGIN
    SELECT p.store_id INTO v_store FROM products p WHERE p.id = p_product;
    IF NOT FOUND OR cm__store_relation(p_actor, v_store) IS NULL THEN
        PERFORM cm__not_found('PRODUCT_NOT_FOUND', 'product', p_product);
    END IF;
    RETURN cm__images_doc(p_product);
END
$$;

-- Seller p_actor orders the images of product p_product: p_ids is every
-- image id of the product exactly once, first shown first.
-- -> images document | PRODUCT_NOT_FOUND | INVALID_REQUEST (not that set)
CREATE OR REPLACE FUNCTION cm_seller_image_order(p_actor bigint, p_product bigint,
                                                 p_ids bigint[], p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_lock record;
BEGIN
    v_lock := cm__seller_product_lock(p_actor, p_product);
    IF p_ids IS NULL OR array_position(p_ids, NULL) IS NOT NULL
       OR cardinality(p_ids) <> (SELECT count(DISTINCT x) FROM unnest(p_ids) x)
       OR ARRAY(SELECT x FROM unnest(p_ids) x ORDER BY x)
          IS DISTINCT FROM ARRAY(SELECT i.id FROM product_images i
                                  WHERE i.product_id = p_product ORDER BY i.id) THEN
        PERFORM cm__invalid('ids must list every image of the product exactly once');
    END IF;
    UPDATE product_images i SET position = o.n
      FROM unnest(p_ids) WITH ORDINALITY AS o(id, n)
     WHERE i.id = o.id AND i.position <> o.n;
    UPDATE products SET updated_at = now() WHERE id = p_product;
    PERFORM cm__seller_audit('PRODUCT_IMAGE_ORDER', v_lock.owner_id, p_actor, p_client, p_product,
                             v_lock.store_id, v_lock.relation,
                             '"imageIds":' || to_json(p_ids)::text);
    RETURN cm__images_doc(p_product);
END
$$;

-- Seller p_actor deletes image p_image of product p_product; the later
-- ones move up.  -> {"productId","images":[..],"unlink":["<hash>.<ext>"]}
-- ("unlink": the file, when no row shows it any more) | PRODUCT_NOT_FOUND
-- | IMAGE_NOT_FOUND.  Audit PRODUCT_IMAGE_DELETE.
CREATE OR REPLACE FUNCTION cm_seller_image_delete(p_actor bigint, p_product bigint,
                                                  p_image bigint, p_client text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_lock record;
    v_row product_images;
    v_doc text;
BEGIN
    v_lock := cm__seller_product_lock(p_actor, p_product);
    SELECT * INTO v_row FROM product_images WHERE id = p_image AND product_id = p_product;
    IF NOT FOUND THEN
        PERFORM cm__not_found('IMAGE_NOT_FOUND', 'image', p_image);
    END IF;
    PERFORM cm__image_hash_lock(v_row.hash);
    DELETE FROM product_images WHERE id = p_image;
    UPDATE product_images SET position = position - 1
     WHERE product_id = p_product AND position > v_row.position;
    UPDATE products SET updated_at = now() WHERE id = p_product;
    PERFORM cm__seller_audit('PRODUCT_IMAGE_DELETE', v_lock.owner_id, p_actor, p_client, p_product,
                             v_lock.store_id, v_lock.relation,
                             '"imageId":' || p_image || ',"hash":"' || v_row.hash || '"');
    v_doc := cm__images_doc(p_product);
    RETURN left(v_doc, -1) || ',"unlink":['
        || CASE WHEN EXISTS (SELECT 1 FROM product_images WHERE hash = v_row.hash) THEN ''
                ELSE '"' || cm__image_file(v_row.hash, v_row.type) || '"' END
        || ']}';
END
$$;

-- Does any row still show the file of hash p_hash?  Asked by whoever has
-- just moved the file aside (a delete's unlink, the sweep): true, and the
-- file goes back; false, and it goes.  Any row committed later belongs to
-- an upload that checks its file after its commit and links it again.
CREATE OR REPLACE FUNCTION cm_image_file_used(p_hash text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM product_images i WHERE i.hash = p_hash)
$$;

-- The sweep's question for many files at once: which of p_hashes no row
-- shows (asked before a file is moved aside, and again after, as
-- cm_image_file_used is: only the second answer decides).
CREATE OR REPLACE FUNCTION cm_image_files_unused(p_hashes text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(h ORDER BY h), '{}')
      FROM unnest(p_hashes) h
     WHERE NOT EXISTS (SELECT 1 FROM product_images i WHERE i.hash = h)
$$;
