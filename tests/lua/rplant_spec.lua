-- pools/rplant.lua: rplant's walletEx, its field variants, its units (10^div2, from /api/dash
-- or RPLANT_DIV2) and its payments.
local helper = require("tests.lua.helper")

local WALLET = "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"
local OTHER = "Ab8uJDRufbThLGmZ6zf7PbxZnQ8LLYHzuy"
local TX1 = "9f2c4e1a7b3d5f60818e2a4c6b0d9e7f1a3c5e7092b4d6f8a0c2e4f6a8b0d2e4"
local TX2 = "1b3d5f7092a4c6e8f0b2d4f6a8c0e2f4a6b8d0f2e4a6c8e0f2a4b6c8d0e2f4a6"

local function wallet(fields)
  local t = { address = WALLET, balance = 0.35, unsold = 0, unpaid = 0.35, total = 12.5 }
  for k, v in pairs(fields or {}) do t[k] = v end
  return t
end

-- What /api/dash looks like to the clients that read it: tbs.<pool key>.info.div2.
local function dash(coins)
  local tbs = {}
  for key, div2 in pairs(coins) do tbs[key] = { symbol = key:upper(), info = { div2 = div2 } } end
  return { tbs = tbs }
end

describe("pools/rplant.lua", function()
  -- Most cases read amounts in coins (RPLANT_DIV2=0) so that they stay readable; the units
  -- have their own section below.
  local w, pool
  local function parse(body)
    return pool.parse(w:response(body, { wallet = WALLET }))
  end

  before_each(function()
    w = helper.world({ env = { RPLANT_DIV2 = "0" } })
    pool = w:load("pools/rplant.lua")
  end)

  it("declares an enabled ADVC pool named rplant with limits", function()
    assert.are.equal("rplant", pool.name)
    assert.are.equal("ADVC", pool.currency)
    assert.is_true(pool.enabled)
    assert.are.same({ concurrency = 8, per_second = 10 }, pool.limits)
  end)

    it("takes its limits from RPLANT_CONCURRENCY and RPLANT_PER_SECOND (0 = no cap)", function()
      local function limits(env)
        local e = { RPLANT_DIV2 = "0" }
        for k, v in pairs(env) do e[k] = v end
        return helper.world({ env = e }):load("pools/rplant.lua").limits
      end
      assert.are.same({ concurrency = 64 },
                      limits({ RPLANT_CONCURRENCY = "64", RPLANT_PER_SECOND = "0" }))
      assert.are.same({ concurrency = 10000, per_second = 2.5 },
                      limits({ RPLANT_CONCURRENCY = "0", RPLANT_PER_SECOND = "2.5" }))
      local ok, err = pcall(limits, { RPLANT_CONCURRENCY = "2.5" })
      assert.is_false(ok)
      assert.matches("RPLANT_CONCURRENCY", err)
    end)

  describe("request", function()
    it("appends the wallet to the walletEx path", function()
      assert.are.equal("https://pool.rplant.xyz/api/walletEx/advc/" .. WALLET,
                       pool.request(WALLET).url)
    end)

    it("uses RPLANT_URL, with or without a trailing slash", function()
      for _, base in ipairs({ "https://pool.rplant.xyz/api/wallet/advc",
                              "https://pool.rplant.xyz/api/wallet/advc/" }) do
        local p = helper.world({ env = { RPLANT_URL = base } }):load("pools/rplant.lua")
        assert.are.equal("https://pool.rplant.xyz/api/wallet/advc/" .. WALLET,
                         p.request(WALLET).url)
      end
    end)
  end)

  describe("the metadata request (/api/dash)", function()
    local function load(env)
      local world = helper.world({ env = env })
      return world:load("pools/rplant.lua"), world
    end

    it("is declared without RPLANT_DIV2: /api/dash on RPLANT_URL's host, hourly", function()
      local p = load({})
      assert.are.equal("https://pool.rplant.xyz/api/dash", p.metadata.url)
      assert.are.equal(3600, p.metadata.refresh)
      assert.are.equal("function", type(p.metadata.parse))
      p = load({ RPLANT_URL = "http://127.0.0.1:8080/api/walletEx/advc" })
      assert.are.equal("http://127.0.0.1:8080/api/dash", p.metadata.url)
    end)

    it("follows RPLANT_DASH_URL", function()
      local p = load({ RPLANT_DASH_URL = "https://mirror.example/api/dash" })
      assert.are.equal("https://mirror.example/api/dash", p.metadata.url)
    end)

    it("is not made at all when RPLANT_DIV2 is set (0 included)", function()
      assert.is_nil(load({ RPLANT_DIV2 = "8" }).metadata)
      assert.is_nil(load({ RPLANT_DIV2 = "0" }).metadata)
    end)

    it("refuses a RPLANT_DIV2 that is not a whole number 0-30 at load", function()
      for _, bad in ipairs({ "31", "-1", "8.5", "eight" }) do
        assert.has_error(function() load({ RPLANT_DIV2 = bad }) end)
      end
    end)

    it("keeps only the pool key's div2", function()
      local p, world = load({})
      local md = p.metadata.parse(world:response(dash({ advc = 8, microbitcoin = 4 })))
      assert.are.same({ coin = "advc", div2 = 8 }, md)
    end)

    it("reads the pool key from RPLANT_URL's last path segment", function()
      local p, world = load({ RPLANT_URL = "https://pool.rplant.xyz/api/wallet/adventurecoin/" })
      local md = p.metadata.parse(world:response(dash({ advc = 12, adventurecoin = 8 })))
      assert.are.same({ coin = "adventurecoin", div2 = 8 }, md)
    end)

    it("accepts div2 as a string, refuses anything that is not a whole number 0-30", function()
      local p, world = load({})
      assert.are.equal(12, p.metadata.parse(world:response({ tbs = { advc = {
        info = { div2 = "12" } } } })).div2)
      for _, bad in ipairs({ 8.5, -1, 31, "x", world.null }) do
        local md, reason = p.metadata.parse(world:response({ tbs = { advc = {
          info = { div2 = bad } } } }))
        assert.is_nil(md)
        assert.is_string(reason)
      end
    end)

    it("says what is missing", function()
      local p, world = load({})
      local function reason(body) return select(2, p.metadata.parse(world:response(body))) end
      assert.matches("no tbs", reason({ pools = {} }))
      assert.matches('no pool "advc"', reason(dash({ microbitcoin = 4 })))
      assert.matches("info.div2", reason({ tbs = { advc = { info = {} } } }))
      assert.matches("not JSON", reason("<html>Just a moment...</html>"))
    end)
  end)

  describe("units", function()
    local function parse_with(metadata, body, env)
      local world = helper.world({ env = env })
      local p = world:load("pools/rplant.lua")
      local response = world:response(body, { wallet = WALLET })
      if type(metadata) == "table" then response.metadata = metadata
      else response.metadata_error = metadata end
      return p.parse(response)
    end

    it("divides every amount by 10^div2 from the metadata (8)", function()
      local obs = parse_with({ coin = "advc", div2 = 8 },
        wallet({ total = 1250000000, balance = 35000000, unpaid = 35000000, unsold = 0 }))
      assert.are.same({ paid = 12.5, balance = 0.35, unpaid = 0.35, unsold = 0,
                        unit = "div2=8" }, obs)
    end)

    it("awards what the magnitude rule got wrong: 1 ADVC and 0.005 ADVC at div2 8", function()
      -- The old rule divided by 1e12 once an amount was >= 1e6 and never below that.
      assert.are.equal(1, parse_with({ div2 = 8 }, wallet({ total = 100000000, balance = 0,
                                                          unpaid = 0 })).paid)
      assert.are.equal(0.005, parse_with({ div2 = 8 }, wallet({ total = 500000, balance = 0,
                                                              unpaid = 0 })).paid)
    end)

    it("divides by 1e12 for a coin with div2 12, amounts as strings too", function()
      local obs = parse_with({ div2 = 12 }, wallet({ total = "12500000000000",
        balance = "350000000000", unpaid = "350000000000", unsold = "0" }))
      assert.are.same({ paid = 12.5, balance = 0.35, unpaid = 0.35, unsold = 0,
                        unit = "div2=12" }, obs)
    end)

    it("lets RPLANT_DIV2 override the metadata, 0 meaning coins", function()
      local obs = parse_with({ div2 = 12 }, wallet({ total = 12500000, balance = 0, unpaid = 0 }),
                             { RPLANT_DIV2 = "6" })
      assert.are.equal(12.5, obs.paid)
      assert.are.equal("div2=6", obs.unit)
      obs = parse_with(nil, wallet(), { RPLANT_DIV2 = "0" })
      assert.are.same({ paid = 12.5, balance = 0.35, unpaid = 0.35, unsold = 0,
                        unit = "div2=0" }, obs)
    end)

    it("fails with the reason when the metadata is unavailable and nothing overrides it", function()
      local obs, reason = parse_with("HTTP 503", wallet({ total = 1250000000 }))
      assert.is_nil(obs)
      assert.are.equal('units unknown: no div2 for pool key "advc" from /api/dash (HTTP 503); '
                       .. "set RPLANT_DIV2 to give it", reason)
      obs, reason = parse_with(nil, wallet({ total = 1250000000 }))
      assert.is_nil(obs)
      assert.matches("no metadata", reason)
    end)

    it("refuses a fractional counter when div2 > 0 (the units are not what div2 says)", function()
      local obs, reason = parse_with({ div2 = 8 }, wallet({ total = 12.5 }))
      assert.is_nil(obs)
      assert.matches("not a whole number of atomic units %(div2 = 8%)", reason)
    end)

    it("never scales by size: a huge or tiny counter is divided by 10^div2 and nothing else", function()
      for _, total in ipairs({ 1, 999999, 1e6, 5e11, 1e12, 12345678901234 }) do
        assert.are.equal(total / 1e8, parse_with({ div2 = 8 }, wallet({ total = total,
          balance = 0, unpaid = 0 })).paid)
      end
    end)
  end)

  -- The observation's unit ("div2=<n>") tells rewards.lua when the scale changed: a counter
  -- read with another div2 is never compared with the last one (the review: 450 ADVC awarded
  -- from nothing when /api/dash said 7 instead of 8).
  describe("a change of units between polls", function()
    local T0 = 1700000000
    local function polls(steps, env)
      local world = helper.world({ env = env or {} })
      local p = world:load("pools/rplant.lua")
      local rules = world:load("scripts/rewards.lua")
      local state, got = nil, {}
      for i, step in ipairs(steps) do
        local response = world:response(wallet(step.body), { wallet = WALLET })
        response.metadata = { coin = "advc", div2 = step.div2 }
        local obs = assert(p.parse(response))
        local ctx = { pool = "rplant", currency = "ADVC", player_id = 7, username = "ann",
                      wallet = WALLET, wallet_id = "0ae2865e2c2c50e5", now = T0 + 600 * i }
        function ctx.to_advc(x) return x end
        local previous = state and helper.json_decode(state, world.null)
        local advc = 0
        for _, a in ipairs(rules.decide(previous, obs, ctx) or {}) do advc = advc + a.advc end
        state = helper.json_encode(obs, world.null)
        got[i] = advc
      end
      return got, world
    end
    local function at(div2, total) return { div2 = div2, body = { total = total, balance = 0,
                                                                  unpaid = 0 } } end

    it("takes a new baseline and awards nothing when div2 drops (8 -> 7)", function()
      local got, world = polls({ at(8, 5000000000), at(7, 5000000000), at(7, 5100000000) })
      assert.are.same({ 0, 0, 10 }, got)
      local changed = world:logged("reward_units_changed")
      assert.are.equal(1, #changed)
      assert.are.equal("warning", changed[1].level)
      assert.are.equal("div2=8", changed[1].fields.previous_unit)
      assert.are.equal("div2=7", changed[1].fields.unit)
    end)

    it("awards nothing when div2 is too large for 3 polls and then right again", function()
      local got = polls({ at(8, 5000000000), at(12, 5000000000), at(12, 5000000000),
                          at(12, 5000000000), at(8, 5000000000), at(8, 5050000000) })
      assert.are.same({ 0, 0, 0, 0, 0, 0.5 }, got)
    end)

    it("keeps the payments remembered: a tx is never awarded again in the new units", function()
      local P = { time = 1, amount = 200000000, tx = "t1" }
      local got = polls({ { div2 = 8, body = { total = 0, payments = {} } },
                          { div2 = 8, body = { total = 200000000, payments = { P } } },
                          { div2 = 7, body = { total = 200000000, payments = { P } } },
                          { div2 = 8, body = { total = 200000000, payments = { P } } } })
      assert.are.same({ 0, 2, 0, 0 }, got)
    end)

    -- The review: a state the previous release wrote (its magnitude rule: 100500000 / 1e12)
    -- compared with the same figures read with div2 = 8 (1.005 ADVC).
    it("starts a new baseline on a state written without a unit (the previous release)", function()
      local world = helper.world()
      local p = world:load("pools/rplant.lua")
      local rules = world:load("scripts/rewards.lua")
      local previous = { paid = 0.0001005, balance = 0.000002, unpaid = 0.000002,
                         accounted = { mode = "paid", epoch = 0, count = 0, paid = 0.0001005 } }
      local response = world:response(wallet({ total = 100500000, balance = 2000000,
                                               unpaid = 2000000 }), { wallet = WALLET })
      response.metadata = { coin = "advc", div2 = 8 }
      local obs = assert(p.parse(response))
      local ctx = { pool = "rplant", currency = "ADVC", player_id = 7, username = "ann",
                    wallet = WALLET, wallet_id = "0ae2865e2c2c50e5", now = T0 }
      function ctx.to_advc(x) return x end
      assert.is_nil(rules.decide(previous, obs, ctx))
      assert.are.equal(1.005, obs.accounted.paid)
      assert.are.equal("div2=8", obs.accounted.unit)
    end)
  end)

  describe("payments", function()
    local world, p
    local function parse8(body)
      local response = world:response(body, { wallet = WALLET })
      response.metadata = { coin = "advc", div2 = 8 }
      return p.parse(response)
    end

    before_each(function()
      world = helper.world()
      p = world:load("pools/rplant.lua")
    end)

    it("become payouts with tx ids, amounts in coins, times as numbers", function()
      local obs = parse8(wallet({ total = 1250000000, balance = 0, unpaid = 0, payments = {
        { time = "1733003600", amount = "750000000", tx = TX2 },
        { time = 1733000000, amount = 500000000, tx = TX1 } } }))
      assert.are.same({ { tx = TX2, amount = 7.5, time = 1733003600 },
                        { tx = TX1, amount = 5, time = 1733000000 } }, obs.payouts)
      assert.are.equal(12.5, obs.paid)
    end)

    it("skip entries without a usable tx id or amount, with a log record", function()
      local obs = parse8(wallet({ total = 1250000000, balance = 0, unpaid = 0, payments = {
        { time = 1, amount = "100", tx = world.null }, { time = 2, amount = "x", tx = TX1 },
        { time = 3, amount = 0, tx = TX2 }, "junk", { time = 4, amount = 100000000, tx = TX1 } } }))
      assert.are.same({ { tx = TX1, amount = 1, time = 4 } }, obs.payouts)
      assert.are.equal(4, #world:logged("rplant_payment_skipped"))
    end)

    it("skip numeric tx ids of 2^53 or more (not exact as JSON numbers), with a warning", function()
      local response = world:response('{"address": "' .. WALLET .. '", "total": 300000000, '
        .. '"payments": [{"time": 1, "amount": 100000000, "tx": 18446744073709551617},'
        .. '{"time": 1, "amount": 200000000, "tx": 18446744073709551618},'
        .. '{"time": 1, "amount": 100000000, "tx": 4242}]}', { wallet = WALLET })
      response.metadata = { coin = "advc", div2 = 8 }
      local obs = p.parse(response)
      assert.are.same({ { tx = "4242", amount = 1, time = 1 } }, obs.payouts)
      local warnings = 0
      for _, r in ipairs(world:logged("rplant_payment_skipped")) do
        if r.level == "warning" then warnings = warnings + 1 end
      end
      assert.are.equal(2, warnings)
    end)

    it("keep a tx listed twice once", function()
      local obs = parse8(wallet({ total = 0, payments = {
        { time = 1, amount = 100000000, tx = TX1 }, { time = 1, amount = 100000000, tx = TX1 } } }))
      assert.are.equal(1, #obs.payouts)
    end)

    it("refuse a fractional atomic amount and a payments that is not a list", function()
      local obs, reason = parse8(wallet({ total = 0, payments = {
        { time = 1, amount = 0.5, tx = TX1 } } }))
      assert.is_nil(obs)
      assert.matches("payments%[1%]%.amount is 0%.5", reason)
      obs, reason = parse8(wallet({ total = 0, payments = { tx = TX1 } }))
      assert.is_nil(obs)
      assert.matches("payments is not a list", reason)
    end)

    it("are absent from the observation when the pool sends none", function()
      assert.is_nil(parse8(wallet({ total = 0 })).payouts)
      assert.are.same({}, parse8(wallet({ total = 0, payments = {} })).payouts)
    end)
  end)

  describe("the paid counter", function()
    it("is total when rplant sends only its usual fields", function()
      assert.are.same({ paid = 12.5, balance = 0.35, unsold = 0, unpaid = 0.35,
                        unit = "div2=0" }, parse(wallet()))
    end)

    it("prefers paid, then totalPaid, then stats.paid, then total", function()
      assert.are.equal(1, parse(wallet({ paid = 1, totalPaid = 2, stats = { paid = 3 } })).paid)
      assert.are.equal(2, parse(wallet({ totalPaid = 2, stats = { paid = 3 } })).paid)
      assert.are.equal(3, parse(wallet({ stats = { paid = "3" } })).paid)
      assert.are.equal(12.5, parse(wallet({ paid = w.null })).paid)
    end)

    it("reports total separately when it is not the counter", function()
      local obs = parse(wallet({ paid = 12, total = 12.35 }))
      assert.are.equal(12, obs.paid)
      assert.are.equal(12.35, obs.total)
    end)

    it("fails on a present but malformed preferred field instead of using total", function()
      local obs, reason = parse(wallet({ paid = "soon" }))
      assert.is_nil(obs)
      assert.matches("paid", reason)
      assert.is_nil((parse(wallet({ totalPaid = {} }))))
    end)

    it("fails when no counter field is present (unknown wallet)", function()
      local obs, reason = parse({ address = WALLET, balance = 0.2 })
      assert.is_nil(obs)
      assert.matches("no paid counter", reason)
      obs, reason = parse({})
      assert.is_nil(obs)
      assert.matches("nothing for this wallet", reason)
    end)

    it("fails on a negative counter", function()
      local obs, reason = parse(wallet({ total = -2 }))
      assert.is_nil(obs)
      assert.matches("negative", reason)
    end)
  end)

  describe("this wallet only", function()
    it("refuses another address", function()
      local obs, reason = parse(wallet({ address = OTHER }))
      assert.is_nil(obs)
      assert.matches("not for the polled wallet", reason)
      assert.is_nil((parse(wallet({ address = 5 }))))
    end)

    it("accepts an answer without address", function()
      local body = wallet()
      body.address = nil
      assert.are.equal(12.5, parse(body).paid)
      assert.are.equal(12.5, parse(wallet({ address = w.null })).paid)
    end)

    it("fails with the pool's message on error objects", function()
      local obs, reason = parse({ error = "Wallet not found" })
      assert.is_nil(obs)
      assert.are.equal("pool error: Wallet not found", reason)
      obs, reason = parse({ result = "error", message = "maintenance" })
      assert.are.equal("pool error: maintenance", reason)
    end)

    it("refuses bodies that are not a JSON object", function()
      assert.is_nil((parse("<html></html>")))
      assert.is_nil((parse("null")))
      assert.is_nil((parse("3")))
    end)
  end)
end)
