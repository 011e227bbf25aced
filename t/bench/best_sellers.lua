-- wrk: GET /api/v1/products/best-sellers?days=3&limit=5 as a random user
-- (t/bench/run: after the create+pay row, so today's sales are there)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/api/v1/products/best-sellers?days=3&limit=5",
                      auth(false))
end
