-- Conversion of pool payouts to ADVC, shared by every pool.
--
-- to_advc(amount, currency, ctx) -> ADVC amount. ADVC is the identity; BTC (zpool) is
-- multiplied by BTC_TO_ADVC_RATE. An unknown currency is an error (the poll fails and is
-- retried), never a zero: a silent zero would be a payout lost for good.
local rates = {
  ADVC = 1,
  BTC = m2p.env_number("BTC_TO_ADVC_RATE", 1000000, 1e-12, 1e15),
}

local convert = { rates = rates }

function convert.to_advc(amount, currency, ctx)
  local rate = rates[currency]
  if not rate then
    error(string.format("no conversion rate for currency %q (known: ADVC, BTC)",
                        tostring(currency)), 2)
  end
  if rate == 1 then return amount end
  -- In units of 1e-8 (docs/reliability.md, "Money exact to 1e-8"): 0.00012345 BTC is 12345
  -- units, times 1e6 is exactly 123.45 ADVC, where 0.00012345 * 1e6 in doubles is
  -- 123.44999999999999. The product is rounded to a unit once (exact with a whole-number
  -- rate while it is below 2^53 units). An amount with more than 8 decimals, or beyond
  -- m2p.EXACT_LIMIT (no exact decimal: rewards.lua holds its awards), is multiplied as it is.
  local units = m2p.units(amount)
  if units == nil or units / 1e8 ~= amount then return amount * rate end
  local scaled = units * rate
  if scaled >= 0 then return math.floor(scaled + 0.5) / 1e8 end
  return -math.floor(-scaled + 0.5) / 1e8
end

return convert
