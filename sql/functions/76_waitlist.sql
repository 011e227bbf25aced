-- waitlist: the first-come restock queue of a SOLD_OUT variant (issue 12
-- section 4; table waitlist_entries in 025_waitlist.sql).  Repeatable file:
-- see 00_common.sql.
--
-- A buyer joins the line of a sold-out variant (cm_waitlist_join).  Any
-- stock that comes back to the variant (a seller's restock, an order
-- cancelled, expired or failed: every UPDATE that raises a variant's
-- stock, through the trigger product_variants_waitlist) is held for the
-- line in arrival order, in the transaction that raised it: each WAITING
-- entry in turn gets min(its quantity, what is free) (a partial hold when
-- less is free than the first wants: nothing stays on sale while anyone
-- waits), the held units leave the variant's stock (ledger WAITLIST_HOLD)
-- and the holder is told (outbox waitlist.held, aggregate ('user', id)).
-- A hold lasts commerce_waitlist_hold from held_at: the module passes the
-- length to the functions that need it (the list, the expiry job).  Until
-- the job passes it on, its holder may still order it.
--
-- The held units come back to the variant (ledger WAITLIST_RELEASE) when
-- the holder orders it (cm__waitlist_take, called by cm_order_create
-- before it reserves stock: the order takes them at once), leaves
-- (cm_waitlist_leave) or lets the hold run out (cm_waitlist_expire); in
-- the last two cases they pass straight to the next in line, and what
-- nobody waits for goes back on sale.
--
-- Lock order: the product (FOR NO KEY UPDATE, like every writer of its
-- variants) -> its variant -> the entries -> the user (join) -> the
-- outbox's advisory lock.  The trigger runs under the product lock its
-- writer already holds.

-- ---------------------------------------------------------------------------
-- Helpers

