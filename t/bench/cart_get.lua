-- wrk: GET /api/v1/cart as a random user (t/bench/run fills every demo
-- user's cart with 5 lines first)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/api/v1/cart", auth(false))
end
