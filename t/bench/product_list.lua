-- wrk: GET /api/v1/products?page=N&size=20 as a random user, N random in
-- 0..BENCH_LIST_PAGES-1 (default 10: the demo catalogue's 200 products, so
-- every page is full; the same pages as t/bench/product_list.sql).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local pages = tonumber(os.getenv("BENCH_LIST_PAGES") or "10")

function request()
    return wrk.format("GET", "/api/v1/products?page=" .. (math.random(pages) - 1)
                      .. "&size=20", auth(false))
end
