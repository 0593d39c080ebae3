-- scripts/rewards.lua: which counter is used and what is awarded.
local helper = require("tests.lua.helper")

local WALLET = "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"
local WALLET_ID = "0ae2865e2c2c50e5" -- printf %s WALLET | sha256sum | cut -c1-16
local T0 = 1700000000

-- One account, its state carried from poll to poll through JSON as the engine does.
-- acct.now, acct.wallet and acct.wallet_id may be changed between polls; acct.forget()
-- drops the state as the engine does when a player's wallet changes.
local function account(env, rate)
  local w = helper.world({ env = env or {} })
  local rewards = w:load("scripts/rewards.lua")
  local state
  local acct = { world = w, now = T0, wallet = WALLET, wallet_id = WALLET_ID }
  function acct.poll(observation)
    local previous = state and helper.json_decode(state, w.null)
    local ctx = { pool = "testpool", currency = "ADVC", player_id = 7, username = "ann",
                  wallet = acct.wallet, wallet_id = acct.wallet_id, now = acct.now }
    function ctx.to_advc(amount) return amount * (rate or 1) end
    local result = rewards.decide(previous, observation, ctx)
    state = helper.json_encode(observation, w.null)
    if result and result.advc then result = { result } end
    return result, observation.accounted
  end
  function acct.forget() state = nil end
  function acct.state_json() return state end
  -- A state as an earlier version of the rules wrote it.
  function acct.restore(accounted, observation)
    observation = observation or {}
    observation.accounted = accounted
    state = helper.json_encode(observation, w.null)
  end
  return acct
end

local function total(awards)
  local advc, ap = 0, 0
  for _, a in ipairs(awards or {}) do advc, ap = advc + a.advc, ap + a.ap end
  return advc, ap
end

