-- 026_easy_pay: easy payments (issue 12 section 3): EASY_PAY goes through the
-- payment gateways exactly like CARD, with a provider (KAKAOPAY, NAVERPAY)
-- instead of card fields.  The method list already names every method of
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
    ADD CONSTRAINT payments_easy_pay_card_check CHECK (method <> 'EASY_PAY'
        OR (card_type IS NULL AND card_last4 IS NULL)),
    DROP CONSTRAINT payments_pending_card_check,
    ADD CONSTRAINT payments_pending_card_check
        CHECK (status <> 'PENDING' OR method IN ('CARD', 'EASY_PAY', 'TRANSFER')),
    DROP CONSTRAINT payments_decided_at_check,
    ADD CONSTRAINT payments_decided_at_check CHECK (method NOT IN ('CARD', 'EASY_PAY', 'TRANSFER')
        OR (status = 'PENDING') = (decided_at IS NULL));
