-- Shared by the wrk scripts of t/bench/run: tokens, random numbers, and a
-- machine-readable summary line ("BENCH {json}") printed by done().
--
-- Environment: BENCH_TOKENS (a file with one JWT a line; optional),
-- BENCH_PRODUCTS (highest product id, default 200).

local tokens = {}
local path = os.getenv("BENCH_TOKENS")
if path and path ~= "" then
    for line in io.lines(path) do
        if line ~= "" then tokens[#tokens + 1] = line end
    end
end
products = tonumber(os.getenv("BENCH_PRODUCTS") or "200")

local counter = 0
function setup(thread)
    counter = counter + 1
    thread:set("tid", counter)
end

function init(args)
    math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
    for _ = 1, 10 do math.random() end
end

-- headers with the token of a random user (and a JSON content type)
function auth(json)
    local h = {}
    if #tokens > 0 then
        h["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
    end
    if json then h["Content-Type"] = "application/json" end
    return h
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        'BENCH {"requests":%d,"duration_us":%d,"rps":%.1f,'
        .. '"p50_us":%d,"p99_us":%d,"max_us":%d,"non2xx":%d,'
        .. '"connect":%d,"read":%d,"write":%d,"timeout":%d}\n',
        summary.requests, summary.duration,
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), latency.max,
        e.status, e.connect, e.read, e.write, e.timeout))
end
