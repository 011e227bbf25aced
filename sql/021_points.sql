-- Points (issue 12 section 3): a second balance of every user, in points
-- (1 point pays 1 won), with its own ledger like balance_ledger: every
-- movement with the points after it, written by the statement that moves
-- them.  users.points never goes negative (CHECK): a spend or a revoke of
-- more than the user has fails in the database.
ALTER TABLE users
    ADD COLUMN points bigint NOT NULL DEFAULT 0
        CHECK (points >= 0 AND points <= 1000000000000);

-- kind: GRANT (+, an ADMIN), REVOKE (-, an ADMIN), SPEND (-, an order),
-- RESTORE (+, the order cancelled, expired or failed), EARN (+, a
-- purchase confirmed).  An ADMIN's movement names the ADMIN and a reason;
-- an order's names the order.
CREATE TABLE points_ledger (
    id           bigserial   PRIMARY KEY,
    user_id      bigint      NOT NULL REFERENCES users (id),
    kind         text        NOT NULL
                             CHECK (kind IN ('GRANT', 'REVOKE', 'SPEND', 'RESTORE', 'EARN')),
    amount       bigint      NOT NULL,
    points_after bigint      NOT NULL CHECK (points_after >= 0),
    order_id     bigint      REFERENCES orders (id),
    actor_id     bigint      REFERENCES users (id),
    reason       text        CHECK (char_length(reason) BETWEEN 1 AND 200),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('REVOKE', 'SPEND') AND amount < 0)
           OR (kind IN ('GRANT', 'RESTORE', 'EARN') AND amount > 0)),
    CHECK (kind NOT IN ('GRANT', 'REVOKE') OR (actor_id IS NOT NULL AND reason IS NOT NULL)),
    CHECK (kind NOT IN ('SPEND', 'RESTORE', 'EARN') OR order_id IS NOT NULL)
);

-- A user's history, newest first / replay in order.
CREATE INDEX points_ledger_user_id_idx ON points_ledger (user_id, id);
-- An order's movements (what to give back).
CREATE INDEX points_ledger_order_id_idx ON points_ledger (order_id) WHERE order_id IS NOT NULL;

-- An ADMIN's grant or revoke in the audit (the list of 020 and one more).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check
    CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH', 'REFRESH_REUSE', 'LOGOUT',
                     'WITHDRAW', 'ROLE_CHANGE', 'EVENT_REPLAY', 'STORE_CREATE', 'MANAGER_ASSIGN',
                     'PRODUCT_CREATE', 'PRODUCT_UPDATE', 'VARIANT_UPDATE', 'CATEGORY_CHANGE',
                     'PRODUCT_IMAGE_ADD', 'PRODUCT_IMAGE_ORDER', 'PRODUCT_IMAGE_DELETE',
                     'MANAGER_UNASSIGN', 'POINTS_GRANT'));
