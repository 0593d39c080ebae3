-- bench/pools/cpu-pool.lua: a copy of pools/cpu-pool.lua for bench/run.sh. Only `limits`
-- differ (no per_second, concurrency from BENCH_CONCURRENCY); keep the rest in sync with
-- pools/cpu-pool.lua so the benchmark measures the shipped parse path.
--
-- cpu-pool.com: NOMP (node-open-mining-portal), pays in ADVC.
--
--   GET <CPU_POOL_URL>?<WALLET>      default http://cpu-pool.com/api/worker_stats
--
-- NOMP takes the WHOLE query string as the address (url.split("?")[1], then .split(".")[0]),
-- so the wallet is the query string itself. The "?addr=<WALLET>" form of older docs makes NOMP
-- look up the address "addr=<WALLET>" and answer an empty miner: it is never built here, and a
-- query string left in CPU_POOL_URL is dropped (with a warning) for the same reason.
--
-- Payout counter: `paid`, the cumulative amount paid out to the wallet (rewards.lua awards its
-- increases). `balance` (confirmed, unpaid) and `immature` never count: they become `paid`
-- when the pool pays. A newer fork's `payments` list is not used: its entries have no stable
-- id across NOMP forks, and `paid` already counts them.
--
-- Not an observation of this wallet (the poll fails, nothing changes): a body that is not a
-- JSON object, {"result":"error","message":...} or {"error":...}, a `miner` that is absent
-- (NOMP's answer for an unknown wallet: 200 with zeros) or that is another wallet once a
-- ".worker" suffix is dropped, and a `paid` that is missing, malformed or negative.
-- Informational fields (balance, immature, totalHash, totalShares) that are malformed are left
-- out of the observation instead: they never decide an award.

local DEFAULT_URL = "http://cpu-pool.com/api/worker_stats"

local function base_url()
  local url = m2p.env("CPU_POOL_URL", DEFAULT_URL)
  local without_query = url:match("^([^?#]*)")
  if without_query ~= url then
    m2p.log("warning", "cpu_pool_url_query_dropped", { url = url, used = without_query,
      detail = "NOMP reads the whole query string as the wallet; ?addr= never works" })
  end
  return without_query
end

local BASE = base_url()

-- NOMP drops everything from the first "." (the worker name) before looking the miner up.
local function strip_worker(address)
  return (address:match("^([^.]*)"))
end

-- A number for an informational field, or nil when it is absent, malformed or negative.
local function info_num(json, path)
  local v = m2p.get(json, path)
  if v == nil then return nil end
  local x = m2p.num(v)
  if x == nil or x < 0 then return nil end
  return x
end

local function describe(v)
  if m2p.is_null(v) then return "null" end
  if type(v) == "string" then return string.format("%q", v:sub(1, 80)) end
  return type(v)
end

local pool = {
  name = "cpu-pool",
  currency = "ADVC",
  -- A whole, checksum-valid ADVC address and nothing else (no ".worker"): NOMP looks miners
  -- up by prefix, so a truncated wallet would be answered with another miner's figures.
  wallet_pattern = m2p.advc_address,
  enabled = m2p.env_bool("CPU_POOL_ENABLED", true),
  -- bench/: no per_second cap, and the concurrency C that bench/run.sh also gives wrk (-c C).
  limits = { concurrency = m2p.env_number("BENCH_CONCURRENCY", 64, 1, 10000) },
}

function pool.request(wallet)
  return { url = BASE .. "?" .. m2p.urlencode(wallet),
           headers = { Accept = "application/json" } }
end

function pool.parse(response)
  local json = response.json
  if json == nil then
    return nil, "response is not JSON (" .. tostring(response.json_error or "no JSON body") .. ")"
  end
  if type(json) ~= "table" then
    return nil, "response is not a JSON object (got " .. describe(json) .. ")"
  end

  -- NOMP's error forms: {"result":"error","message":"Invalid wallet address"}, {"error":...}.
  if json.result == "error" or (json.error ~= nil and not m2p.is_null(json.error)
                                and json.error ~= false) then
    local message = json.message
    if type(message) ~= "string" then message = json.error end
    if type(message) ~= "string" then message = "no message" end
    return nil, "pool error: " .. message:sub(1, 200)
  end

  local miner = json.miner
  if miner == nil or m2p.is_null(miner) or miner == "" then
    return nil, "no miner in response: the pool does not know this wallet"
  end
  if type(miner) ~= "string" then
    return nil, "miner is not a string (got " .. describe(miner) .. ")"
  end
  if strip_worker(miner) ~= response.wallet then
    return nil, string.format("response is for miner %q, not for the polled wallet",
                              miner:sub(1, 120))
  end

  local paid, err = m2p.first_num(json, { "paid" })
  if paid == nil then return nil, "no usable paid counter (" .. err .. ")" end
  if paid < 0 then return nil, "paid is negative (" .. tostring(paid) .. ")" end

  return {
    paid = paid,
    balance = info_num(json, "balance"),
    immature = info_num(json, "immature"),
    hashrate = info_num(json, "totalHash"),
    shares = info_num(json, "totalShares"),
  }
end

return pool
