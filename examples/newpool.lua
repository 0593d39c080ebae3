-- A worked example: the pool script for a fictional pool, "newpool", that pays in ADVC.
--
-- Its API:   GET http://127.0.0.1:8088/api/stats/<WALLET>
--   200 {"wallet": "<WALLET>", "paid_total": "1.50000000", "pending": "0.02", "hashrate": 850}
--   200 {"error": "unknown wallet"}      for a wallet it has never seen
--
-- To add a pool: copy this file into pools/ under the pool's name, change the URL and the
-- fields, write one fixture per case (see newpool.fixture.json) and run
--   build/m2p-engine --pools examples --script-test examples/newpool.fixture.json
-- docs/scripting.md describes the contract; docs/pools.md how the shipped pools apply it.

-- Settings are read when the script loads; the engine reloads scripts when they change.
local BASE = m2p.env("NEWPOOL_URL", "http://127.0.0.1:8088/api/stats")

return {
  name = "newpool",          -- defaults to the file name
  currency = "ADVC",         -- what the amounts are in; convert.lua turns them into ADVC
  enabled = m2p.env_bool("NEWPOOL_ENABLED", true),
  limits = { concurrency = 4, per_second = 5 },   -- be gentle with someone else's server

  -- Only wallets that match reach request(); this is also the engine's default.
  wallet_pattern = "^[A-Za-z0-9]+$",

  request = function(wallet)
    return { url = BASE .. "/" .. m2p.urlencode(wallet) }
  end,

  -- The engine has already failed non-2xx answers and empty bodies. Everything else is up to
  -- parse: return an observation, or nil and a reason (the poll fails, nothing changes).
  parse = function(response)
    -- The decoded body when it is a JSON object; otherwise nil and why ("response is not JSON
    -- (truncated JSON (55 bytes))", "response is not a JSON object (got an array)").
    local json, why = m2p.json_object(response)
    if not json then return nil, why end
    if type(json.error) == "string" then return nil, "pool error: " .. json.error end
    if json.wallet ~= response.wallet then
      return nil, "answer is not about the polled wallet"
    end
    -- paid_total is the cumulative counter: rewards.lua awards its increases.
    local paid, err = m2p.first_num(json, { "paid_total" })
    if not paid then return nil, err end
    if paid < 0 then return nil, "paid_total is negative" end
    -- Optional fields: keep them only when they are sensible numbers.
    local pending = m2p.num(json.pending)
    local hashrate = m2p.num(json.hashrate)
    return {
      paid = paid,
      balance = pending and pending >= 0 and pending or nil,
      hashrate = hashrate and hashrate >= 0 and hashrate or nil,
    }
  end,
}
