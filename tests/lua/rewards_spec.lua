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
  local function context()
    local ctx = { pool = "testpool", currency = "ADVC", player_id = 7, username = "ann",
                  wallet = acct.wallet, wallet_id = acct.wallet_id, now = acct.now }
    function ctx.to_advc(amount) return amount * (rate or 1) end
    return ctx
  end
  -- rewards.explain of the state as it is now (--explain, GET /accounts).
  function acct.explain()
    return rewards.explain(state and helper.json_decode(state, w.null), context())
  end
  function acct.poll(observation)
    local previous = state and helper.json_decode(state, w.null)
    local result = rewards.decide(previous, observation, context())
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

describe("rewards.explain (scripts/rewards.lua)", function()
  it("says that the first observation is a baseline", function()
    local t = account().explain()
    assert.matches("none yet", t.baseline)
    assert.matches("not awarded", t.next_award)
    assert.matches("REWARD_HISTORY", account({ REWARD_HISTORY = "true" }).explain().next_award)
  end)

  it("names the high-water mark the paid counter must pass, and a pending decrease", function()
    local acct = account()
    acct.poll({ paid = 12.5 })
    local t = acct.explain()
    assert.matches("cumulative paid 12.50000000 ADVC", t.baseline, 1, true)
    assert.matches("must rise above 12.50000000 ADVC by at least 0.00010000 ADVC", t.next_award,
                   1, true)
    acct.poll({ paid = 2 })
    assert.matches("a lower counter (2.00000000) was seen on 1 of the 3", acct.explain().next_award,
                   1, true)
    acct.poll({ paid = 0 })
    assert.matches("the pool's counter shows 0, which is never taken as a new baseline",
                   acct.explain().next_award, 1, true)
  end)

  it("counts the payout ids known and the 24-hour level", function()
    local acct = account()
    acct.poll({ payouts = { { tx = "a1", amount = 1, time = T0 - 60 },
                            { tx = "b2", amount = 2, time = T0 - 30 } } })
    local t = acct.explain()
    assert.matches("2 payout id(s) known, the newest paid at 2023-11-14T22:12:50Z", t.baseline,
                   1, true)
    assert.matches("not among the 2 known", t.next_award, 1, true)
    local none = account()
    none.poll({ payouts = {} })
    assert.are.equal("any payout the pool lists from now on", none.explain().next_award)
    local window = account()
    window.poll({ paid24h = 3 })
    assert.matches("paid in the last 24 hours 3.00000000 ADVC", window.explain().baseline, 1, true)
  end)

  it("never changes the state it explains", function()
    local acct = account()
    acct.poll({ paid = 5 })
    local before = acct.state_json()
    acct.explain()
    assert.are.equal(before, acct.state_json())
  end)
end)

