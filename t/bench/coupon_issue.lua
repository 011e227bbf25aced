-- wrk: POST /api/v1/coupons/{BENCH_COUPON}/issue as a random user of the
-- 1,000 (t/bench/run creates the campaign: a stock larger than the run and
-- a per-user limit no user reaches, so every issue succeeds).  The same
-- script measures the Redis-gated path and the Postgres-only one: which
-- one depends on the nginx it is pointed at.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local path = "/api/v1/coupons/" .. os.getenv("BENCH_COUPON") .. "/issue"

function request()
    return wrk.format("POST", path, auth(true), "{}")
end
