-- wrk: POST /api/v1/orders, one random product, quantity 1, paid by card:
-- the order is created, the gateway's create is called, the answer is 202
-- with the payment in progress.  The card number is one the gateway
-- simulator never decides (t/bench/order maps it to PENDING): no callback
-- comes during the row.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local card = os.getenv("BENCH_CARD") or "1234-5678-9814-3456"

function request()
    local body = '{"items":[{"productId":' .. math.random(products)
        .. ',"quantity":1}],"payment":{"method":"CARD","cardType":"SAMSUNG",'
        .. '"cardNo":"' .. card .. '"}}'
    return wrk.format("POST", "/api/v1/orders", auth(true), body)
end