-- Polls a cumulative paid counter per poll; returns the ADVC awarded at each poll (0 = none).
local function paid_series(series, env)
  local a = account(env)
  local out = {}
  for i, paid in ipairs(series) do out[i] = (total(a.poll({ paid = paid }))) end
  return out, a
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("rewards.decide (scripts/rewards.lua)", function()
  describe("cumulative paid", function()
    it("takes the first observation as a baseline", function()
      local a = account()
      local awards, acc = a.poll({ paid = 10.5 })
      assert.is_nil(awards)
      assert.are.same({ mode = "paid", paid = 10.5, epoch = 0, count = 0, since = T0 }, acc)
    end)

    it("awards the increase with 100 AP per ADVC and a key naming wallet, baseline and level", function()
      local a = account()
      a.poll({ paid = 10.5 })
      a.now = T0 + 600
      local awards = a.poll({ paid = 11.75 })
      assert.are.equal(1, #awards)
      assert.are.equal(1.25, awards[1].advc)
      assert.are.equal(125, awards[1].ap)
      assert.are.equal("paid:" .. WALLET_ID .. ":1700000000.0:11.75000000", awards[1].key)
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

  -- NOMP answers a known wallet with all zeros at times: a decrease is believed only after
  -- DECREASE_CONFIRM_POLLS (default 3) consecutive polls show it.
  describe("a decrease of the cumulative counter", function()
    it("10.5, 0, 10.5, 11 awards only 0.5, at the last poll", function()
      assert.are.same({ 0, 0, 0, 0.5 }, paid_series({ 10.5, 0, 10.5, 11 }))
    end)

    it("10.5, 2, 2, 2, 2.5 awards 0.5 at the last poll (the reset is confirmed at the 3rd 2)", function()
      local got, a = paid_series({ 10.5, 2, 2, 2 })
      assert.are.same({ 0, 0, 0, 0 }, got)
      assert.are.equal(2, #a.world:logged("paid_counter_decreased"))
      local confirmed = a.world:logged("paid_counter_reset_confirmed")
      assert.are.equal(1, #confirmed)
      assert.are.equal("warning", confirmed[1].level)
      assert.are.equal(10.5, confirmed[1].fields.previous_paid)
      assert.are.equal(2, confirmed[1].fields.current_paid)
      a.now = T0 + 3600
      local awards, acc = a.poll({ paid = 2.5 })
      assert.are.equal(0.5, awards[1].advc)
      -- a new baseline: a new epoch and start time in the key
      assert.are.equal(1, acc.epoch)
      assert.are.equal("paid:" .. WALLET_ID .. ":1700000000.1:2.50000000", awards[1].key)
    end)

    it("10.5, 0, 0, 10.5 awards nothing", function()
      local got, a = paid_series({ 10.5, 0, 0, 10.5 })
      assert.are.same({ 0, 0, 0, 0 }, got)
      assert.are.equal(0, #a.world:logged("paid_counter_reset_confirmed"))
      local _, acc = a.poll({ paid = 10.5 })
      assert.are.equal(10.5, acc.paid)
      assert.is_nil(acc.falling)
    end)

    it("keeps the high-water mark while the decrease is pending", function()
      local a = account()
      a.poll({ paid = 10.5 })
      local _, acc = a.poll({ paid = 0 })
      assert.are.equal(10.5, acc.paid)
      assert.are.equal(1, acc.falling.polls)
      assert.are.equal(0, acc.epoch)
    end)

    it("needs consecutive polls: a return to the mark starts the count again", function()
      assert.are.same({ 0, 0, 0, 0, 0, 0, 0.5 },
                      paid_series({ 10.5, 0, 0, 10.5, 0, 0, 11 }))
    end)

    it("awards an increase above the mark at once and ends the pending decrease", function()
      local got, a = paid_series({ 10.5, 0, 12 })
      assert.are.same({ 0, 0, 1.5 }, got)
      local _, acc = a.poll({ paid = 12 })
      assert.is_nil(acc.falling)
    end)

    it("re-baselines at the confirming poll's value: rises while pending are not awarded", function()
      assert.are.same({ 0, 0, 0, 0, 0.4 }, paid_series({ 10.5, 2, 2.3, 2.6, 3 }))
    end)

    it("honours DECREASE_CONFIRM_POLLS (1 = believe a decrease at once)", function()
      assert.are.same({ 0, 0, 0.5 }, paid_series({ 10.5, 2, 2.5 }, { DECREASE_CONFIRM_POLLS = "1" }))
      assert.are.same({ 0, 0, 0, 0, 0, 0, 0.5 },
                      paid_series({ 10.5, 2, 2, 2, 2, 2, 2.5 }, { DECREASE_CONFIRM_POLLS = "5" }))
    end)

    it("refuses a DECREASE_CONFIRM_POLLS outside 1..1000 at load", function()
      local w = helper.world({ env = { DECREASE_CONFIRM_POLLS = "0" } })
      assert.has_error(function() w:load("scripts/rewards.lua") end)
    end)
  end)

  describe("award keys", function()
    it("never repeat across wallets: a new wallet landing on an old level is awarded", function()
      local a = account()
      a.poll({ paid = 1 })
      local first = a.poll({ paid = 3 })
      -- the player changes wallet: the engine drops the state, the next poll is a baseline
      a.forget()
      a.wallet, a.wallet_id, a.now = "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy", "5f9a0c1d2e3b4a69", T0 + 60
      a.poll({ paid = 1 })
      local second = a.poll({ paid = 3 })
      assert.are.equal(2, second[1].advc)
      assert.are_not.equal(first[1].key, second[1].key)
    end)

    it("never repeat across baselines of the same wallet", function()
      local a = account()
      a.poll({ paid = 1 })
      local first = a.poll({ paid = 3 })
      a.forget()
      a.now = T0 + 60
      a.poll({ paid = 1 })
      local second = a.poll({ paid = 3 })
      assert.are_not.equal(first[1].key, second[1].key)
    end)

    it("name the wallet in tx keys: one pool payout tx pays many addresses", function()
      local a = account()
      a.poll({ payouts = {} })
      local awards = a.poll({ payouts = { { tx = "aaa1", amount = 0.5, time = T0 } } })
      assert.are.equal("tx:" .. WALLET_ID .. ":aaa1", awards[1].key)
    end)

    it("fit the engine's 200 characters with the longest tx id", function()
      local a = account()
      a.poll({ payouts = {} })
      local awards = a.poll({ payouts = { { tx = string.rep("f", 128), amount = 1, time = T0 } } })
      assert.is_true(#awards[1].key <= 200)
    end)
  end)

  describe("states written by the previous version", function()
    it("continue a paid account from its level, under keys of their own", function()
      local a = account()
      a.restore({ mode = "paid", epoch = 2, count = 0, paid = 10.5 }, { paid = 10.5 })
      assert.is_nil(a.poll({ paid = 10.5 }))
      local awards, acc = a.poll({ paid = 11 })
      assert.are.equal(0.5, total(awards))
      assert.are.equal("paid:" .. WALLET_ID .. ":1700000000.2:11.00000000", awards[1].key)
      assert.are.equal(2, acc.epoch)
    end)

    it("do not believe a decrease at once either", function()
      local a = account()
      a.restore({ mode = "paid", epoch = 0, count = 0, paid = 10.5 }, { paid = 10.5 })
      assert.is_nil(a.poll({ paid = 0 }))
      assert.is_nil(a.poll({ paid = 10.5 }))
    end)

    it("never award a tx of the old seen list again", function()
      local a = account()
      a.restore({ mode = "payouts", epoch = 0, count = 0, seen = { "aaa1", "bbb2" } })
      local listed = { { tx = "bbb2", amount = 0.4, time = T0 - 3600 },
                       { tx = "aaa1", amount = 0.5, time = T0 - 7200 } }
      local awards, acc = a.poll({ payouts = listed })
      assert.is_nil(awards)
      assert.is_nil(acc.seen)
      assert.are.equal(2, count(acc.txs))
      table.insert(listed, 1, { tx = "ccc3", amount = 0.6, time = T0 })
      awards = a.poll({ payouts = listed })
      assert.are.equal(1, #awards)
      assert.are.equal("tx:" .. WALLET_ID .. ":ccc3", awards[1].key)
    end)

    it("continue a paid24h account with its count", function()
      local a = account()
      a.restore({ mode = "paid24h", epoch = 1, count = 4, paid24h = 0.001 }, { paid24h = 0.001 })
      local awards = a.poll({ paid24h = 0.0015 })
      assert.are.equal(0.0005, total(awards))
      assert.are.equal("paid24h:" .. WALLET_ID .. ":1700000000.1:5", awards[1].key)
    end)

    it("start a new baseline when the state is not one the rules wrote", function()
      local a = account()
      a.restore({ mode = "paid", paid = "lots" })
      local awards, acc = a.poll({ paid = 3 })
      assert.is_nil(awards)
      assert.are.equal(3, acc.paid)
    end)
  end)

  describe("payouts by tx id", function()
    local P1 = { tx = "aaa1", amount = 0.0005, time = T0 - 43200 }
    local P2 = { tx = "bbb2", amount = 0.0004, time = T0 - 21600 }
    local P3 = { tx = "ccc3", amount = 0.0006, time = T0 }

    it("remembers the payouts of the first observation, with their times, without awarding them", function()
      local a = account()
      local awards, acc = a.poll({ payouts = { P2, P1 } })
      assert.is_nil(awards)
      assert.are.same({ aaa1 = P1.time, bbb2 = P2.time }, acc.txs)
      assert.are.equal(P2.time, acc.clock)
      assert.are.equal("payouts", acc.mode)
    end)

    it("awards each new tx once", function()
      local a = account({}, 1000000)
      a.poll({ payouts = { P1 } })
      local awards = a.poll({ payouts = { P3, P2, P1 } })
      assert.are.equal(2, #awards)
      assert.are.equal("tx:" .. WALLET_ID .. ":ccc3", awards[1].key)
      assert.are.equal("tx:" .. WALLET_ID .. ":bbb2", awards[2].key)
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

  -- A missing payout list is "no payout information" for that poll, never a change of mode.
  describe("an answer without its payout list", function()
    it("awards nothing, keeps the tx state, and the next list's new payout is awarded", function()
      local a = account({}, 1000000)
      a.poll({ payouts = { { tx = "x1", amount = 0.0005, time = T0 } }, paid24h = 0.0005 })
      local awards, acc = a.poll({ paid24h = 0.0009 })
      assert.is_nil(awards)
      assert.are.equal("payouts", acc.mode)
      assert.are.same({ x1 = T0 }, acc.txs)
      assert.are.equal(1, #a.world:logged("payouts_list_missing"))
      awards = a.poll({ payouts = { { tx = "x2", amount = 0.0001, time = T0 + 60 },
                                    { tx = "x1", amount = 0.0005, time = T0 } }, paid24h = 0.0006 })
      assert.are.equal(100, total(awards))
      assert.are.equal(0, #a.world:logged("reward_counter_changed"))
    end)
  end)

  describe("a payout list that appears for an account counted by paid or paid24h", function()
    local L1 = { tx = "r1", amount = 1.5, time = T0 - 600 }
    local L2 = { tx = "r2", amount = 0.5, time = T0 }
    local L3 = { tx = "r3", amount = 0.5, time = T0 + 600 }

    it("awards that poll's counter increase by the old mode and takes the listed txs as paid", function()
      local a = account()
      a.poll({ paid = 10 })
      local awards, acc = a.poll({ paid = 12, payouts = { L2, L1 } })
      assert.are.equal(2, total(awards))
      assert.matches("^paid:", awards[1].key)
      assert.are.equal("payouts", acc.mode)
      assert.are.equal(1, #a.world:logged("reward_counter_changed"))
      -- from now on by tx only: the counter's 0.5 is r3, counted once
      awards = a.poll({ paid = 12.5, payouts = { L3, L2, L1 } })
      assert.are.equal(1, #awards)
      assert.are.equal(0.5, awards[1].advc)
      assert.are.equal("tx:" .. WALLET_ID .. ":r3", awards[1].key)
    end)

    it("does the same from paid24h", function()
      local a = account()
      a.poll({ paid24h = 1 })
      local awards = a.poll({ paid24h = 1.5, payouts = { L2 } })
      assert.are.equal(0.5, total(awards))
      awards = a.poll({ paid24h = 2, payouts = { L3, L2 } })
      assert.are.equal("tx:" .. WALLET_ID .. ":r3", awards[1].key)
    end)

    it("awards no counter increase when the old counter is absent", function()
      local a = account()
      a.poll({ paid = 10 })
      assert.is_nil(a.poll({ payouts = { L2, L1 } }))
    end)
  end)

  describe("bounded tx memory", function()
    -- zpool lists the completed payouts of the last 24 hours, newest first.
    local function listed(ledger, now)
      local list = {}
      for i = #ledger, 1, -1 do
        local p = ledger[i]
        if p.time <= now and p.time > now - 86400 then list[#list + 1] = p end
      end
      return list
    end

    it("30 days of payouts every 10 minutes: each awarded once, the state stays small", function()
      local a = account({}, 1000000)
      local ledger, awarded, largest = {}, {}, 0
      local step, days = 600, 30
      for i = 0, days * 86400 / step do
        a.now = T0 + i * step
        ledger[#ledger + 1] = { tx = string.format("%064x", i), amount = 0.00001, time = a.now }
        for _, award in ipairs(a.poll({ payouts = listed(ledger, a.now) }) or {}) do
          assert.is_nil(awarded[award.key], "awarded twice: " .. award.key)
          awarded[award.key] = true
        end
        largest = math.max(largest, #a.state_json())
      end
      assert.are.equal(#ledger - 1, count(awarded)) -- all but the baseline's
      -- ids younger than 48 h: 288 of 78 bytes ("<64 hex>":<time>,), not 1000 ids / 67 KB
      assert.is_true(largest < 24 * 1024, "state grew to " .. largest .. " bytes")
    end)

    it("never awards a forgotten tx that is listed again", function()
      local a = account()
      local old = { tx = "old1", amount = 1, time = T0 }
      a.poll({ payouts = { old } })
      a.now = T0 + 3 * 86400
      a.poll({ payouts = { { tx = "new1", amount = 1, time = a.now } } }) -- old1 is forgotten
      local _, acc = a.poll({ payouts = { { tx = "new1", amount = 1, time = a.now } } })
      assert.is_nil(acc.txs.old1)
      local awards = a.poll({ payouts = { { tx = "new1", amount = 1, time = a.now }, old } })
      assert.is_nil(awards)
      assert.are.equal(1, #a.world:logged("payout_too_old"))
    end)

    it("keeps an id while it is listed, however old", function()
      local a = account()
      local old = { tx = "old1", amount = 1, time = T0 }
      a.poll({ payouts = { old } })
      a.now = T0 + 5 * 86400
      local _, acc = a.poll({ payouts = { { tx = "new1", amount = 1, time = a.now }, old } })
      assert.are.equal(T0, acc.txs.old1)
    end)

    it("does not let a far-future time move the cutoff past now", function()
      local a = account()
      local _, acc = a.poll({ payouts = { { tx = "future", amount = 1, time = T0 + 10 * 365 * 86400 } } })
      assert.are.equal(T0, acc.clock)
      local awards = a.poll({ payouts = { { tx = "recent", amount = 1, time = T0 - 3600 } } })
      assert.are.equal(1, total(awards))
    end)

    it("reads times in milliseconds", function()
      local a = account()
      local _, acc = a.poll({ payouts = { { tx = "ms1", amount = 1, time = (T0 - 60) * 1000 } } })
      assert.are.equal(T0 - 60, acc.txs.ms1)
    end)

    it("takes a missing time as the time of first sight", function()
      local a = account()
      a.poll({ payouts = {} })
      a.now = T0 + 60
      local awards, acc = a.poll({ payouts = { { tx = "nt1", amount = 1 } } })
      assert.are.equal(1, total(awards))
      assert.are.equal(T0 + 60, acc.txs.nt1)
      a.now = T0 + 3600
      _, acc = a.poll({ payouts = { { tx = "nt1", amount = 1 } } })
      assert.are.equal(T0 + 60, acc.txs.nt1)
    end)

    it("never awards a new tx older than the cutoff", function()
      local a = account()
      a.poll({ payouts = { { tx = "n1", amount = 1, time = T0 } } })
      local awards = a.poll({ payouts = { { tx = "n1", amount = 1, time = T0 },
                                          { tx = "stale", amount = 1, time = T0 - 49 * 3600 } } })
      assert.is_nil(awards)
    end)
  end)

  describe("paid24h fallback", function()
    it("awards increases of the window", function()
      local a = account({}, 1000000)
      assert.is_nil(a.poll({ paid24h = 0.001 }))
      local awards, acc = a.poll({ paid24h = 0.0015 })
      assert.are.equal(500, awards[1].advc)
      assert.are.equal("paid24h:" .. WALLET_ID .. ":1700000000.0:1", awards[1].key)
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

  describe("a change between paid and paid24h", function()
    it("starts a new baseline and logs it", function()
      local a = account()
      a.poll({ paid24h = 0.001 })
      local awards, acc = a.poll({ paid = 5 })
      assert.is_nil(awards)
      assert.are.equal("paid", acc.mode)
      assert.are.equal(1, acc.epoch)
      assert.are.equal(1, #a.world:logged("reward_counter_changed"))
      awards = a.poll({ paid = 6 })
      assert.are.equal(1, total(awards))
    end)

    it("awards history only on an account's very first observation, not on a switch", function()
      local a = account({ REWARD_HISTORY = "true" })
      local first = a.poll({ paid = 3 })
      assert.are.equal(3, total(first))
      assert.is_nil(a.poll({ paid24h = 0.5 }))
      assert.is_nil(a.poll({ paid = 4 }))
      assert.is_nil(a.poll({ payouts = { { tx = "h1", amount = 9, time = T0 } } }))
    end)

    it("keeps the count across the switch, so keys never repeat", function()
      local a = account()
      a.poll({ paid24h = 1 })
      local k1 = a.poll({ paid24h = 2 })[1].key
      a.poll({ paid = 1 })
      local _, acc = a.poll({ paid24h = 5 })
      assert.are.equal(1, acc.count)
      local awards = a.poll({ paid24h = 6 })
      assert.are.equal("paid24h:" .. WALLET_ID .. ":1700000000.2:2", awards[1].key)
      assert.are_not.equal(k1, awards[1].key)
    end)
  end)

  describe("through engine/pipeline.lua", function()
    it("ctx.wallet_id is the first 16 hex digits of the wallet's SHA-256", function()
      local pipeline, _, index = helper.pipeline({ only = { "cpu-pool" } })
      local function answer(paid)
        local body = string.format('{"miner": "%s", "paid": %s, "balance": 1, "immature": 0,'
                                   .. ' "workers": {"%s.rig1": {}}}', WALLET, paid, WALLET)
        return { status = 200, headers = {}, body = body, json_type = "object",
                 json = helper.json_decode(body, nil) }
      end
      local account = { player_id = 1, username = "ann", wallet = WALLET }
      local _, state = pipeline.poll(index["cpu-pool"], account, answer("10.5"))
      account.state = state
      local _, _, awards = pipeline.poll(index["cpu-pool"], account, answer("11"))
      assert.are.equal(1, #awards)
      assert.matches("^paid:" .. WALLET_ID .. ":%d+%.0:11%.00000000$", awards[1].key)
    end)
  end)
end)
