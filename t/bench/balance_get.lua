-- wrk: GET /api/v1/balance as a random user (t/bench/run)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/api/v1/balance", auth(false))
end
