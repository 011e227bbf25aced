-- wrk: GET /api/v1/products/{random id} as a random user (t/bench/run)
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/api/v1/products/" .. math.random(products),
                      auth(false))
end
