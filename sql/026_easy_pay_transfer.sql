-- 026_easy_pay_transfer: easy payments and transfers (issue 12 section 3).
-- EASY_PAY goes through the payment gateways exactly like CARD, with a
-- provider (KAKAOPAY, NAVERPAY) instead of card fields.  TRANSFER asks the
-- gateway for a virtual account (bank, number, holder, deadline): the order
-- waits in WAITING_FOR_DEPOSIT, holding its stock, until the deposit (the
-- gateway's callback) pays it or the deadline expires it (cm_orders_expire).  The method list already names every method of
-- issue 12 (BALANCE, CARD, POINTS, TRANSFER, EASY_PAY) so it holds when the
-- other payment branches are merged; the gateway methods (those that name a
-- PG: CARD, EASY_PAY, TRANSFER) take the card rules of 003_card_payments.
--
-- Applied by sql/migrate inside one transaction (no BEGIN/COMMIT here).

ALTER TABLE payments
    ADD COLUMN provider text,
    DROP CONSTRAINT payments_method_check,
    ADD CONSTRAINT payments_method_check
        CHECK (method IN ('BALANCE', 'CARD', 'POINTS', 'TRANSFER', 'EASY_PAY')),
    DROP CONSTRAINT payments_gateway_check,
    ADD CONSTRAINT payments_gateway_check
        CHECK ((method IN ('CARD', 'EASY_PAY', 'TRANSFER')) = (gateway IS NOT NULL)),
    DROP CONSTRAINT payments_card_fields_check,
    ADD CONSTRAINT payments_card_fields_check CHECK (method IN ('CARD', 'EASY_PAY', 'TRANSFER')
        OR (transaction_key IS NULL AND card_type IS NULL AND card_last4 IS NULL
            AND reason IS NULL AND net_cancel IS NULL)),
    -- a card has its type and last digits, an easy payment its provider only
    ADD CONSTRAINT payments_provider_check CHECK ((method = 'EASY_PAY') = (provider IS NOT NULL)
        AND provider IN ('KAKAOPAY', 'NAVERPAY')),
    ADD CONSTRAINT payments_easy_pay_card_check CHECK (method NOT IN ('EASY_PAY', 'TRANSFER')
        OR (card_type IS NULL AND card_last4 IS NULL)),
    -- the virtual account a TRANSFER was given (all or nothing)
    ADD COLUMN va_bank text,
    ADD COLUMN va_account text,
    ADD COLUMN va_holder text,
    ADD COLUMN va_due_at timestamptz,
    ADD CONSTRAINT payments_virtual_account_check CHECK ((va_bank IS NULL) = (va_account IS NULL)
        AND (va_bank IS NULL) = (va_holder IS NULL) AND (va_bank IS NULL) = (va_due_at IS NULL)
        AND (va_bank IS NULL OR method = 'TRANSFER')),
    DROP CONSTRAINT payments_pending_card_check,
    ADD CONSTRAINT payments_pending_card_check
        CHECK (status <> 'PENDING' OR method IN ('CARD', 'EASY_PAY', 'TRANSFER')),
    DROP CONSTRAINT payments_decided_at_check,
    ADD CONSTRAINT payments_decided_at_check CHECK (method NOT IN ('CARD', 'EASY_PAY', 'TRANSFER')
        OR (status = 'PENDING') = (decided_at IS NULL));

-- An order whose virtual account is issued waits for the deposit.
ALTER TABLE orders
    DROP CONSTRAINT orders_status_check,
    ADD CONSTRAINT orders_status_check
        CHECK (status IN ('PENDING_PAYMENT', 'PAYMENT_IN_PROGRESS', 'WAITING_FOR_DEPOSIT',
                          'PAID', 'PAYMENT_FAILED', 'CANCELLED'));

-- The expiry job's queue of transfers: pending ones by deadline.
CREATE INDEX payments_transfer_due_idx ON payments (va_due_at)
    WHERE status = 'PENDING' AND va_due_at IS NOT NULL;
