-- wrk: POST /api/v1/orders, three distinct random products (one in each
-- third of 1..200), quantity 1 each, paid from the balance in the same
-- transaction, as a random user (top up balances and stock first).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    local third = math.floor(products / 3)
    local body = '{"items":[{"productId":' .. math.random(1, third)
        .. ',"quantity":1},{"productId":' .. math.random(third + 1, 2 * third)
        .. ',"quantity":1},{"productId":' .. math.random(2 * third + 1, products)
        .. ',"quantity":1}],"payment":{"method":"BALANCE"}}'
    return wrk.format("POST", "/api/v1/orders", auth(true), body)
end
