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
