-- zpool.ca: a YiiMP fork that pays in BTC (convert.lua turns BTC into ADVC).
--
--   GET <ZPOOL_URL>?address=<WALLET>     default https://zpool.ca/api/walletEx
--
-- Payout signal, in the order rewards.lua prefers them:
--   1. `payouts` [{time, amount, tx}] (YiiMP with YAAMP_API_PAYOUTS, as on zpool): the
--      completed payouts with a tx of the LAST 24 HOURS, newest first, cached 60 s; stock
--      YiiMP prints `time` as a number and `amount` as a string, zpool the other way round
--      (both are read). Each tx id is awarded once. An entry without a usable tx id is
--      skipped, not refused: a payout the pool has not sent yet has no tx, and it is awarded
--      when a later poll lists it with one. An entry whose amount is missing, malformed or
--      <= 0 is skipped with a warning (the rest of the list still counts; the skipped tx is
--      awarded if the pool later lists it correctly). The same tx twice in one list is kept
--      once. A `payouts` that is present but not a list fails the poll. An answer WITHOUT the
--      list is passed on without it: for an account counted by tx ids that is "no payout
--      information" for the poll (rewards.lua), never a change of counter.
--   2. `paid`, cumulative: YiiMP has none, older docs show one; used when there is no list.
--   3. `paid24h`: YiiMP's sliding 24-hour window, the fallback. Increases are awarded,
--      decreases are old payouts leaving the window. A payout that lands in the same poll
--      interval as an equal or larger one leaving the window is missed: see docs/pools.md.
-- `total` (= balance + unsold + paid24h) is never used as a counter: it drops whenever a
-- payout leaves the window.
--
-- Rate limit: YiiMP lets one walletEx request per minute per client IP through (a moving
-- average over all wallets). A refused request answers 200 with an EMPTY body, an overloaded
-- pool "503 Disabled, server overloaded": both fail the poll (the engine refuses empty bodies
-- and non-2xx before parse), never a zero balance. The limit below keeps the engine under
-- that: one request at a time, one every 65 s by default (ZPOOL_PER_SECOND raises it only
-- for an operator who spreads zpool over several egress addresses or proxies).
--
-- Not an observation of this wallet: a body that is not a JSON object, an `error` that is
-- not empty (a normal zpool answer carries "error": ""), a `currency` other than BTC (the
-- conversion rate is for BTC; a wallet paid in another coin must not be converted as BTC),
-- an `address` that is present and is not the polled wallet, and a body with none of
-- payouts, paid, paid24h. An unknown or locked wallet is a 200 with an empty body, which
-- the engine refuses before parse.

local DEFAULT_URL = "https://zpool.ca/api/walletEx"
-- The query is ours to build (?address=): anything already in ZPOOL_URL's query is dropped.
local BASE = m2p.env("ZPOOL_URL", DEFAULT_URL):match("^([^?#]*)")
local PER_SECOND = m2p.env_number("ZPOOL_PER_SECOND", 1 / 65, 1e-6, 100)

-- A counter field: absent -> nil; present -> a number >= 0 or an error.
local function counter_num(json, field)
  local v = m2p.get(json, field)
  if v == nil then return nil end
  local x, err = m2p.num(v)
  if x == nil then return nil, field .. ": " .. err end
  if x < 0 then return nil, field .. " is negative (" .. tostring(x) .. ")" end
  return x
end

-- Bech32 addresses (bc1...) are case-insensitive; base58 ones are not.
local function same_address(a, b)
  if type(a) ~= "string" then return false end
  if a == b then return true end
  return a:lower():match("^bc1") ~= nil and a:lower() == b:lower()
end

-- A tx id the engine accepts (m2p.tx_id); an id that cannot be exact (a JSON number of 2^53
-- or more) is skipped with a warning, a missing one quietly (a payout not sent yet).
local function usable_tx(tx)
  local id, why = m2p.tx_id(tx)
  if id == nil and type(tx) == "number" and tx % 1 == 0 and tx >= 2 ^ 53 then
    m2p.log("warning", "zpool_payout_skipped", { tx = string.format("%.17g", tx), detail = why .. ", skipped" })
  end
  return id
