-- scripts/rewards.lua: which counter is used and what is awarded.
local helper = require("tests.lua.helper")

-- One account, its state carried from poll to poll through JSON as the engine does.
local function account(env, rate)
  local w = helper.world({ env = env or {} })
  local rewards = w:load("scripts/rewards.lua")
  local state
  local acct = { world = w }
  function acct.poll(observation)
    local previous = state and helper.json_decode(state, w.null)
    local ctx = { pool = "testpool", currency = "ADVC", player_id = 7, username = "ann",
                  wallet = "AXb7Kc2R9mQwE4tYuP3sLdF6gH8jN1vZq5", now = 1700000000 }
    function ctx.to_advc(amount) return amount * (rate or 1) end
    local result = rewards.decide(previous, observation, ctx)
    state = helper.json_encode(observation, w.null)
    if result and result.advc then result = { result } end
    return result, observation.accounted
  end
  return acct
end

local function total(awards)
  local advc, ap = 0, 0
  for _, a in ipairs(awards or {}) do advc, ap = advc + a.advc, ap + a.ap end
  return advc, ap
end

describe("rewards.decide (scripts/rewards.lua)", function()
  describe("cumulative paid", function()
    it("takes the first observation as a baseline", function()
      local a = account()
      local awards, acc = a.poll({ paid = 10.5 })
      assert.is_nil(awards)
      assert.are.same({ mode = "paid", paid = 10.5, epoch = 0, count = 0 }, acc)
    end)

    it("awards the increase with 100 AP per ADVC and a key naming the new level", function()
      local a = account()
      a.poll({ paid = 10.5 })
      local awards = a.poll({ paid = 11.75 })
      assert.are.equal(1, #awards)
      assert.are.equal(1.25, awards[1].advc)
      assert.are.equal(125, awards[1].ap)
      assert.are.equal("paid:0:11.75000000", awards[1].key)
      assert.matches("10.5", awards[1].reason)
    end)

    it("awards nothing when paid does not change", function()
      local a = account()
      a.poll({ paid = 10.5, balance = 1 })
      assert.is_nil(a.poll({ paid = 10.5, balance = 2 }))
      assert.is_nil(a.poll({ paid = 10.5 }))
    end)

    it("keeps increases below MIN_PAYOUT_DELTA until they add up", function()
      local a = account()
      a.poll({ paid = 10 })
      local awards, acc = a.poll({ paid = 10.00005 })
      assert.is_nil(awards)
      assert.are.equal(10, acc.paid)
      awards = a.poll({ paid = 10.0003 })
      assert.are.equal(0.0003, awards[1].advc)
    end)

    it("honours AP_PER_ADVC and MIN_PAYOUT_DELTA", function()
      local a = account({ AP_PER_ADVC = "250", MIN_PAYOUT_DELTA = "1" })
      a.poll({ paid = 10 })
      assert.is_nil(a.poll({ paid = 10.5 }))
      local awards = a.poll({ paid = 11.5 })
      assert.are.equal(1.5, awards[1].advc)
      assert.are.equal(375, awards[1].ap)
    end)

    it("treats a decrease as a reset: a warning, a new epoch, no award", function()
      local a = account()
      a.poll({ paid = 10.5 })
      local awards, acc = a.poll({ paid = 2 })
      assert.is_nil(awards)
      assert.are.equal(1, acc.epoch)
      assert.are.equal(1, #a.world:logged("paid_counter_decreased"))
      awards = a.poll({ paid = 2.5 })
      assert.are.equal(0.5, awards[1].advc)
      assert.are.equal("paid:1:2.50000000", awards[1].key)
    end)

    it("awards the history once when REWARD_HISTORY is on", function()
      local a = account({ REWARD_HISTORY = "true" })
      local awards = a.poll({ paid = 3 })
      assert.are.equal(3, awards[1].advc)
      assert.is_nil(a.poll({ paid = 3 }))
    end)

    it("converts with ctx.to_advc", function()
      local a = account({}, 1000000)
      a.poll({ paid = 0.01 })
      local awards = a.poll({ paid = 0.0105 })
      assert.are.equal(500, awards[1].advc)
      assert.are.equal(50000, awards[1].ap)
    end)

    -- 10.5001 - 10.5 is 0.0000999999999997 in binary: the delta is rounded before the
    -- threshold, so an increase of exactly MIN_PAYOUT_DELTA is awarded at once.
    it("awards an increase of exactly MIN_PAYOUT_DELTA at once", function()
      local a = account()
      a.poll({ paid = 10.5 })
      local awards = a.poll({ paid = 10.5001 })
      assert.are.equal(1, #awards)
      assert.are.equal(0.0001, awards[1].advc)
    end)

    it("adds up paid24h increases below MIN_PAYOUT_DELTA until they pass it", function()
      local a = account()
      a.poll({ paid24h = 1 })
      assert.is_nil(a.poll({ paid24h = 1.00006 }))
      local awards = a.poll({ paid24h = 1.00012 })
      assert.are.equal(0.00012, awards[1].advc)
    end)
  end)

  describe("payouts by tx id", function()
    local P1 = { tx = "aaa1", amount = 0.0005, time = 1700000000 }
    local P2 = { tx = "bbb2", amount = 0.0004, time = 1700021600 }
    local P3 = { tx = "ccc3", amount = 0.0006, time = 1700043200 }

    it("remembers the payouts of the first observation without awarding them", function()
      local a = account()
      local awards, acc = a.poll({ payouts = { P1, P2 } })
      assert.is_nil(awards)
      assert.are.same({ "aaa1", "bbb2" }, acc.seen)
      assert.are.equal("payouts", acc.mode)
    end)

    it("awards each new tx once, keyed by its id", function()
      local a = account({}, 1000000)
      a.poll({ payouts = { P1 } })
      local awards = a.poll({ payouts = { P3, P2, P1 } })
      assert.are.equal(2, #awards)
      assert.are.equal("tx:ccc3", awards[1].key)
      assert.are.equal("tx:bbb2", awards[2].key)
      assert.are.equal(1000, (total(awards)))
      assert.is_nil(a.poll({ payouts = { P3, P2, P1 } }))
      assert.is_nil(a.poll({ payouts = { P3 } }))
    end)

    it("starts from an empty list and awards the first payout", function()
      local a = account()
      assert.is_nil(a.poll({ payouts = {} }))
      local awards = a.poll({ payouts = { P1 }, paid24h = 0.0005 })
      assert.are.equal(0.0005, awards[1].advc)
    end)

    it("remembers at most 1000 ids", function()
      local a = account()
      local list = {}
      for i = 1, 1005 do list[i] = { tx = "t" .. i, amount = 1 } end
      local _, acc = a.poll({ payouts = list })
      assert.are.equal(1000, #acc.seen)
      assert.are.equal("t6", acc.seen[1])
      assert.are.equal("t1005", acc.seen[1000])
    end)

    it("awards listed history once when REWARD_HISTORY is on", function()
      local a = account({ REWARD_HISTORY = "yes" })
      local awards = a.poll({ payouts = { P1, P2 } })
      assert.are.equal(2, #awards)
      assert.is_nil(a.poll({ payouts = { P1, P2 } }))
    end)

    it("is preferred over paid and paid24h in the same observation", function()
      local a = account()
      local _, acc = a.poll({ payouts = { P1 }, paid = 5, paid24h = 0.1 })
      assert.are.equal("payouts", acc.mode)
      assert.is_nil(a.poll({ payouts = { P1 }, paid = 9, paid24h = 0.9 }))
    end)
  end)

  describe("paid24h fallback", function()
    it("awards increases of the window", function()
      local a = account({}, 1000000)
      assert.is_nil(a.poll({ paid24h = 0.001 }))
      local awards, acc = a.poll({ paid24h = 0.0015 })
      assert.are.equal(500, awards[1].advc)
      assert.are.equal("paid24h:1", awards[1].key)
      assert.are.equal(1, acc.count)
    end)

    it("awards nothing when an old payout leaves the window, and counts from the new level", function()
      local a = account({}, 1000000)
      a.poll({ paid24h = 0.0015 })
      assert.is_nil(a.poll({ paid24h = 0.0005 }))
      local awards = a.poll({ paid24h = 0.0012 })
      assert.are.equal(700, awards[1].advc)
      assert.are.equal(70000, awards[1].ap)
    end)

    it("uses paid rather than paid24h when both are there", function()
      local a = account()
      local _, acc = a.poll({ paid = 1, paid24h = 0.5 })
      assert.are.equal("paid", acc.mode)
    end)
  end)

  describe("a change of counter", function()
    it("starts a new baseline and logs it", function()
      local a = account()
      a.poll({ paid24h = 0.001 })
      local awards, acc = a.poll({ payouts = { { tx = "x1", amount = 0.001 } } })
      assert.is_nil(awards)
      assert.are.equal("payouts", acc.mode)
      assert.are.equal(1, #a.world:logged("reward_counter_changed"))
      -- (a payout that arrives in the very poll that switches counters is not awarded: see
      -- docs/pools.md, zpool)
      awards = a.poll({ payouts = { { tx = "x2", amount = 0.002 }, { tx = "x1", amount = 0.001 } } })
      assert.are.equal("tx:x2", awards[1].key)
    end)

    it("awards history only on an account's very first observation, not on a switch", function()
      local a = account({ REWARD_HISTORY = "true" })
      local first = a.poll({ paid = 3 })
      assert.are.equal(3, total(first))
      assert.is_nil(a.poll({ paid24h = 0.5 }))
      assert.is_nil(a.poll({ paid = 4 }))
      assert.is_nil(a.poll({ payouts = { { tx = "h1", amount = 9 } } }))
    end)

    it("keeps the epoch and count across the switch, so keys never repeat", function()
      local a = account()
      a.poll({ paid24h = 1 })
      a.poll({ paid24h = 2 })
      a.poll({ paid = 1 })
      local _, acc = a.poll({ paid24h = 5 })
      assert.are.equal(1, acc.count)
      local awards = a.poll({ paid24h = 6 })
      assert.are.equal("paid24h:2", awards[1].key)
    end)
  end)
end)
