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

-- SHA-256 from OpenSSL's libcrypto through LuaJIT's FFI (wrk runs LuaJIT; wrk itself links
-- OpenSSL, the explicit load also serves `luajit wrk-wallets.lua --print N`).
local ffi = require("ffi")
ffi.cdef [[ unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md); ]]
local crypto = ffi.load("crypto")
local digest = ffi.new("unsigned char[32]")

local function sha256(s)
  crypto.SHA256(s, #s, digest)
  return ffi.string(digest, 32)
end

local BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

-- Base58 of a byte string: repeated long division of its big-endian digits by 58.
local function base58(raw)
  local digits, out = { raw:byte(1, -1) }, {}
  local first = 1
  while first <= #digits do
    local rem = 0
    for k = first, #digits do
      local v = rem * 256 + digits[k]
      digits[k] = math.floor(v / 58)
      rem = v % 58
    end
    out[#out + 1] = BASE58:sub(rem + 1, rem + 1)
    while first <= #digits and digits[first] == 0 do first = first + 1 end
  end
  return string.reverse(table.concat(out)) -- version 23 is not 0: no leading '1's to add
end

-- A checksum-valid ADVC address, distinct per i: version 23, payload = the first 20 bytes of
-- SHA-256("m2p-bench-<i>"), checksum = the first 4 bytes of SHA-256(SHA-256(version+payload)).
local function wallet(i)
  local raw = "\23" .. sha256(string.format("m2p-bench-%d", i)):sub(1, 20)
  return base58(raw .. sha256(sha256(raw)):sub(1, 4))
end

if arg and arg[1] == "--print" then -- luajit bench/wrk-wallets.lua --print N: self-check
  print(wallet(tonumber(arg[2])))
  return
end

local n = tonumber(os.getenv("BENCH_WALLETS") or "1")
local i = 0
local path
local wallets = {}

-- The wallets are computed here, before wrk starts its clock, so that the reference load does
-- not pay for three SHA-256 per request.
function init(args)
  for k = 1, n do wallets[k] = wallet(k) end
  path = wrk.path -- "/api/worker_stats" from the URL on the command line
  wrk.headers["User-Agent"] = "m2p-engine/0.1.0"
  wrk.headers["Accept-Encoding"] = "deflate, gzip, br, zstd"
  wrk.headers["Accept"] = "application/json"
end

function request()
  i = i % n + 1
  return wrk.format("GET", path .. "?" .. wallets[i])
end
