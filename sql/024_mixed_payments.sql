-- 024_mixed_payments: several payments in one order (issue 12 section 3):
-- POINTS with BALANCE or with CARD, each part its own row in payments.
-- The functions are in functions/78_mixpay.sql.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

-- POINTS is a method (a part paid from users.points, ledger points_ledger).
ALTER TABLE payments
    DROP CONSTRAINT payments_method_check,
    ADD CONSTRAINT payments_method_check CHECK (method IN ('BALANCE', 'CARD', 'POINTS'));

-- "Paid at most once" is now per method: an order holds at most one
-- applied successful payment of each method (its parts).  That the parts
-- add up to the order's paymentAmount is decided when they are taken
-- (cm__order_points_part, in the transaction that creates the order).  A
-- part given back is CANCELLED (SUCCESS -> CANCELLED, forward only).
DROP INDEX payments_one_success_per_order_idx;
CREATE UNIQUE INDEX payments_one_success_per_order_idx ON payments (order_id, method)
    WHERE status = 'SUCCESS' AND net_cancel IS NULL;
