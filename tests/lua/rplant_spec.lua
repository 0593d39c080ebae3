-- pools/rplant.lua: rplant's walletEx, its field variants and atomic units.
local helper = require("tests.lua.helper")

local WALLET = "AXb7Kc2R9mQwE4tYuP3sLdF6gH8jN1vZq5"
local OTHER = "AQm3Tz8Lp5Rx2Nc7Vb4Hd9Ks6Fg1Yw2Eju"

local function wallet(fields)
  local t = { address = WALLET, balance = 0.35, unsold = 0, unpaid = 0.35, total = 12.5 }
  for k, v in pairs(fields or {}) do t[k] = v end
  return t
end

describe("pools/rplant.lua", function()
  local w, pool
  local function parse(body)
    return pool.parse(w:response(body, { wallet = WALLET }))
  end

  before_each(function()
    w = helper.world()
    pool = w:load("pools/rplant.lua")
  end)

  it("declares an enabled ADVC pool named rplant with limits", function()
    assert.are.equal("rplant", pool.name)
    assert.are.equal("ADVC", pool.currency)
    assert.is_true(pool.enabled)
    assert.are.same({ concurrency = 8, per_second = 10 }, pool.limits)
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

  describe("the paid counter", function()
    it("is total when rplant sends only its usual fields", function()
      assert.are.same({ paid = 12.5, balance = 0.35, unsold = 0, unpaid = 0.35 },
                      parse(wallet()))
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

  describe("atomic units", function()
    it("divides every amount by 1e12 when one is >= 1e6", function()
      local obs = parse(wallet({ total = 12500000000000, balance = 350000000000,
                                 unpaid = 350000000000, unsold = 0 }))
      assert.are.same({ paid = 12.5, balance = 0.35, unpaid = 0.35, unsold = 0 }, obs)
    end)

    it("detects them on unpaid alone, as the miner tool does", function()
      local obs = parse(wallet({ total = 0, balance = 0, unsold = 0, unpaid = "2000000" }))
      assert.are.equal(0, obs.paid)
      assert.are.equal(2e-6, obs.unpaid)
    end)

    it("refuses a response that mixes atomic-sized and fractional amounts", function()
      local obs, reason = parse(wallet({ total = 12.5, unpaid = 2500000 }))
      assert.is_nil(obs)
      assert.matches("mixed units", reason)
    end)

    it("leaves whole-coin amounts below the threshold alone", function()
      assert.are.equal(999999, parse(wallet({ total = 999999, balance = 0, unpaid = 0 })).paid)
    end)

    it("never yields more than a million ADVC from an atomic counter", function()
      for _, total in ipairs({ 1e6, 5e11, 1e12, 123456789012345, 9e17 }) do
        local obs = parse(wallet({ total = total, balance = 0, unpaid = 0 }))
        assert.is_true(obs.paid <= 1e6, tostring(total))
      end
    end)

    it("can be tuned with RPLANT_ATOMIC_THRESHOLD and RPLANT_ATOMIC_DIVISOR", function()
      local p = helper.world({ env = { RPLANT_ATOMIC_THRESHOLD = "1e9",
                                       RPLANT_ATOMIC_DIVISOR = "1e8" } }):load("pools/rplant.lua")
      local obs = p.parse(w:response(wallet({ total = 250000000000, balance = 0, unpaid = 0 }),
                                     { wallet = WALLET }))
      assert.are.equal(2500, obs.paid)
      obs = p.parse(w:response(wallet({ total = 5000000, balance = 0, unpaid = 0 }),
                               { wallet = WALLET }))
      assert.are.equal(5000000, obs.paid)
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
