-- wrk: POST /api/v1/orders, one random product, quantity 1, paid from the
-- balance in the same transaction, as a random user (t/bench/run tops up
-- balances and stock first, so every order succeeds).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    local body = '{"items":[{"productId":' .. math.random(products)
        .. ',"quantity":1}],"payment":{"method":"BALANCE"}}'
    return wrk.format("POST", "/api/v1/orders", auth(true), body)
end
