-- wrk: the payment gateway simulator alone (t/pgsim): POST /api/v1/payments,
-- the create the module sends for a card order, with the card t/bench/order
-- maps to PENDING (never decided, no callback).  The ceiling of the card
-- begin rows.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local card = os.getenv("BENCH_CARD") or "1234-5678-9814-3456"
local n = 0

function request()
    n = n + 1
    local body = '{"orderId":"' .. string.format("%06d%d", n, tid or 0)
        .. '","cardType":"SAMSUNG","cardNo":"' .. card .. '","amount":5000,'
        .. '"callbackUrl":"http://127.0.0.1:9/api/v1/payments/callback"}'
    return wrk.format("POST", "/api/v1/payments",
        { ["Content-Type"] = "application/json",
          ["X-USER-ID"] = tostring(math.random(1000)) }, body)
end
