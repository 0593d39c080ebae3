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
  return amount * rate
end

return convert
