-- wrk: POST /api/v1/auth/login as one of BENCH_LOGIN_USERS accounts that
-- t/bench/run signed up (bench<N>@example.com, the same password each):
-- every request costs one PBKDF2 on the thread pool.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local n = tonumber(os.getenv("BENCH_LOGIN_USERS") or "20")

function request()
    local body = '{"email":"bench' .. math.random(n)
        .. '@example.com","password":"bench password 1234"}'
    return wrk.format("POST", "/api/v1/auth/login",
        { ["Content-Type"] = "application/json" }, body)
end
