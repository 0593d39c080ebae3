-- pool.rplant.xyz: rplant's own pool software, pays in ADVC.
--
--   GET <RPLANT_URL>/<WALLET>     default https://pool.rplant.xyz/api/walletEx/advc
--   GET <RPLANT_DASH_URL>         the metadata request; default /api/dash on RPLANT_URL's host
--
-- (the miner tools' form https://pool.rplant.xyz/api/wallet/<pool> works the same way: set
-- RPLANT_URL to it.)
--
-- Units: since early 2024 rplant reports every coin's amounts in atomic units, and its
-- clients divide them by 10^div2, where div2 is given per coin by /api/dash as
-- tbs.<coin>.info.div2 (docs/pools.md cites the clients). Here every amount is divided by
-- 10^div2 with div2 =
--   1. RPLANT_DIV2 when the operator sets it (an integer 0-30; 0 = amounts already in coins);
--      /api/dash is then not requested at all;
--   2. else tbs.<coin>.info.div2 from /api/dash, fetched by the engine as this pool's
--      metadata (at start, then hourly; the last good answer is kept), where <coin> is the
--      pool key: the last path segment of RPLANT_URL (`advc` by default).
-- With neither, the poll fails and says why: an amount is never scaled by guessing from its
-- size. The observation says which: `unit = "div2=<n>"`; when it changes between two polls
-- the rules take a new baseline and award nothing (docs/scripting.md, The observation). With div2 > 0 the amounts that decide awards (the counter and the payments) must be
-- whole numbers of atomic units; a fraction means the pool's units are not what div2 says,
-- and the poll fails rather than award a wrong amount.
--
-- Payout counter, first present field wins (a present but malformed one fails the poll, it is
-- never skipped for the next):
--   1. paid        2. totalPaid        3. stats.paid        4. total
-- The three explicit names mean "paid so far" and nothing else, so when the pool sends one it
-- is the counter. `total` is the field rplant actually sends today, and the widely used miner
-- tool reads it as the amount paid so far, but its meaning is inferred, and in YiiMP-like
-- software "total" is balance + paid: it is used only when none of the explicit names is there.
--
-- Payments: walletEx's `payments` [{time, amount, tx}] become observation.payouts (amounts
-- divided like the rest), the signal rewards.lua prefers to the counter. An entry without a
-- usable tx id, or whose amount is missing, malformed or <= 0, is skipped with a log record
-- (a later poll that lists it correctly awards it); a `payments` that is present but not a
-- list fails the poll.
--
-- Not an observation of this wallet: a body that is not a JSON object, an {"error": ...}
-- object, an `address` that is present and is not the polled wallet, and a body with none of
-- the counter fields (rplant's answer for an unknown wallet: {} or an empty body).

local DEFAULT_URL = "https://pool.rplant.xyz/api/walletEx/advc"
local BASE = m2p.env("RPLANT_URL", DEFAULT_URL):gsub("/+$", "")
local COIN = BASE:match("/([^/?#]+)$") or "advc"
local DASH_URL = m2p.env("RPLANT_DASH_URL",
                         (BASE:match("^(%a[%w+.-]*://[^/?#]+)") or "https://pool.rplant.xyz")
                           .. "/api/dash")
local DIV2 = m2p.env_number("RPLANT_DIV2", nil, 0, 30)
if DIV2 ~= nil and DIV2 % 1 ~= 0 then
  error("RPLANT_DIV2: must be a whole number of decimals 0-30 (got " .. tostring(DIV2) .. ")")
end

local COUNTER_PATHS = { "paid", "totalPaid", "stats.paid", "total" }
local AMOUNT_FIELDS = { "balance", "unsold", "unpaid", "immature" }

---------------------------------------------------------------------------------------------
-- /api/dash: {"tbs": {"<coin>": {"symbol": "ADVC", "info": {"div2": 8, ...}, ...}, ...}}
---------------------------------------------------------------------------------------------
local function parse_dash(response)
  local json, why = m2p.json_object(response)
  if not json then return nil, "/api/dash: " .. why end
  local tbs = json.tbs
  if type(tbs) ~= "table" then return nil, "/api/dash has no tbs object" end
  local entry = tbs[COIN]
  if type(entry) ~= "table" then
    return nil, string.format("/api/dash lists no pool %q under tbs (the last path segment of "
                              .. "RPLANT_URL must be rplant's pool key)", COIN)
  end
  local raw = type(entry.info) == "table" and entry.info.div2 or nil
  if raw == nil or m2p.is_null(raw) then
    return nil, "/api/dash has no tbs." .. COIN .. ".info.div2"
  end
  local div2 = m2p.num(raw)
  if div2 == nil or div2 % 1 ~= 0 or div2 < 0 or div2 > 30 then
    return nil, "tbs." .. COIN .. ".info.div2 is not a whole number 0-30 (got "
                .. m2p.describe(raw) .. ")"
  end
  -- Only what the polls need: this table is kept and handed to every poll.
  return { coin = COIN, div2 = div2 }
end

local pool = {
  name = "rplant",
  currency = "ADVC",
  wallet_pattern = m2p.advc_address, -- a whole, checksum-valid ADVC address
  enabled = m2p.env_bool("RPLANT_ENABLED", true),
  -- RPLANT_CONCURRENCY and RPLANT_PER_SECOND (0 = no cap) from the settings.
  limits = { concurrency = m2p.env_limit("RPLANT_CONCURRENCY", 8, true),
             per_second = m2p.env_limit("RPLANT_PER_SECOND", 10) },
  metadata = DIV2 == nil and { url = DASH_URL, refresh = 3600, parse = parse_dash } or nil,
}

function pool.request(wallet)
  return { url = BASE .. "/" .. m2p.urlencode(wallet),
           headers = { Accept = "application/json" } }
end

-- The exponent for this poll: the operator's, else the metadata's; nil and why when unknown.
local function div2_of(response)
  if DIV2 ~= nil then return DIV2 end
  local metadata = response.metadata
  if type(metadata) == "table" and type(metadata.div2) == "number" then return metadata.div2 end
  return nil, string.format("units unknown: no div2 for pool key %q from /api/dash (%s); "
                            .. "set RPLANT_DIV2 to give it", COIN,
                            tostring(response.metadata_error or "no metadata"):sub(1, 200))
end

-- An amount that decides awards, in atomic units: whole when div2 > 0.
local function atomic(x, what, div2)
  if div2 > 0 and x % 1 ~= 0 then
    return nil, string.format("%s is %s, not a whole number of atomic units (div2 = %d): the "
                              .. "pool's units are not what div2 says", what, tostring(x), div2)
  end
  return x / 10 ^ div2
end

-- A tx id the engine accepts (m2p.tx_id); an id that cannot be exact (a JSON number of 2^53
-- or more) is skipped with a warning, a missing one quietly (a payout not sent yet).
local function usable_tx(tx)
  local id, why = m2p.tx_id(tx)
  if id == nil and type(tx) == "number" and tx % 1 == 0 and tx >= 2 ^ 53 then
    m2p.log("warning", "rplant_payment_skipped", { tx = string.format("%.17g", tx), detail = why .. ", skipped" })
  end
  return id
end

local function parse_payments(list, wallet, div2)
  local out, seen = {}, {}
  for i, entry in ipairs(list) do
    local tx = type(entry) == "table" and usable_tx(entry.tx) or nil
    local amount, err = m2p.num(type(entry) == "table" and entry.amount or nil)
    if tx == nil then -- a payment not sent yet has no tx: normal, awarded once it has one
      m2p.log("debug", "rplant_payment_skipped", { wallet = wallet, index = i,
        detail = "no usable tx id" })
    elseif amount == nil or amount <= 0 then
      m2p.log("warning", "rplant_payment_skipped", { wallet = wallet, index = i, tx = tx,
        detail = "bad amount: " .. (err or tostring(amount)) })
    elseif not seen[tx] then
      seen[tx] = true
      local coins, why = atomic(amount, "payments[" .. i .. "].amount", div2)
      if coins == nil then return nil, why end
      local time = m2p.num(entry.time)
      if time ~= nil and time < 0 then time = nil end
      out[#out + 1] = { tx = tx, amount = coins, time = time }
    end
  end
  return out
end

-- nil when this is an answer about this wallet; else why not.
local function not_this_wallet(json, wallet)
  if next(json) == nil then return "empty object: the pool has nothing for this wallet" end
  local pool_error = json.error
  if pool_error ~= nil and not m2p.is_null(pool_error) and pool_error ~= false then
    local message = type(pool_error) == "string" and pool_error
                    or (type(json.message) == "string" and json.message) or "no message"
    return "pool error: " .. message:sub(1, 200)
  end
  if json.result == "error" then
    return "pool error: " .. (type(json.message) == "string" and json.message:sub(1, 200)
                              or "no message")
  end
  local address = json.address
  if address ~= nil and not m2p.is_null(address) then
    if type(address) ~= "string" then
      return "address is not a string (got " .. m2p.describe(address) .. ")"
    end
    if address ~= wallet then
      return string.format("response is for address %q, not for the polled wallet",
                           address:sub(1, 120))
    end
  end
  return nil
end

function pool.parse(response)
  local json, why = m2p.json_object(response)
  if not json then return nil, why end
  why = not_this_wallet(json, response.wallet)
  if why then return nil, why end

  local counter, path = m2p.first_num(json, COUNTER_PATHS)
  if counter == nil then
    if path:match("^none of") then
      return nil, "no paid counter (" .. path .. "): unknown wallet or nothing to report"
    end
    return nil, "unusable paid counter (" .. path .. ")"
  end
  if counter < 0 then return nil, path .. " is negative (" .. tostring(counter) .. ")" end

  local div2, unknown = div2_of(response)
  if div2 == nil then return nil, unknown end
  local paid, bad = atomic(counter, path, div2)
  if paid == nil then return nil, bad end

  -- The scale of every amount here: when it changes (a wrong /api/dash answer, a new
  -- RPLANT_DIV2), rewards.lua takes a new baseline instead of comparing counters across units.
  local observation = { paid = paid, unit = string.format("div2=%d", div2) }
  for _, f in ipairs(AMOUNT_FIELDS) do
    local x = m2p.opt_num(json, f)
    if x ~= nil then observation[f] = x / 10 ^ div2 end
  end
  if path ~= "total" then
    local total = m2p.opt_num(json, "total")
    if total ~= nil then observation.total = total / 10 ^ div2 end
  end
  local payments = json.payments
  if payments ~= nil and not m2p.is_null(payments) then
    if type(payments) ~= "table" or (next(payments) ~= nil and payments[1] == nil) then
      return nil, "payments is not a list (got " .. m2p.describe(payments) .. ")"
    end
    observation.payouts, bad = parse_payments(payments, response.wallet, div2)
    if observation.payouts == nil then return nil, bad end
  end
  observation.hashrate = m2p.opt_num(json, "hashrate")
  return observation
end

return pool
