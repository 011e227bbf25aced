-- 009_drop_card_get_by_key: cm_card_get_by_key (a payment by its PG
-- transaction key) was never called: the module finds a callback's payment
-- with cm_card_callback.  A function removed for good is dropped by a
-- versioned migration; its text leaves sql/functions/ in the same change.
DROP FUNCTION IF EXISTS cm_card_get_by_key(text, text);