describe("rewards.decide (scripts/rewards.lua)", function()
  describe("cumulative paid", function()
    it("takes the first observation as a baseline", function()
      local a = account()
      local awards, acc = a.poll({ paid = 10.5 })
      assert.is_nil(awards)
      assert.are.same({ mode = "paid", paid = 10.5, epoch = 0, count = 0, since = T0,
                        polled = T0 }, acc)
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
  -- docs/reliability.md, "Money exact to 1e-8"
  describe("money exact to 1e-8", function()
    -- The state passed on as a table: the helper's dkjson prints 14 digits (tostring), the
    -- engine's encoder reads back exactly (tests/unit/test_script_json.c).
    local function account(env)
      local w = helper.world({ env = env or {} })
      local rewards = w:load("scripts/rewards.lua")
      local previous
      local ctx = { pool = "testpool", currency = "ADVC", player_id = 7, wallet = WALLET,
                    wallet_id = WALLET_ID, now = T0, to_advc = function(x) return x end }
      return { poll = function(observation)
        local result = rewards.decide(previous, observation, ctx)
        previous = observation
        return result
      end }
    end

    it("takes the increase in units: exact for counters up to 2^26", function()
      local a = account()
      a.poll({ paid = 65559444.69885246 })
      local awards = a.poll({ paid = 65559447.2889562 })
      -- in doubles 65559447.2889562 - 65559444.69885246 rounds to 2.59010375
      assert.are.equal(2.59010374, awards[1].advc)
      assert.are.equal(259.010374, awards[1].ap)
      assert.is_nil(awards[1].exact)
      a.poll({ paid = 67108863.99999999 })
      assert.is_nil(a.poll({ paid = 67108863.99999999 }))
    end)

    it("marks an award inexact (the engine holds it) once a counter reaches 2^26", function()
      local a = account()
      a.poll({ paid = 120000000 })
      local awards = a.poll({ paid = 120000002.11111109 })
      assert.are.equal(1, #awards)
      assert.is_false(awards[1].exact)
      local b = account()
      b.poll({ paid = 67108863.99999999 })
      local edge = b.poll({ paid = 67108864.5 })
      assert.is_false(edge[1].exact)
    end)

    it("marks a payout by tx of 2^26 or more inexact, and a smaller one not", function()
      local a = account()
      a.poll({ payouts = {} })
      local awards = a.poll({ payouts = { { tx = "big", amount = 67108864, time = T0 },
                                          { tx = "small", amount = 67108863.99999999, time = T0 } } })
      local by_tx = {}
      for _, w in ipairs(awards) do by_tx[w.reason] = w end
      assert.is_false(by_tx["payout big"].exact)
      assert.is_nil(by_tx["payout small"].exact)
      assert.are.equal(67108863.99999999, by_tx["payout small"].advc)
    end)
  end)

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

    it("never takes a 0 as the new baseline: 10.5, then 0 six times, then 10.5 awards nothing", function()
      for _, confirm in ipairs({ "3", "1" }) do
        local got, a = paid_series({ 10.5, 0, 0, 0, 0, 0, 0, 10.5 }, { DECREASE_CONFIRM_POLLS = confirm })
        assert.are.same({ 0, 0, 0, 0, 0, 0, 0, 0 }, got)
        assert.are.equal(0, #a.world:logged("paid_counter_reset_confirmed"))
        assert.are.equal(0, #a.world:logged("paid_counter_decreased"))
        -- said once per drop, not per poll
        local zero = a.world:logged("paid_counter_zero_ignored")
        assert.are.equal(1, #zero)
        assert.are.equal(10.5, zero[1].fields.previous_paid)
        local _, acc = a.poll({ paid = 10.5 })
        assert.are.equal(10.5, acc.paid)
        assert.are.equal(0, acc.epoch)
      end
    end)

    it("believes a real reset once it shows a figure above 0: 10.5, 0, 0, 0, 2, 2, 2, 2.5", function()
      assert.are.same({ 0, 0, 0, 0, 0, 0, 0, 0.5 }, paid_series({ 10.5, 0, 0, 0, 2, 2, 2, 2.5 }))
      -- -0 is a 0 too
      assert.are.same({ 0, 0, 0, 0, 0 }, paid_series({ 10.5, -0.0, -0.0, -0.0, 10.5 }))
    end)

    it("keeps the high-water mark while the decrease is pending", function()
      local a = account()
      a.poll({ paid = 10.5 })
      local _, acc = a.poll({ paid = 2 })
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
      assert.are.same({ "aaa1", "bbb2" }, acc.seen) -- still written: see "rollback" below
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

  -- The counter is taken to have counted every payout up to its last poll (counted_until =
  -- the previous state's polled); the counter's increase at the switch is not awarded.
  describe("a payout list that appears for an account counted by paid or paid24h", function()
    local L1 = { tx = "r1", amount = 1.5, time = T0 - 600 } -- before the counter's last poll
    local L2 = { tx = "r2", amount = 2, time = T0 + 300 }   -- after it
    local L3 = { tx = "r3", amount = 0.5, time = T0 + 900 }

    it("awards nothing by the counter, takes payouts up to its last poll as counted, newer ones by tx", function()
      local a = account()
      a.poll({ paid = 10 })
      a.now = T0 + 600
      local awards, acc = a.poll({ paid = 12, payouts = { L2, L1 } })
      assert.are.equal(1, #awards)
      assert.are.equal("tx:" .. WALLET_ID .. ":r2", awards[1].key)
      assert.are.equal(2, awards[1].advc)
      assert.are.equal("payouts", acc.mode)
      assert.are.equal(T0, acc.counted_until)
      assert.are.same({ r1 = L1.time, r2 = L2.time }, acc.txs)
      assert.are.equal(1, #a.world:logged("reward_counter_changed"))
      assert.are.equal(1, #a.world:logged("payouts_counted_by_counter"))
      -- from now on by tx only: the counter's 0.5 is r3, counted once
      a.now = T0 + 1200
      awards, acc = a.poll({ paid = 12.5, payouts = { L3, L2, L1 } })
      assert.are.equal(1, #awards)
      assert.are.equal(0.5, awards[1].advc)
      assert.are.equal("tx:" .. WALLET_ID .. ":r3", awards[1].key)
      assert.are.equal(T0, acc.counted_until)
    end)

    it("does the same from paid24h", function()
      local a = account()
      a.poll({ paid24h = 1 })
      a.now = T0 + 600
      local awards = a.poll({ paid24h = 3, payouts = { L2, L1 } })
      assert.are.equal(2, total(awards))
      a.now = T0 + 1200
      awards = a.poll({ paid24h = 3.5, payouts = { L3, L2, L1 } })
      assert.are.equal("tx:" .. WALLET_ID .. ":r3", awards[1].key)
    end)

    -- The review's reproduction: P2 is in the counter at the switch but listed only later.
    it("pays a payout in the counter but not yet listed at the switch once, by tx", function()
      local a = account()
      a.poll({ paid24h = 0 })
      a.now = T0 + 600
      local r1 = a.poll({ paid24h = 0.003,
                          payouts = { { tx = "P1", amount = 0.001, time = a.now - 60 } } })
      a.now = T0 + 1200
      local r2 = a.poll({ paid24h = 0.003,
                          payouts = { { tx = "P2", amount = 0.002, time = a.now - 700 },
                                      { tx = "P1", amount = 0.001, time = a.now - 660 } } })
      assert.are.equal("0.00300000", string.format("%.8f", total(r1) + total(r2)))
    end)

    -- The review's reproduction, the other way round: P is listed before the counter shows it.
    it("pays a payout listed before the counter shows it once", function()
      local a = account()
      a.poll({ paid = 10 })
      a.now = T0 + 600
      local r1 = a.poll({ paid = 10, payouts = { { tx = "P", amount = 2, time = a.now - 30 } } })
      a.now = T0 + 1200
      local r2 = a.poll({ paid = 12, payouts = { { tx = "P", amount = 2, time = a.now - 630 } } })
      assert.are.equal(2, total(r1) + total(r2))
      assert.are.equal(1, #(r1 or {}) + #(r2 or {}))
    end)

    it("never awards a tx first listed after the switch but dated up to the counter's last poll", function()
      local a = account()
      a.poll({ paid = 10 })
      a.now = T0 + 600
      assert.is_nil(a.poll({ paid = 10, payouts = {} }))
      a.now = T0 + 1200
      local awards, acc = a.poll({ paid = 10, payouts = { L1 } }) -- counted by paid = 10
      assert.is_nil(awards)
      assert.are.equal(L1.time, acc.txs.r1)
      a.now = T0 + 1800
      assert.is_nil(a.poll({ paid = 10, payouts = { L1 } }))
    end)

    it("takes listed entries without a time as counted at the switch poll, not later", function()
      local a = account()
      a.poll({ paid = 10 })
      a.now = T0 + 600
      assert.is_nil(a.poll({ paid = 11, payouts = { { tx = "u1", amount = 1 } } }))
      a.now = T0 + 1200
      local awards = a.poll({ paid = 12, payouts = { { tx = "u2", amount = 1 },
                                                     { tx = "u1", amount = 1 } } })
      assert.are.equal(1, #awards)
      assert.are.equal("tx:" .. WALLET_ID .. ":u2", awards[1].key)
    end)

    it("counts up to the switch itself for a state written before polled existed", function()
      local a = account()
      a.restore({ mode = "paid", epoch = 0, count = 0, since = T0 - 600, paid = 10 },
                { paid = 10 })
      a.now = T0 + 600
      local awards, acc = a.poll({ paid = 12, payouts = { L2, L1 } })
      assert.is_nil(awards)
      assert.are.equal(T0 + 600, acc.counted_until)
      a.now = T0 + 1200
      awards = a.poll({ paid = 12.5, payouts = { L3, L2, L1 } }) -- r3 is newer than the switch
      assert.are.equal(1, #awards)
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
      -- ids younger than 48 h: 288 of 78 bytes ("<64 hex>":<time>,) in txs, and again of 67
      -- bytes in seen (rollback safety), not 1000 ids / 67 KB of seen and a copy of the list
      assert.is_true(largest < 44 * 1024, "state grew to " .. largest .. " bytes")
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

  -- observation.unit (rplant: "div2=8") is the scale of the amounts: a change is a new
  -- baseline, like a change between paid and paid24h; remembered tx ids stay remembered.
  describe("a change of unit", function()
    it("takes a new baseline, awards nothing and logs both units", function()
      local a = account()
      a.poll({ paid = 50, unit = "div2=8" })
      local awards, acc = a.poll({ paid = 500, unit = "div2=7" })
      assert.is_nil(awards)
      assert.are.equal(500, acc.paid)
      assert.are.equal(1, acc.epoch)
      assert.are.equal("div2=7", acc.unit)
      local changed = a.world:logged("reward_units_changed")
      assert.are.equal(1, #changed)
      assert.are.equal("warning", changed[1].level)
      assert.are.same({ "div2=8", "div2=7" }, { changed[1].fields.previous_unit,
                                                changed[1].fields.unit })
      awards = a.poll({ paid = 501, unit = "div2=7" })
      assert.are.equal(1, total(awards))
    end)

    it("counts nil -> a unit and a unit -> nil as changes", function()
      local a = account()
      a.poll({ paid = 10 })
      assert.is_nil(a.poll({ paid = 20, unit = "u" }))
      assert.is_nil(a.poll({ paid = 30 }))
      assert.are.equal(2, #a.world:logged("reward_units_changed"))
      assert.are.equal(1, total(a.poll({ paid = 31 })))
    end)

    it("does not confirm a pending decrease across units", function()
      -- 50 in coins read as 0.005 (div2 12 instead of 8) for three polls, then right again
      local a = account()
      a.poll({ paid = 50, unit = "div2=8" })
      for _ = 1, 3 do assert.is_nil(a.poll({ paid = 0.005, unit = "div2=12" })) end
      assert.is_nil(a.poll({ paid = 50, unit = "div2=8" }))
      assert.are.equal(0.5, total(a.poll({ paid = 50.5, unit = "div2=8" })))
      assert.are.equal(0, #a.world:logged("paid_counter_decreased"))
    end)

    it("works the same for paid24h", function()
      local a = account()
      a.poll({ paid24h = 1, unit = "a" })
      assert.is_nil(a.poll({ paid24h = 10, unit = "b" }))
      assert.are.equal(1, total(a.poll({ paid24h = 11, unit = "b" })))
    end)

    it("keeps remembered tx ids, remembers the listed ones and awards none at that poll", function()
      local a = account()
      local A = { tx = "A", amount = 1, time = T0 - 60 }
      local B = { tx = "B", amount = 2, time = T0 }
      local C = { tx = "C", amount = 3, time = T0 + 600 }
      a.poll({ payouts = { A }, unit = "u1" })
      local awards, acc = a.poll({ payouts = { B, A }, unit = "u2" })
      assert.is_nil(awards)
      assert.are.same({ A = A.time, B = B.time }, acc.txs)
      a.now = T0 + 600
      awards = a.poll({ payouts = { C, B, A }, unit = "u2" })
      assert.are.equal(1, #awards)
      assert.are.equal("tx:" .. WALLET_ID .. ":C", awards[1].key)
      assert.is_nil(a.poll({ payouts = { C, B, A }, unit = "u1" }))
      -- an answer without the list keeps the memory too
      assert.is_nil(a.poll({ paid24h = 1, unit = "u2" }))
      a.now = T0 + 1200
      awards = a.poll({ payouts = { C, B, A }, unit = "u2" })
      assert.is_nil(awards)
    end)

    it("from a counter to a list: a baseline at that poll, newer payouts awarded by tx", function()
      local a = account()
      a.poll({ paid = 10, unit = "u1" })
      a.now = T0 + 600
      local L = { tx = "L", amount = 1, time = T0 + 300 }
      local awards, acc = a.poll({ paid = 11, unit = "u2", payouts = { L } })
      assert.is_nil(awards)
      assert.are.equal("payouts", acc.mode)
      assert.are.equal(T0 + 600, acc.counted_until)
      a.now = T0 + 1200
      awards = a.poll({ paid = 12, unit = "u2",
                        payouts = { { tx = "M", amount = 1, time = T0 + 900 }, L } })
      assert.are.equal("tx:" .. WALLET_ID .. ":M", awards[1].key)
    end)
  end)

  -- The database skips an award whose (player, pool, key) it already has, silently.
  describe("REWARD_HISTORY with a change of wallet", function()
    local W2, W2ID = "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy", "5f9a0c1d2e3b4a69"

    local function stored(db, awards)
      local advc = 0
      for _, aw in ipairs(awards or {}) do
        if not db[aw.key] then db[aw.key], advc = true, advc + aw.advc end
      end
      return advc
    end

    it("pays a wallet's history once when the player goes W1 -> W2 -> W1", function()
      local a = account({ REWARD_HISTORY = "true" })
      local db, paid = {}, 0
      local awards = a.poll({ paid = 100 })
      assert.are.equal("history:" .. WALLET_ID, awards[1].key)
      paid = paid + stored(db, awards)
      a.now = T0 + 600; a.forget(); a.wallet, a.wallet_id = W2, W2ID
      paid = paid + stored(db, a.poll({ paid = 0 }))
      a.now = T0 + 1200; a.forget(); a.wallet, a.wallet_id = WALLET, WALLET_ID
      paid = paid + stored(db, a.poll({ paid = 100 }))
      assert.are.equal(100, paid)
      -- and what W1 is paid from then on is awarded as usual
      a.now = T0 + 1800
      assert.are.equal(5, stored(db, a.poll({ paid = 105 })))
    end)

    it("pays listed history once as well (tx keys carry the wallet, not the baseline)", function()
      local a = account({ REWARD_HISTORY = "true" })
      local db, paid = {}, 0
      local list = { { tx = "h1", amount = 3, time = T0 - 60 } }
      paid = paid + stored(db, a.poll({ payouts = list }))
      a.now = T0 + 600; a.forget(); a.wallet, a.wallet_id = W2, W2ID
      paid = paid + stored(db, a.poll({ payouts = {} }))
      a.now = T0 + 1200; a.forget(); a.wallet, a.wallet_id = WALLET, WALLET_ID
      paid = paid + stored(db, a.poll({ payouts = list }))
      assert.are.equal(3, paid)
    end)
  end)

  -- An engine rolled back to the release before `txs` (2acc70a, its rules verbatim below)
  -- reads accounted.seen and awards "tx:<tx>" for every listed id not in it.
  describe("rollback to the previous release", function()
    local OLD_RULES = [==[
-- Adventure Point rules shared by every pool.
--
-- decide(previous, current, ctx) -> award | {award, ...} | nil
--   previous  the observation this function returned as `current` on the last successful poll
--             (nil on an account's first poll), including the bookkeeping stored under
--             `accounted` below
--   current   this poll's observation, in the pool's currency
--   ctx       pool, currency, player_id, username, wallet, now, and to_advc(amount)
-- An award is {advc=, ap=, key=, reason=}; key is unique for the account, so the same payout
-- can never be stored twice. What this function writes into `current.accounted` is kept
-- between polls (it must be JSON: strings, numbers, booleans, tables).
--
-- Which counter is used, in order of preference:
--   1. payouts with tx ids (zpool): each tx is awarded once;
--   2. cumulative paid (cpu-pool, rplant, pools that report it): awards the increase;
--   3. paid24h (YiiMP without a payout list): awards increases of the sliding 24h window.
--      This misses a payout that lands in the same poll interval as an older one leaving the
--      window; it is the fallback only (docs/pools.md).
local AP_PER_ADVC = m2p.env_number("AP_PER_ADVC", 100, 0, 1e12)
local MIN_PAYOUT_DELTA = m2p.env_number("MIN_PAYOUT_DELTA", 0.0001, 0, 1e12)
-- The first observation of an account is a baseline: what the wallet was paid before the
-- player joined is not rewarded. REWARD_HISTORY=true rewards it once instead.
local REWARD_HISTORY = m2p.env_bool("REWARD_HISTORY", false)
-- How many awarded payout ids an account remembers (pools list only recent payouts).
local SEEN_LIMIT = 1000

local rewards = {}

local function award(advc, key, reason)
  return { advc = m2p.round8(advc), ap = m2p.round8(advc * AP_PER_ADVC), key = key,
           reason = reason }
end

local function mode_of(obs)
  if obs.payouts then return "payouts" end
  if obs.paid then return "paid" end
  return "paid24h"
end

-- Payouts by tx id: award every id not seen before; remember the most recent SEEN_LIMIT.
local function decide_payouts(prev, current, acc, ctx, awards, baseline, first)
  local seen, order = {}, {}
  for _, tx in ipairs(prev and prev.seen or {}) do
    seen[tx] = true
    order[#order + 1] = tx
  end
  for _, p in ipairs(current.payouts) do
    if not seen[p.tx] then
      seen[p.tx] = true
      order[#order + 1] = p.tx
      local advc = ctx.to_advc(p.amount)
      if (not baseline or (REWARD_HISTORY and first)) and advc > 0 then
        awards[#awards + 1] = award(advc, "tx:" .. p.tx, "payout " .. p.tx)
      end
    end
  end
  local first = math.max(1, #order - SEEN_LIMIT + 1)
  acc.seen = { unpack(order, first) }
end

-- Cumulative paid: award the increase since the last accounted level. Increases below
-- MIN_PAYOUT_DELTA are not lost: the accounted level stays put until they add up.
local function decide_paid(prev, current, acc, ctx, awards, baseline, first)
  local base = not baseline and prev and prev.paid
  if not base then
    acc.paid = current.paid
    if REWARD_HISTORY and first and current.paid > 0 then
      awards[#awards + 1] = award(ctx.to_advc(current.paid),
        string.format("paid:%d:%.8f", acc.epoch, current.paid), "paid before first observation")
    end
  elseif current.paid < base then
    m2p.log("warning", "paid_counter_decreased", { pool = ctx.pool, player_id = ctx.player_id,
      previous_paid = base, current_paid = current.paid })
    acc.paid = current.paid
    acc.epoch = acc.epoch + 1
  else
    -- Rounded before the comparison: 10.5001 - 10.5 is 0.00009999999999976 in binary.
    local advc = m2p.round8(ctx.to_advc(current.paid - base))
    if advc > 0 and advc >= MIN_PAYOUT_DELTA then
      awards[#awards + 1] = award(advc, string.format("paid:%d:%.8f", acc.epoch, current.paid),
        string.format("paid %.8f -> %.8f", base, current.paid))
      acc.paid = current.paid
    else
      acc.paid = base
    end
  end
end

-- paid24h fallback: increases are payouts; decreases are old payouts leaving the window.
-- An increase below MIN_PAYOUT_DELTA keeps the old level so that small steps add up.
local function decide_paid24h(prev, current, acc, ctx, awards, baseline)
  local base = not baseline and prev and prev.paid24h
  acc.paid24h = current.paid24h
  if base and current.paid24h > base then
    local advc = m2p.round8(ctx.to_advc(current.paid24h - base))
    if advc > 0 and advc >= MIN_PAYOUT_DELTA then
      acc.count = acc.count + 1
      awards[#awards + 1] = award(advc, string.format("paid24h:%d", acc.count),
        string.format("paid24h %.8f -> %.8f", base, current.paid24h))
    else
      acc.paid24h = base
    end
  end
end

local deciders = { payouts = decide_payouts, paid = decide_paid, paid24h = decide_paid24h }

function rewards.decide(previous, current, ctx)
  local prev = previous and previous.accounted
  local mode = mode_of(current)
  -- A first observation, or a pool that switched counters, starts a new baseline: comparing
  -- different counters would invent or double payouts.
  local baseline = prev == nil or prev.mode ~= mode
  if prev and baseline then
    m2p.log("info", "reward_counter_changed", { pool = ctx.pool, player_id = ctx.player_id,
      previous_mode = prev.mode, mode = mode })
  end
  local acc = { mode = mode, epoch = prev and prev.epoch or 0, count = prev and prev.count or 0 }
  local awards = {}
  deciders[mode](prev, current, acc, ctx, awards, baseline, prev == nil)
  current.accounted = acc
  if #awards == 0 then return nil end
  return awards
end

return rewards
]==]

    local function load_old(w)
      local chunk = assert(loadstring(OLD_RULES, "=2acc70a:scripts/rewards.lua"))
      setfenv(chunk, w:sandbox("2acc70a:scripts/rewards.lua"))
      return chunk()
    end

    local function engine()
      local w = helper.world()
      local e = { new = w:load("scripts/rewards.lua"), old = load_old(w), db = {}, paid = 0,
                  now = T0 }
      function e.poll(rules, obs)
        local ctx = { pool = "zpool", currency = "ADVC", player_id = 7, username = "ann",
                      wallet = WALLET, wallet_id = WALLET_ID, now = e.now }
        function ctx.to_advc(x) return x end
        local previous = e.state and helper.json_decode(e.state, w.null)
        local r = e[rules].decide(previous, obs, ctx)
        e.state = helper.json_encode(obs, w.null)
        if r and r.advc then r = { r } end
        for _, aw in ipairs(r or {}) do
          if not e.db[aw.key] then e.db[aw.key], e.paid = true, e.paid + aw.advc end
        end
      end
      return e
    end

    it("pays no listed tx again: seen is still written beside txs", function()
      local e = engine()
      local list = function() return { { tx = "aa11", amount = 0.5, time = T0 - 100 } } end
      e.poll("new", { payouts = {} })
      e.now = T0 + 600
      e.poll("new", { payouts = list() })           -- aa11: tx:<wallet_id>:aa11
      e.now = T0 + 1200
      e.poll("old", { payouts = list() })           -- rolled back: would be tx:aa11
      assert.are.equal(0.5, e.paid)
      e.now = T0 + 1800
      e.poll("new", { payouts = list() })           -- and forward again
      assert.are.equal(0.5, e.paid)
    end)

    it("pays none of the txs taken as counted at a switch from a counter", function()
      local e = engine()
      e.poll("new", { paid = 10 })
      e.now = T0 + 600
      e.poll("new", { paid = 12, payouts = { { tx = "c1", amount = 2, time = T0 - 60 } } })
      assert.are.equal(0, e.paid)
      e.now = T0 + 1200
      e.poll("old", { paid = 12, payouts = { { tx = "c1", amount = 2, time = T0 - 60 } } })
      assert.are.equal(0, e.paid)
    end)

    it("writes at most 1000 ids, the newest, sorted", function()
      local a = account()
      local list = {}
      for i = 1, 1000 do list[i] = { tx = string.format("t%04d", i), amount = 1, time = T0 - i } end
      a.poll({ payouts = list })
      a.now = T0 + 600
      local newer = {}
      for i = 1, 10 do newer[i] = { tx = string.format("n%02d", i), amount = 1, time = T0 + i } end
      local _, acc = a.poll({ payouts = newer })
      assert.are.equal(1010, count(acc.txs))
      assert.are.equal(1000, #acc.seen)
      assert.are.equal("n01", acc.seen[1])
      for i = 2, #acc.seen do assert.is_true(acc.seen[i - 1] < acc.seen[i]) end
      local in_seen = {}
      for _, tx in ipairs(acc.seen) do in_seen[tx] = true end
      for i = 991, 1000 do assert.is_nil(in_seen[string.format("t%04d", i)]) end
    end)
  end)

  describe("through engine/script/pipeline.lua", function()
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

    -- One wallet in two letter cases (bech32) is one wallet: the same id, the same keys, so
    -- a player re-typing the address never gets the listed txs again.
    it("ctx.wallet_id comes from the canonical wallet (bech32 lower-cased)", function()
      local pipeline, w, index = helper.pipeline({ only = { "zpool" } })
      local lower = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
      local function answer(list)
        local body = '{"currency": "BTC", "paid24h": 0, "error": "", "payouts": [' .. list .. ']}'
        return { status = 200, headers = {}, body = body, json_type = "object",
                 json = helper.json_decode(body, w.null) }
      end
      local keys = {}
      for _, wallet in ipairs({ lower, lower:upper() }) do
        local account = { player_id = 1, username = "ann", wallet = wallet }
        local _, state = pipeline.poll(index.zpool, account, answer(""))
        account.state = state
        local _, _, awards = pipeline.poll(index.zpool, account,
          answer('{"time": 1700000000, "amount": 0.0001, "tx": "t1"}'))
        keys[#keys + 1] = awards[1].key
      end
      assert.are.equal("tx:" .. w.m2p.sha256(lower):sub(1, 16) .. ":t1", keys[1])
      assert.are.equal(keys[1], keys[2])
    end)

    describe("observation.unit", function()
      local function unit_pool(unit_source)
        local pipeline = helper.pipeline({ only = {} })
        local source = [[
          return {
            name = "unitpool", currency = "ADVC",
            request = function(wallet) return { url = "http://127.0.0.1/" .. wallet } end,
            parse = function(response) return { paid = 1, unit = ]] .. unit_source .. [[ } end,
          }
        ]]
        local i = pipeline.load_pool("test/unitpool.lua", source, "unitpool")
        local account = { player_id = 1, username = "ann", wallet = WALLET }
        return function()
          return pipeline.poll(i, account, { status = 200, headers = {}, body = "{}",
                                             json_type = "object", json = {} })
        end
      end

      it("is kept in the observation and the state", function()
        local observation, state = unit_pool('"div2=8"')()
        assert.are.equal("div2=8", helper.json_decode(observation).unit)
        assert.are.equal("div2=8", helper.json_decode(state).accounted.unit)
        assert.is_nil(helper.json_decode((unit_pool("nil")())).unit)
      end)

      it("must be a string of 1-64 printable characters", function()
        for _, bad in ipairs({ '""', "8", "{}", "string.rep('x', 65)",
                            "'a' .. string.char(10) .. 'b'", "string.char(127)", "string.char(200)" }) do
          local ok, err = pcall(unit_pool(bad))
          assert.is_false(ok, bad)
          assert.matches("test/unitpool.lua: observation.unit must be a string of 1%-64 "
                         .. "printable characters", err)
        end
        assert.is_true((pcall(unit_pool("string.rep('~', 64)"))))
      end)
    end)
  end)
end)

describe("pipeline.explain (engine/script/pipeline.lua)", function()
  local function explain_with(rewards_source, state)
    local pipeline, _, index = helper.pipeline({ only = { "cpu-pool" } })
    if rewards_source then pipeline.load_rules("test/rewards.lua", rewards_source, "rewards") end
    local account = { player_id = 1, username = "ann", wallet = WALLET, state = state }
    return pcall(pipeline.explain, index["cpu-pool"], account)
  end

  it("gives the rules' texts as JSON", function()
    local ok, json = explain_with(nil, '{"paid": 3, "accounted": {"mode": "paid", "paid": 3, '
                                  .. '"epoch": 0, "since": 1700000000}}')
    assert.is_true(ok, json)
    local t = helper.json_decode(json)
    assert.matches("cumulative paid 3.00000000 ADVC", t.baseline, 1, true)
    assert.matches("must rise above 3.00000000", t.next_award, 1, true)
  end)

  it("shows the raw bookkeeping of rules without explain, and says an unreadable state", function()
    local plain = "return { decide = function() return nil end }"
    local ok, json = explain_with(plain, '{"accounted": {"level": 4}}')
    assert.is_true(ok, json)
    assert.are.equal('{"level":4}', helper.json_decode(json).baseline)
    ok, json = explain_with(plain, "not json")
    assert.is_true(ok, json)
    assert.matches("unreadable", helper.json_decode(json).baseline)
  end)

  it("names the rules file when explain returns something else", function()
    local ok, err = explain_with("return { decide = function() end, explain = function() "
                                 .. "return 42 end }")
    assert.is_false(ok)
    assert.matches("test/rewards.lua: explain%(%) must return a table", err)
    ok, err = explain_with("return { decide = function() end, explain = function() "
                           .. "return { baseline = {} } end }")
    assert.is_false(ok)
    assert.matches("explain%(%) field 'baseline' must be a string", err)
  end)
end)
