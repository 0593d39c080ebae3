-- wrk script for bench/run.sh: the reference load against the simulator's cpu-pool endpoint.
--
-- Sends exactly the request m2p-engine sends for an account (same path, query = the wallet,
-- same headers) and cycles through the same BENCH_WALLETS wallets as the engine's accounts
-- file, so the simulator does the same work per request for wrk and for the engine.
--
--   BENCH_WALLETS=100000 wrk -t1 -c64 -d10s -s bench/wrk-wallets.lua \
--       http://127.0.0.1:PORT/api/worker_stats
--
-- wallet(i) must stay identical to wallet() in bench/bench.py (bench.py checks it with
-- `luajit bench/wrk-wallets.lua --print N` when luajit is installed).

local B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
local M8 = 62 ^ 8

-- x (an integer < 2^53) in `digits` base-62 digits, most significant first.
local function b62(x, digits)
  local out = {}
  for k = digits, 1, -1 do
    local d = x % 62
    out[k] = B62:sub(d + 1, d + 1)
    x = (x - d) / 62
  end
  return table.concat(out)
end

-- 34 characters, alphanumeric, distinct for distinct i (the last 9 digits are i itself).
-- Every product stays below 2^53 for i <= 3,000,000, so doubles are exact.
local function wallet(i)
  return "A" .. b62((i * 2654435761) % M8, 8) .. b62((i * 40503 + 7) % M8, 8) ..
         b62((i * 7919) % M8, 8) .. b62(i, 9)
end

if arg and arg[1] == "--print" then -- luajit bench/wrk-wallets.lua --print N: self-check
  print(wallet(tonumber(arg[2])))
  return
end

local n = tonumber(os.getenv("BENCH_WALLETS") or "1")
local i = 0
local path

function init(args)
  path = wrk.path -- "/api/worker_stats" from the URL on the command line
  wrk.headers["User-Agent"] = "m2p-engine/0.1.0"
  wrk.headers["Accept-Encoding"] = "deflate, gzip, br, zstd"
  wrk.headers["Accept"] = "application/json"
end

function request()
  i = i % n + 1
  return wrk.format("GET", path .. "?" .. wallet(i))
end
