-- Retention (sql/functions/90_retention.sql): the security log is purged by
-- age like the gateway log; a BRIN index on its time keeps the purge's
-- look-up cheap when nothing is old enough (rows are appended in time
-- order).
CREATE INDEX audit_log_created_at_idx ON audit_log USING brin (created_at);