end

local function parse_payouts(list, wallet)
  local out, seen = {}, {}
  for i, entry in ipairs(list) do
    if type(entry) ~= "table" then
      m2p.log("warning", "zpool_payout_skipped", { wallet = wallet, index = i,
        detail = "entry is not an object" })
    else
      local tx = usable_tx(entry.tx)
      local amount, err = m2p.num(entry.amount)
      if tx == nil then
        m2p.log("debug", "zpool_payout_skipped", { wallet = wallet, index = i,
          detail = "no usable tx id (" .. m2p.describe(entry.tx) .. ")" })
      elseif amount == nil or amount <= 0 then
        m2p.log("warning", "zpool_payout_skipped", { wallet = wallet, index = i, tx = tx,
          detail = "bad amount: " .. (err or tostring(amount)) })
      elseif not seen[tx] then
        seen[tx] = true
        local time = m2p.num(entry.time)
        if time ~= nil and time < 0 then time = nil end
        out[#out + 1] = { tx = tx, amount = amount, time = time }
      end
    end
  end
  return out
end

local pool = {
  name = "zpool",
  currency = "BTC",
  wallet_pattern = m2p.btc_address, -- zpool pays BTC; bech32 is polled lower-cased
  enabled = m2p.env_bool("ZPOOL_ENABLED", true),
  limits = { concurrency = 1, per_second = PER_SECOND, max_interval = 72000 }, -- payouts: last 24 h
  -- Where this engine's zpool requests leave from: YiiMP's limit is per client address.
  proxy = m2p.env("ZPOOL_PROXY"),
  interface = m2p.env("ZPOOL_INTERFACE"),
}

function pool.request(wallet)
  return { url = BASE .. "?address=" .. m2p.urlencode(wallet),
           headers = { Accept = "application/json" } }
end

function pool.parse(response)
  local json, why = m2p.json_object(response)
  if not json then return nil, why end

  -- A normal walletEx answer carries "error": "" (zpool): empty or blank is no error.
  local pool_error = json.error
  local blank = type(pool_error) == "string" and not pool_error:find("%S")
  if pool_error ~= nil and not m2p.is_null(pool_error) and pool_error ~= false and not blank then
    local message = type(pool_error) == "string" and pool_error
                    or (type(json.message) == "string" and json.message) or "no message"
    return nil, "pool error: " .. message:sub(1, 200)
  end

  local currency = json.currency
  if currency ~= nil and not m2p.is_null(currency) and currency ~= "BTC" then
    return nil, "wallet is paid in " .. m2p.describe(currency) .. ", not BTC: refusing to convert"
  end

  local address = json.address
  if address ~= nil and not m2p.is_null(address) and not same_address(address, response.wallet) then
    return nil, "response is for address " .. m2p.describe(address) .. ", not for the polled wallet"
  end

  local observation = {}
  local payouts = json.payouts
  if payouts ~= nil and not m2p.is_null(payouts) then
    if type(payouts) ~= "table" or (next(payouts) ~= nil and payouts[1] == nil) then
      return nil, "payouts is not a list (got " .. m2p.describe(payouts) .. ")"
    end
    observation.payouts = parse_payouts(payouts, response.wallet)
  end

  local err
  observation.paid, err = counter_num(json, "paid")
  if err then return nil, err end
  observation.paid24h, err = counter_num(json, "paid24h")
  if err then return nil, err end
  if not (observation.payouts or observation.paid or observation.paid24h) then
    return nil, "no payouts, paid or paid24h: not a walletEx answer for this wallet"
  end

  observation.balance = m2p.opt_num(json, "balance")
  observation.unsold = m2p.opt_num(json, "unsold")
  observation.unpaid = m2p.opt_num(json, "unpaid")
  observation.total = m2p.opt_num(json, "total")
  return observation
end

return pool
