-- 018_images: a product's images (issue 11 §3).  The bytes live in files
-- named by their content, <sha256>.<ext> under commerce_image_dir, and
-- nginx serves them; a row here says which product shows which file at
-- which position.  One file may back rows of several products (the same
-- bytes uploaded twice): it is removed when its last row goes (the
-- functions say so under a lock on the hash, sql/README.md "Images").
--
-- position: 1 .. 10, dense, unique per product (deferred, so that a
-- reorder may move rows through each other's positions in one statement).
-- type, width and height are what cm_image_probe read from the bytes,
-- never the client's Content-Type; bytes the file's size (<= 5 MiB).
CREATE TABLE product_images (
    id         bigserial   PRIMARY KEY,
    product_id bigint      NOT NULL REFERENCES products (id),
    position   smallint    NOT NULL CHECK (position BETWEEN 1 AND 10),
    hash       text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    type       text        NOT NULL CHECK (type IN ('JPEG', 'PNG', 'WEBP')),
    width      integer     NOT NULL CHECK (width > 0),
    height     integer     NOT NULL CHECK (height > 0),
    bytes      integer     NOT NULL CHECK (bytes BETWEEN 1 AND 5242880),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT product_images_position_key UNIQUE (product_id, position)
        DEFERRABLE INITIALLY DEFERRED
);

-- Is a file still shown by any product (before it is removed)?
CREATE INDEX product_images_hash_idx ON product_images (hash);

-- The sellers' image changes in the audit (the list of 014_catalogue.sql
-- and three more).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check
    CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH', 'REFRESH_REUSE', 'LOGOUT',
                     'WITHDRAW', 'ROLE_CHANGE', 'EVENT_REPLAY', 'STORE_CREATE', 'MANAGER_ASSIGN',
                     'PRODUCT_CREATE', 'PRODUCT_UPDATE', 'VARIANT_UPDATE', 'CATEGORY_CHANGE',
                     'PRODUCT_IMAGE_ADD', 'PRODUCT_IMAGE_ORDER', 'PRODUCT_IMAGE_DELETE'));
