-- 010_coupons: first-come coupon campaigns and the coupons issued to users.
-- The functions are in functions/70_coupon.sql.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).
-- Two new tables, nothing else changes: an existing database upgrades in
-- place.
--
-- Over-issuing is impossible by the constraints alone, whatever writes the
-- rows (sql/README.md, "Coupons"):
--   * per campaign: issued_quantity <= total_quantity (the counter), and
--     every user coupon carries issue_no in 1..total_quantity, unique per
--     campaign, so a campaign never has more than total_quantity rows;
--   * per user: every user coupon carries seq in 1..per_user_limit, unique
--     per (campaign, user), so a user never holds more than per_user_limit
--     coupons of a campaign.
-- The two limits reach the user coupon row through a composite foreign key
-- to the campaign (campaign_id, total_quantity, per_user_limit), so a row
-- cannot claim larger limits than its campaign has, and a campaign's limits
-- cannot change once it has issued (NO ACTION).

-- Campaigns are few and their row is updated by every issue (the counter):
-- fillfactor leaves room for HOT updates (issued_quantity is in no index).
CREATE TABLE coupon_campaigns (
    id               bigserial   PRIMARY KEY,
    name             text        NOT NULL
        CONSTRAINT coupon_campaigns_name_check
        CHECK (char_length(name) BETWEEN 1 AND 100 AND name ~ '\S' AND name !~ '[[:cntrl:]]'),
    discount_type    text        NOT NULL
        CONSTRAINT coupon_campaigns_discount_type_check CHECK (discount_type IN ('FIXED', 'RATE')),
    -- FIXED: an amount (KRW); RATE: a percentage
    discount_value   bigint      NOT NULL
        CONSTRAINT coupon_campaigns_discount_value_check
        CHECK (discount_value > 0 AND discount_value <= 1000000000000),
    -- RATE only: the cap of the discount amount
    max_discount     bigint
        CONSTRAINT coupon_campaigns_max_discount_check
        CHECK (max_discount > 0 AND max_discount <= 1000000000000),
    min_order_amount bigint      NOT NULL DEFAULT 0
        CONSTRAINT coupon_campaigns_min_order_amount_check
        CHECK (min_order_amount >= 0 AND min_order_amount <= 1000000000000),
    total_quantity   integer     NOT NULL
        CONSTRAINT coupon_campaigns_total_quantity_check
        CHECK (total_quantity BETWEEN 1 AND 100000000),
    issued_quantity  integer     NOT NULL DEFAULT 0
        CONSTRAINT coupon_campaigns_issued_quantity_check
        CHECK (issued_quantity >= 0 AND issued_quantity <= total_quantity),
    per_user_limit   integer     NOT NULL
        CONSTRAINT coupon_campaigns_per_user_limit_check
        CHECK (per_user_limit BETWEEN 1 AND 100 AND per_user_limit <= total_quantity),
    issue_starts_at  timestamptz NOT NULL,
    issue_ends_at    timestamptz NOT NULL,
    -- a coupon is valid for valid_days from its issue
    valid_days       integer     NOT NULL
        CONSTRAINT coupon_campaigns_valid_days_check CHECK (valid_days BETWEEN 1 AND 3650),
    created_by       bigint      NOT NULL REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT coupon_campaigns_rate_check
        CHECK (discount_type <> 'RATE' OR discount_value BETWEEN 1 AND 100),
    CONSTRAINT coupon_campaigns_max_discount_rate_check
        CHECK (max_discount IS NULL OR discount_type = 'RATE'),
    CONSTRAINT coupon_campaigns_window_check CHECK (issue_ends_at > issue_starts_at),
    -- the target of user_coupons' composite foreign key (id alone is unique)
    CONSTRAINT coupon_campaigns_limits_key UNIQUE (id, total_quantity, per_user_limit)
) WITH (fillfactor = 50);

-- A coupon of a user.  status is stored AVAILABLE or USED (EXPIRED is
-- allowed for a later sweep); the functions show an AVAILABLE coupon past
-- expires_at as EXPIRED.  reserved_by is the order holding it (AVAILABLE,
-- held by a live order) or the order that used it (USED); see
-- sql/README.md, "Coupons on orders".
CREATE TABLE user_coupons (
    id              bigserial   PRIMARY KEY,
    campaign_id     bigint      NOT NULL,
    user_id         bigint      NOT NULL REFERENCES users (id),
    -- the campaign's n-th coupon: 1..total_quantity, unique per campaign
    issue_no        integer     NOT NULL,
    -- the user's n-th coupon of the campaign: 1..per_user_limit
    seq             integer     NOT NULL,
    -- the campaign's limits, pinned to it by the foreign key below
    total_quantity  integer     NOT NULL,
    per_user_limit  integer     NOT NULL,
    status          text        NOT NULL DEFAULT 'AVAILABLE'
        CONSTRAINT user_coupons_status_check CHECK (status IN ('AVAILABLE', 'USED', 'EXPIRED')),
    reserved_by     bigint      REFERENCES orders (id),
    issued_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    CONSTRAINT user_coupons_campaign_fkey FOREIGN KEY (campaign_id, total_quantity, per_user_limit)
        REFERENCES coupon_campaigns (id, total_quantity, per_user_limit),
    CONSTRAINT user_coupons_issue_no_check CHECK (issue_no BETWEEN 1 AND total_quantity),
    CONSTRAINT user_coupons_seq_check CHECK (seq BETWEEN 1 AND per_user_limit),
    CONSTRAINT user_coupons_issue_no_key UNIQUE (campaign_id, issue_no),
    -- also serves "the user's coupons of a campaign" (count, max(seq))
    CONSTRAINT user_coupons_user_seq_key UNIQUE (campaign_id, user_id, seq),
    CONSTRAINT user_coupons_expires_check CHECK (expires_at > issued_at),
    CONSTRAINT user_coupons_used_check CHECK ((status = 'USED') = (used_at IS NOT NULL)),
    CONSTRAINT user_coupons_used_order_check CHECK (status <> 'USED' OR reserved_by IS NOT NULL),
    CONSTRAINT user_coupons_expired_free_check CHECK (status <> 'EXPIRED' OR reserved_by IS NULL)
) WITH (fillfactor = 80);   -- status / reserved_by change a few times: room for HOT

-- A user's coupons, newest first (cm_user_coupons).
CREATE INDEX user_coupons_user_id_idx ON user_coupons (user_id, id);

-- An order holds or used at most one coupon; also finds it on release.
CREATE UNIQUE INDEX user_coupons_reserved_by_idx ON user_coupons (reserved_by)
    WHERE reserved_by IS NOT NULL;
