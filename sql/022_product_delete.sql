-- A seller deletes a product that was never ordered (issue 11 section 3:
-- its images' files go with it): the audit learns PRODUCT_DELETE (the
-- list of 021_points.sql and one more).
ALTER TABLE audit_log DROP CONSTRAINT audit_log_event_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_event_check
    CHECK (event IN ('SIGNUP', 'LOGIN_OK', 'LOGIN_FAILED', 'REFRESH', 'REFRESH_REUSE', 'LOGOUT',
                     'WITHDRAW', 'ROLE_CHANGE', 'EVENT_REPLAY', 'STORE_CREATE', 'MANAGER_ASSIGN',
                     'PRODUCT_CREATE', 'PRODUCT_UPDATE', 'VARIANT_UPDATE', 'CATEGORY_CHANGE',
                     'PRODUCT_IMAGE_ADD', 'PRODUCT_IMAGE_ORDER', 'PRODUCT_IMAGE_DELETE',
                     'MANAGER_UNASSIGN', 'POINTS_GRANT', 'PRODUCT_DELETE'));
