-- pool.rplant.xyz: rplant's own pool software, pays in ADVC.
--
--   GET <RPLANT_URL>/<WALLET>        default https://pool.rplant.xyz/api/walletEx/advc
--
-- (the miner tools' form https://pool.rplant.xyz/api/wallet/<pool> works the same way: set
-- RPLANT_URL to it.)
--
-- Payout counter, first present field wins (a present but malformed one fails the poll, it is
-- never skipped for the next):
--   1. paid        2. totalPaid        3. stats.paid        4. total
-- The three explicit names mean "paid so far" and nothing else, so when the pool sends one it
-- is the counter. `total` is the field rplant actually sends today, and the widely used miner
-- tool reads it as the amount paid so far, but its meaning is inferred, and in YiiMP-like
-- software "total" is balance + paid: it is used only when none of the explicit names is there.
--
-- Atomic units: for some coins rplant reports amounts in atomic units (1 coin = 1e12). A
-- response is taken to be in atomic units when any amount (the counter, balance, unsold,
-- unpaid, immature, and total when it is not the counter) is >= RPLANT_ATOMIC_THRESHOLD
-- (default 1e6, the miner tool's rule); then every amount is divided by RPLANT_ATOMIC_DIVISOR
-- (default 1e12). Atomic amounts are whole numbers, so such a response with a fractional
-- amount is refused (mixed units): it is never guessed. A payout counter in atomic units is 0
-- or at least the pool's minimum payout (~1e11), far above the threshold, so a real atomic
-- response is always recognised; the price is that a wallet paid over 1e6 ADVC on rplant
-- would be read as atomic and under-rewarded (the safe direction), never rewarded a
-- million-fold.
--
-- Not an observation of this wallet: a body that is not a JSON object, an {"error": ...}
-- object, an `address` that is present and is not the polled wallet, and a body with none of
-- the counter fields (rplant's answer for an unknown wallet: {} or an empty body).

local DEFAULT_URL = "https://pool.rplant.xyz/api/walletEx/advc"
local BASE = m2p.env("RPLANT_URL", DEFAULT_URL):gsub("/+$", "")
local ATOMIC_THRESHOLD = m2p.env_number("RPLANT_ATOMIC_THRESHOLD", 1e6, 1, 1e18)
local ATOMIC_DIVISOR = m2p.env_number("RPLANT_ATOMIC_DIVISOR", 1e12, 1, 1e18)

local COUNTER_PATHS = { "paid", "totalPaid", "stats.paid", "total" }
local AMOUNT_FIELDS = { "balance", "unsold", "unpaid", "immature" }

local pool = {
  name = "rplant",
  currency = "ADVC",
  enabled = m2p.env_bool("RPLANT_ENABLED", true),
  limits = { concurrency = 8, per_second = 10 },
}

function pool.request(wallet)
  return { url = BASE .. "/" .. m2p.urlencode(wallet),
           headers = { Accept = "application/json" } }
end

function pool.parse(response)
  local json, why = m2p.json_object(response)
  if not json then return nil, why end
  if next(json) == nil then
    return nil, "empty object: the pool has nothing for this wallet"
  end

  local pool_error = json.error
  if pool_error ~= nil and not m2p.is_null(pool_error) and pool_error ~= false then
    local message = type(pool_error) == "string" and pool_error
                    or (type(json.message) == "string" and json.message) or "no message"
    return nil, "pool error: " .. message:sub(1, 200)
  end
  if json.result == "error" then
    return nil, "pool error: " .. (type(json.message) == "string" and json.message:sub(1, 200)
                                   or "no message")
  end

  local address = json.address
  if address ~= nil and not m2p.is_null(address) then
    if type(address) ~= "string" then
      return nil, "address is not a string (got " .. m2p.describe(address) .. ")"
    end
    if address ~= response.wallet then
      return nil, string.format("response is for address %q, not for the polled wallet",
                                address:sub(1, 120))
    end
  end

  local counter, path = m2p.first_num(json, COUNTER_PATHS)
  if counter == nil then
    if path:match("^none of") then
      return nil, "no paid counter (" .. path .. "): unknown wallet or nothing to report"
    end
    return nil, "unusable paid counter (" .. path .. ")"
  end
  if counter < 0 then return nil, path .. " is negative (" .. tostring(counter) .. ")" end

  local amounts = { paid = counter }
  for _, f in ipairs(AMOUNT_FIELDS) do amounts[f] = m2p.opt_num(json, f) end
  if path ~= "total" then amounts.total = m2p.opt_num(json, "total") end

  -- Atomic units: decided once for the whole response, so every amount has one scale.
  local atomic = false
  for _, x in pairs(amounts) do
    if x >= ATOMIC_THRESHOLD then atomic = true end
  end
  if atomic then
    for f, x in pairs(amounts) do
      if x % 1 ~= 0 then
        return nil, string.format("mixed units: amounts look atomic (>= %g) but %s is %s",
                                  ATOMIC_THRESHOLD, f == "paid" and path or f, tostring(x))
      end
    end
    for f, x in pairs(amounts) do amounts[f] = x / ATOMIC_DIVISOR end
  end

  local observation = amounts
  observation.hashrate = m2p.opt_num(json, "hashrate")
  return observation
end

return pool
