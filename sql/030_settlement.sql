-- 030_settlement: weekly settlement of the sellers' confirmed parts, the
-- payouts that pay them, the platform's tax invoices for its fee (issue 13
-- section 4).  Functions: functions/73_settlement.sql.  See README.md,
-- "Settlement".
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- ---------------------------------------------------------------------------
-- One settlement per store and week (week_start: the Monday 00:00
-- Asia/Seoul it was made for): the parts that became settleable by then
-- (settlement_lines), the refunds deducted (refunds.settled_in), the fee,
-- what the previous settlement of the store carried over (prev_id, each
-- settlement carried into at most one next), and the split of the net
-- into what is paid now and what is carried to the next week (below the
-- minimum, or negative when later refunds passed the week's sales).
CREATE TABLE settlements (
    id           bigserial   PRIMARY KEY,
    store_id     bigint      NOT NULL REFERENCES stores (id),
    week_start   timestamptz NOT NULL,
    prev_id      bigint      UNIQUE REFERENCES settlements (id),
    gross        bigint      NOT NULL CHECK (gross >= 0),
    refunds      bigint      NOT NULL CHECK (refunds >= 0),
    fee_bp       integer     NOT NULL CHECK (fee_bp BETWEEN 0 AND 10000),
    fee          bigint      NOT NULL CHECK (fee BETWEEN 0 AND gross),
    carried_in   bigint      NOT NULL,
    net          bigint      NOT NULL,
    minimum      bigint      NOT NULL CHECK (minimum >= 1),
    paid_amount  bigint      NOT NULL CHECK (paid_amount = 0 OR paid_amount >= minimum),
    carried_out  bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT settlements_store_week_key UNIQUE (store_id, week_start),
    -- the payout's foreign key
    UNIQUE (id, paid_amount),
    CHECK (net = carried_in + gross - refunds - fee),
    CHECK (paid_amount + carried_out = net),
    CHECK (fee = gross * fee_bp / 10000),
    CHECK (prev_id IS NOT NULL OR carried_in = 0)
);

CREATE INDEX settlements_store_idx ON settlements (store_id, week_start DESC);

-- The parts a settlement paid for the first time: each part once, ever.
-- amount and refunded are the part's payment_amount and refunded_amount
-- when it was settled (the refund rows of the part are settled_in the
-- same settlement).
CREATE TABLE settlement_lines (
    settlement_id bigint      NOT NULL REFERENCES settlements (id),
    part_id       bigint      NOT NULL PRIMARY KEY REFERENCES order_parts (id),
    order_id      bigint      NOT NULL REFERENCES orders (id),
    confirmed_at  timestamptz NOT NULL,
    amount        bigint      NOT NULL CHECK (amount >= 0),
    refunded      bigint      NOT NULL CHECK (refunded BETWEEN 0 AND amount)
);

CREATE INDEX settlement_lines_settlement_idx ON settlement_lines (settlement_id, part_id);

ALTER TABLE refunds
    ADD CONSTRAINT refunds_settled_in_fkey FOREIGN KEY (settled_in) REFERENCES settlements (id);

CREATE INDEX refunds_unsettled_idx ON refunds (part_id) WHERE settled_in IS NULL;

-- ---------------------------------------------------------------------------
-- The payout of a settlement whose paid_amount is not 0, sent to the payout
-- API by the module's job.  The request's idempotency key is
-- 'po-<id>-<attempt>': attempt moves on only when the API answered the
-- payout FAILED (a definite no: a new request), never after an unknown
-- outcome (an error or a timeout resends the same key, which the API pays
-- at most once).
--   REQUESTED  to send (due at next_at; leased by a job run until
--              lease_until)
--   PENDING    accepted by the API; its status is pulled at next_at (a
--              callback brings next_at to now)
--   SUCCEEDED  paid
--   DEAD       tries passed the retries: the settlement stays owed, listed
--              for the operators and replayable (cm_payout_replay)
CREATE TABLE payouts (
    id            bigserial   PRIMARY KEY,
    settlement_id bigint      NOT NULL UNIQUE,
    store_id      bigint      NOT NULL REFERENCES stores (id),
    amount        bigint      NOT NULL CHECK (amount > 0),
    status        text        NOT NULL DEFAULT 'REQUESTED'
                              CHECK (status IN ('REQUESTED', 'PENDING', 'SUCCEEDED', 'DEAD')),
    attempt       integer     NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    tries         integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    replays       integer     NOT NULL DEFAULT 0 CHECK (replays >= 0),
    next_at       timestamptz NOT NULL DEFAULT now(),
    lease_until   timestamptz,
    last_error    text        CHECK (length(last_error) <= 300),
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    paid_at       timestamptz,
    dead_at       timestamptz,
    FOREIGN KEY (settlement_id, amount) REFERENCES settlements (id, paid_amount),
    CHECK ((status = 'SUCCEEDED') = (paid_at IS NOT NULL)),
    CHECK ((status = 'DEAD') = (dead_at IS NOT NULL)),
    CHECK (status IN ('REQUESTED', 'PENDING') OR lease_until IS NULL)
);

-- The job's due payouts; the dead-letter list.
CREATE INDEX payouts_due_idx ON payouts (next_at) WHERE status IN ('REQUESTED', 'PENDING');
CREATE INDEX payouts_dead_idx ON payouts (dead_at DESC) WHERE status = 'DEAD';

-- ---------------------------------------------------------------------------
-- The platform's tax invoice to the store for its fee: the 5% fee includes
-- VAT, so total = fee, supply = round-half-up(fee * 10 / 11), vat = the
-- rest.  One per settlement whose fee is not 0.
CREATE TABLE settlement_tax_invoices (
    id            bigserial   PRIMARY KEY,
    settlement_id bigint      NOT NULL UNIQUE REFERENCES settlements (id),
    store_id      bigint      NOT NULL REFERENCES stores (id),
    supply_amount bigint      NOT NULL CHECK (supply_amount >= 0),
    vat           bigint      NOT NULL CHECK (vat >= 0),
    total         bigint      NOT NULL CHECK (total > 0),
    issued_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (supply_amount + vat = total),
    CHECK (supply_amount = (total * 10 + 5) / 11)
);
