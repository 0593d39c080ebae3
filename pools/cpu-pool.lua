-- cpu-pool.com: NOMP (node-open-mining-portal), pays in ADVC.
--
--   GET <CPU_POOL_URL>?<WALLET>      default http://cpu-pool.com/api/worker_stats
--
-- NOMP takes the WHOLE query string as the address (url.split("?")[1], then .split(".")[0]),
-- so the wallet is the query string itself. The "?addr=<WALLET>" form of older docs makes NOMP
-- look up the address "addr=<WALLET>" and answer zeros for it: it is never built here, and a
-- query string left in CPU_POOL_URL is dropped (with a warning) for the same reason.
--
-- Payout counter: `paid`, the cumulative amount paid out to the wallet (rewards.lua awards its
-- increases). `balance` (confirmed, unpaid) and `immature` never count: they become `paid`
-- when the pool pays. A newer fork's `payments` list is not used: its entries have no stable
-- id across NOMP forks, and `paid` already counts them. `immature` is kept in satoshis by
-- NOMP and sent in coins; `networkSols` is a string from Redis (not read).
--
-- What NOMP's worker_stats really answers (its libs/api.js and libs/stats.js):
--   {"miner": <the address asked for>, "totalHash", "totalShares", "networkSols",
--    "immature", "balance", "paid", "workers": {...}, "history": {...}}
-- `miner` is always the ECHO of the address asked for, whether NOMP knows it or not: an
-- unknown wallet gets its own address back with zeros everywhere and `workers: {}`. A KNOWN
-- wallet gets that same all-zero answer at times (stats not gathered yet after a portal
-- restart; the one-pass Redis HSCAN ... COUNT 10000 can miss the address in a large hash).
-- So an all-zero answer (paid, balance and immature 0 or absent, no workers) is not an
-- observation: taken as a first observation it would be a baseline of 0, and the next real
-- answer would award the wallet's whole history. A wallet that has never been paid and has
-- no worker yet is therefore polled without result until it mines; nothing is lost by that.
-- (A drop to zero of a known account after its baseline is caught by rewards.lua too: a
-- decrease is believed only after DECREASE_CONFIRM_POLLS polls.)
--
-- Not an observation of this wallet (the poll fails, nothing changes): a body that is not a
-- JSON object, {"result":"error","message":...}, a bare {"result":"error"} or {"error":...},
-- a `miner` that is absent or empty (other forks), or that is another wallet once a
-- ".worker" suffix is dropped, the all-zero answer above, and a `paid` that is missing,
-- malformed or negative. The echo proves little (NOMP matches addresses by PREFIX and
-- echoes what it was asked), which is why only whole, checksum-valid wallets are polled.
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

-- NOMP's answer for an address it has no figures for: zeros and no workers.
local function says_nothing(observation, json)
  local workers = json.workers
  if type(workers) == "table" and next(workers) ~= nil then return false end
  return observation.paid == 0 and (observation.balance or 0) == 0
         and (observation.immature or 0) == 0
end

local pool = {
  name = "cpu-pool",
  currency = "ADVC",
  -- A whole, checksum-valid ADVC address and nothing else (no ".worker"): NOMP looks miners
  -- up by prefix, so a truncated wallet would be answered with another miner's figures.
  wallet_pattern = m2p.advc_address,
  enabled = m2p.env_bool("CPU_POOL_ENABLED", true),
  -- CPU_POOL_CONCURRENCY and CPU_POOL_PER_SECOND (0 = no cap) from the settings.
  limits = { concurrency = m2p.env_limit("CPU_POOL_CONCURRENCY", 8, true),
             per_second = m2p.env_limit("CPU_POOL_PER_SECOND", 10) },
}

function pool.request(wallet)
  return { url = BASE .. "?" .. m2p.urlencode(wallet),
           headers = { Accept = "application/json" } }
end

function pool.parse(response)
  local json, why = m2p.json_object(response)
  if not json then return nil, why end

  -- NOMP's error forms: {"result":"error","message":"Invalid wallet address"}, a bare
  -- {"result":"error"} (worker_stats without an address), {"error":...}.
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
    return nil, "miner is not a string (got " .. m2p.describe(miner) .. ")"
  end
  if strip_worker(miner) ~= response.wallet then
    return nil, string.format("response is for miner %q, not for the polled wallet",
                              miner:sub(1, 120))
  end

  local paid, err = m2p.first_num(json, { "paid" })
  if paid == nil then return nil, "no usable paid counter (" .. err .. ")" end
  if paid < 0 then return nil, "paid is negative (" .. tostring(paid) .. ")" end

  local observation = {
    paid = paid,
    balance = m2p.opt_num(json, "balance"),
    immature = m2p.opt_num(json, "immature"),
    hashrate = m2p.opt_num(json, "totalHash"),
    shares = m2p.opt_num(json, "totalShares"),
  }
  if says_nothing(observation, json) then
    return nil, "all-zero answer (paid, balance and immature 0, no workers): NOMP's answer "
                .. "for an address it has no figures for, not taken as this wallet's"
  end
  return observation
end

return pool
