-- pgbench: the module's POST /api/v1/coupons/{id}/issue on its Postgres
-- path: one coupon of campaign :cid for a random user 1..1000, the
-- conditional UPDATE of the counter and the insert in one transaction.
-- Every issue of a campaign queues on its row, so this measures the
-- database's ceiling for one hot campaign (bound by a commit per issue).
-- pgbench stops a client at its first error: give the campaign a stock
-- larger than the run and a per-user limit no user reaches (100: 1,000
-- users, so up to ~50,000 transactions are safe), and pass its id:
--   pgbench -n -M prepared -c 16 -j 2 -T 10 -D cid=<id> -f t/bench/coupon_issue.sql
\set uid random(1, 1000)
SELECT cm_coupon_issue(:uid::bigint, :cid::bigint);