-- Moves a variant's stock by p_delta with the ledger reason p_reason, and
-- puts back the stock context the caller had set (the trigger runs in the
-- middle of other writers' statements).
CREATE OR REPLACE FUNCTION cm__waitlist_stock(p_variant bigint, p_delta int, p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_ctx text[] := ARRAY[current_setting('commerce.stock_reason', true),
                          current_setting('commerce.stock_actor', true),
                          current_setting('commerce.stock_order', true),
                          current_setting('commerce.stock_note', true)];
BEGIN
    PERFORM cm__stock_context(p_reason, NULL, NULL, NULL);
    UPDATE product_variants SET stock = stock + p_delta, updated_at = now()
     WHERE id = p_variant;
    PERFORM set_config('commerce.stock_reason', coalesce(v_ctx[1], ''), true);
    PERFORM set_config('commerce.stock_actor', coalesce(v_ctx[2], ''), true);
    PERFORM set_config('commerce.stock_order', coalesce(v_ctx[3], ''), true);
    PERFORM set_config('commerce.stock_note', coalesce(v_ctx[4], ''), true);
END
$$;

-- Serves the line of variant p_variant from its stock, leaving p_keep
-- units (an order about to take them).  The caller holds the product.
-- A withdrawn buyer's entry is passed over (it keeps its place, unserved).
-- Returns the units held.
CREATE OR REPLACE FUNCTION cm__waitlist_serve(p_variant bigint, p_keep int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v      record;
    e      record;
    v_free int;
    v_give int;
    v_held int := 0;
BEGIN
    SELECT x.id, x.product_id, x.stock, p.name INTO v
      FROM product_variants x JOIN products p ON p.id = x.product_id
     WHERE x.id = p_variant;
    v_free := v.stock - p_keep;
    IF v_free <= 0 THEN
        RETURN 0;
    END IF;
    FOR e IN
        SELECT w.id, w.user_id, w.quantity FROM waitlist_entries w
          JOIN users u ON u.id = w.user_id AND u.status = 'ACTIVE'
         WHERE w.variant_id = p_variant AND w.status = 'WAITING'
         ORDER BY w.id
           FOR UPDATE OF w
    LOOP
        EXIT WHEN v_free = 0;
        v_give := least(e.quantity, v_free);
        UPDATE waitlist_entries
           SET status = 'HELD', held = v_give, held_at = now(), updated_at = now()
         WHERE id = e.id;
        PERFORM cm__outbox_emit('user', e.user_id, 'waitlist.held',
            jsonb_build_object('userId', e.user_id, 'entryId', e.id, 'productId', v.product_id,
                               'variantId', v.id, 'productName', v.name, 'quantity', v_give,
                               'wanted', e.quantity, 'heldAt', cm__ts(now())));
        v_free := v_free - v_give;
        v_held := v_held + v_give;
    END LOOP;
    IF v_held > 0 THEN
        PERFORM cm__waitlist_stock(p_variant, -v_held, 'WAITLIST_HOLD');
    END IF;
    RETURN v_held;
END
$$;

-- Ends the live entry p_entry (locked by the caller, under its product's
-- lock) as p_status (LEFT, EXPIRED): a hold's units go back to the variant
-- and on to the next in line.
CREATE OR REPLACE FUNCTION cm__waitlist_end(p_entry bigint, p_status text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    SELECT w.variant_id, w.held INTO e FROM waitlist_entries w WHERE w.id = p_entry;
    UPDATE waitlist_entries SET status = p_status, held = 0, updated_at = now()
     WHERE id = p_entry;
    IF e.held > 0 THEN
        PERFORM cm__waitlist_stock(e.variant_id, e.held, 'WAITLIST_RELEASE');
        PERFORM cm__waitlist_serve(e.variant_id, 0);
    END IF;
END
$$;

-- The entry document.  p_hold: the hold's length in seconds (heldUntil).
-- {"id","productId","variantId","name","optionValues","quantity","status",
--  "position" (WAITING: 1 = next),"held","heldUntil" (HELD),"createdAt"}
CREATE OR REPLACE FUNCTION cm__waitlist_doc(p_entry bigint, p_hold int) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"id":' || w.id || ',"productId":' || w.product_id || ',"variantId":' || w.variant_id
        || ',"name":' || to_json(p.name)::text
        || ',"optionValues":' || to_json(v.option_values)::text
        || ',"quantity":' || w.quantity || ',"status":"' || w.status || '"'
        || CASE WHEN w.status = 'WAITING'
                THEN ',"position":' || (SELECT count(*) FROM waitlist_entries x
                                         WHERE x.variant_id = w.variant_id
                                           AND x.status = 'WAITING' AND x.id <= w.id)
                ELSE '' END
        || ',"held":' || w.held
        || CASE WHEN w.status = 'HELD'
                THEN ',"heldUntil":"' || cm__ts(w.held_at + make_interval(secs => p_hold)) || '"'
                ELSE '' END
        || ',"createdAt":"' || cm__ts(w.created_at) || '"}'
      FROM waitlist_entries w
      JOIN product_variants v ON v.id = w.variant_id
      JOIN products p ON p.id = w.product_id
     WHERE w.id = p_entry
$$;

-- ---------------------------------------------------------------------------
-- The restock: any stock that comes back feeds the line first

CREATE OR REPLACE FUNCTION cm__waitlist_restocked() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The queue's own moves, and a direct write of products.stock passed
    -- on by its trigger (depth 2: an operator's), do not feed the line.
    IF pg_trigger_depth() > 1 OR NEW.stopped
       OR current_setting('commerce.stock_reason', true) LIKE 'WAITLIST%' THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM waitlist_entries w
                WHERE w.variant_id = NEW.id AND w.status = 'WAITING') THEN
        PERFORM cm__waitlist_serve(NEW.id, 0);
    END IF;
    RETURN NULL;
END
$$;

-- After product_variants_changed (triggers fire by name): the restock's
-- ledger row comes before the hold's.
CREATE OR REPLACE TRIGGER product_variants_waitlist
    AFTER UPDATE OF stock ON product_variants
    FOR EACH ROW WHEN (NEW.stock > OLD.stock)
    EXECUTE FUNCTION cm__waitlist_restocked();

-- ---------------------------------------------------------------------------
-- Orders: the holder's order takes its hold (cm_order_create calls this
-- under its product locks, before it reserves the stock).  Each HELD entry
-- of p_user for an ordered variant becomes ORDERED; its units go back to
-- the variant for the order to take, and what the order leaves of them
-- (it ordered fewer than held) goes on to the next in line.

CREATE OR REPLACE FUNCTION cm__waitlist_take(p_user bigint, p_variants bigint[],
                                             p_quantities int[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e record;
BEGIN
    FOR e IN
        SELECT w.id, w.variant_id, w.held, u.qty
          FROM waitlist_entries w
          JOIN unnest(p_variants, p_quantities) AS u(vid, qty) ON u.vid = w.variant_id
         WHERE w.user_id = p_user AND w.status = 'HELD'
         ORDER BY w.id
           FOR UPDATE OF w
    LOOP
        UPDATE waitlist_entries SET status = 'ORDERED', held = 0, updated_at = now()
         WHERE id = e.id;
        PERFORM cm__waitlist_stock(e.variant_id, e.held, 'WAITLIST_RELEASE');
        PERFORM cm__waitlist_serve(e.variant_id, e.qty);
    END LOOP;
END
$$;

-- ---------------------------------------------------------------------------
-- The API

-- Join the line of variant p_variant of product p_product for p_quantity
-- units (1..999).  The variant must be sold out (stock 0) and on sale;
-- one live (WAITING or HELD) entry per buyer and variant, 50 live entries
-- per buyer.  -> the entry document (201).
CREATE OR REPLACE FUNCTION cm_waitlist_join(p_user bigint, p_product bigint, p_variant bigint,
                                            p_quantity int) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v       record;
    v_entry bigint;
BEGIN
    IF p_quantity IS NULL OR p_quantity NOT BETWEEN 1 AND 999 THEN
        PERFORM cm__invalid('quantity must be an integer between 1 and 999');
    END IF;
    PERFORM FROM products p WHERE p.id = p_product FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('PRODUCT_NOT_FOUND', 'product', p_product);
    END IF;
    SELECT x.stock, x.stopped OR p.stopped AS stopped INTO v
      FROM product_variants x JOIN products p ON p.id = x.product_id
     WHERE x.id = p_variant AND x.product_id = p_product;
    IF NOT FOUND THEN
        PERFORM cm__not_found('VARIANT_NOT_FOUND', 'variant', p_variant);
    END IF;
    IF v.stopped THEN
        PERFORM cm__conflict('PRODUCT_NOT_ON_SALE',
            format('variant %s is not on sale', p_variant));
    END IF;
    IF v.stock > 0 THEN
        PERFORM cm__conflict('VARIANT_IN_STOCK',
            format('variant %s has %s in stock: order it', p_variant, v.stock));
    END IF;
    PERFORM FROM users u WHERE u.id = p_user FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        PERFORM cm__not_found('USER_NOT_FOUND', 'user', p_user);
    END IF;
    IF EXISTS (SELECT 1 FROM waitlist_entries w WHERE w.user_id = p_user
                  AND w.variant_id = p_variant AND w.status IN ('WAITING', 'HELD')) THEN
        PERFORM cm__conflict('WAITLIST_DUPLICATE',
            format('you already wait for variant %s', p_variant));
    END IF;
    IF (SELECT count(*) FROM waitlist_entries w WHERE w.user_id = p_user
           AND w.status IN ('WAITING', 'HELD')) >= 50 THEN
        PERFORM cm__conflict('WAITLIST_FULL', 'you already wait for 50 variants');
    END IF;
    INSERT INTO waitlist_entries (user_id, product_id, variant_id, quantity)
    VALUES (p_user, p_product, p_variant, p_quantity)
    RETURNING id INTO v_entry;
    RETURN cm__waitlist_doc(v_entry, 0);
END
$$;

-- The buyer's entries, newest first, the latest 100.  p_hold: the hold's
-- length in seconds.  -> {"items":[<entry>...]}
CREATE OR REPLACE FUNCTION cm_waitlist_list(p_user bigint, p_hold int) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT '{"items":[' || coalesce(string_agg(cm__waitlist_doc(w.id, p_hold), ','
                                               ORDER BY w.id DESC), '') || ']}'
      FROM (SELECT x.id FROM waitlist_entries x WHERE x.user_id = p_user
             ORDER BY x.id DESC LIMIT 100) AS w
$$;

-- Leave: a WAITING or HELD entry of p_user becomes LEFT; a hold's units
-- pass to the next in line at once.  WAITLIST_ENTRY_NOT_FOUND (also
-- another buyer's), WAITLIST_ENTRY_CLOSED (already ORDERED, EXPIRED or
-- LEFT).  -> ''
CREATE OR REPLACE FUNCTION cm_waitlist_leave(p_user bigint, p_entry bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_product bigint;
    v_status  text;
BEGIN
    -- an entry's product never changes: read unlocked, then lock in order
    SELECT w.product_id INTO v_product FROM waitlist_entries w
     WHERE w.id = p_entry AND w.user_id = p_user;
    IF NOT FOUND THEN
        PERFORM cm__not_found('WAITLIST_ENTRY_NOT_FOUND', 'waitlist entry', p_entry);
    END IF;
    PERFORM FROM products p WHERE p.id = v_product FOR NO KEY UPDATE;
    SELECT w.status INTO v_status FROM waitlist_entries w WHERE w.id = p_entry FOR UPDATE;
    IF v_status NOT IN ('WAITING', 'HELD') THEN
        PERFORM cm__conflict('WAITLIST_ENTRY_CLOSED',
            format('waitlist entry %s is %s', p_entry, v_status));
    END IF;
    PERFORM cm__waitlist_end(p_entry, 'LEFT');
    RETURN '';
END
$$;

-- The job: holds older than p_hold seconds EXPIRE and pass on, product by
-- product (at most p_batch products a run).  Products another instance
-- (or a writer) holds are skipped (SKIP LOCKED) and come again next run.
-- -> int (holds expired)
CREATE OR REPLACE FUNCTION cm_waitlist_expire(p_hold int, p_batch int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    r          record;
    e          record;
    n          int := 0;
    v_deadline timestamptz := now() - make_interval(secs => p_hold);
BEGIN
    FOR r IN
        SELECT DISTINCT w.product_id FROM waitlist_entries w
         WHERE w.status = 'HELD' AND w.held_at <= v_deadline
         ORDER BY w.product_id
         LIMIT p_batch
    LOOP
        PERFORM FROM products p WHERE p.id = r.product_id FOR NO KEY UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        FOR e IN
            SELECT w.id FROM waitlist_entries w
             WHERE w.product_id = r.product_id AND w.status = 'HELD'
               AND w.held_at <= v_deadline
             ORDER BY w.id
               FOR UPDATE
        LOOP
            PERFORM cm__waitlist_end(e.id, 'EXPIRED');
            n := n + 1;
        END LOOP;
    END LOOP;
    RETURN n;
END
$$;
