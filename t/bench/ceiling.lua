-- wrk: the nginx ceiling, `location = /ceiling { return 200 "ok"; }`
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function request()
    return wrk.format("GET", "/ceiling")
end
