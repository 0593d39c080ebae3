-- Adventure Point rules shared by every pool.
--
-- decide(previous, current, ctx) -> award | {award, ...} | nil
--   previous  the observation this function returned as `current` on the last successful poll
--             (nil on an account's first poll), including the bookkeeping stored under
--             `accounted` below
--   current   this poll's observation, in the pool's currency
--   ctx       pool, currency, player_id, username, wallet, wallet_id, now, and to_advc(amount)
-- An award is {advc=, ap=, key=, reason=}; key is unique for the account, so the same payout
-- can never be stored twice. What this function writes into `current.accounted` is kept
-- between polls (it must be JSON: strings, numbers, booleans, tables).
--
-- Which counter is used (the account's "mode"), in order of preference:
--   1. payouts with tx ids (zpool, rplant): each tx is awarded once;
--   2. cumulative paid (cpu-pool, rplant, pools that report it): awards the increase;
--   3. paid24h (YiiMP without a payout list): awards increases of the sliding 24h window.
--      This misses a payout that lands in the same poll interval as an older one leaving the
--      window; it is the fallback only (docs/pools.md).
--
-- What the account remembers (`accounted`):
--   mode, epoch, count   the counter in use; epoch grows with every new baseline of this
--                        account, count with every paid24h award
--   since                ctx.now when the current baseline started
--   polled               ctx.now of the poll that wrote the state (every state has it)
--   unit                 the observation's `unit` (the scale of its amounts, e.g. rplant's
--                        "div2=8"), absent when the pool gives none; a change of unit is a
--                        new baseline: counters in different units are never compared
--   paid, falling        paid mode: the high-water mark, and a decrease not yet believed
--   paid24h              paid24h mode: the last level of the window
--   txs, clock           payouts mode: {tx = time} of the ids that can still be listed, and
--                        the newest payout time seen (never later than ctx.now)
--   counted_until        payouts mode, after a switch from paid/paid24h: payouts up to this
--                        time were counted by the old counter and are never awarded by tx
--   seen                 payouts mode: the ids of txs, sorted (at most 1000), for an engine
--                        rolled back to the release before txs existed (see below)
-- States written before these fields existed ({mode, epoch, count, paid, paid24h,
-- seen = {tx, ...}}) are read as they were meant: nothing already accounted is awarded again.
local AP_PER_ADVC = m2p.env_number("AP_PER_ADVC", 100, 0, 1e12)
local MIN_PAYOUT_DELTA = m2p.env_number("MIN_PAYOUT_DELTA", 0.0001, 0, 1e12)
-- The first observation of an account is a baseline: what the wallet was paid before the
-- player joined is not rewarded. REWARD_HISTORY=true rewards it once instead.
local REWARD_HISTORY = m2p.env_bool("REWARD_HISTORY", false)
-- A lower cumulative paid counter is believed only after this many consecutive successful
-- polls: NOMP answers a known wallet with all zeros at times, and a drop taken at once as a
-- new baseline pays the wallet's whole history again when the real figure returns.
local DECREASE_CONFIRM_POLLS = math.floor(m2p.env_number("DECREASE_CONFIRM_POLLS", 3, 1, 1000))
-- How long a payout id is remembered once the pool stops listing it: zpool lists the
-- completed payouts of the last 24 hours, so 48 hours leaves a day of margin. A payout older
-- than this (by the newest payout time seen) is never awarded: it was either seen and
-- forgotten, or missed for good.
local TX_MEMORY_SECONDS = 48 * 3600
-- A payout time above this is in milliseconds (1e11 s is in the year 5138).
local MILLISECONDS_ABOVE = 1e11

local rewards = {}

-- An award; `exact` false when an amount it comes from is beyond m2p.EXACT_LIMIT, where a
-- double no longer names one amount of 8 decimals: the engine holds such an award rather than
-- pay a figure that may be off (docs/reliability.md, "Money exact to 1e-8"). AP is counted in
-- units of 1e-8 too: 0.14747907 * 100 in doubles is 14.747906999999998.
local function award(advc, key, reason, exact)
  advc = m2p.round8(advc)
  local units = m2p.units(advc)
  local ap = units and math.floor(units * AP_PER_ADVC + 0.5) / 1e8
    or m2p.round8(advc * AP_PER_ADVC)
  local a = { advc = advc, ap = ap, key = key, reason = reason }
  if exact == false then a.exact = false end
  return a
end

-- to - from (two counters of the pool) in ADVC, and whether it is exact: the difference is
-- taken in units of 1e-8, exactly (in doubles 120000002.11111109 - 120000000 would not be
-- 2.11111109); false when a counter is beyond m2p.EXACT_LIMIT.
local function increase(from, to, ctx)
  local a, b = m2p.units(from), m2p.units(to)
  if a == nil or b == nil then return m2p.round8(ctx.to_advc(to - from)), false end
  return m2p.round8(ctx.to_advc((b - a) / 1e8)), true
end

-- Whether an amount of the pool's currency is an exact decimal of 8 places (see above).
local function exact(amount)
  return m2p.units(amount) ~= nil
end

-- Keys carry the wallet (a short hash: ctx.wallet_id) and the baseline (its start time and
-- epoch): a new wallet, or a new baseline of the same one, can never land on a key that an
-- earlier one was paid under, which the database's unique index would silently skip.
local function wallet_id(ctx)
  return tostring(ctx.wallet_id or ctx.wallet)
end

local function key(kind, acc, ctx, detail)
  return string.format("%s:%s:%d.%d:%s", kind, wallet_id(ctx), math.floor(acc.since),
                       math.floor(acc.epoch), detail)
end

local function log_fields(ctx, fields)
  fields.pool, fields.player_id = ctx.pool, ctx.player_id
  return fields
end

local function mode_of(obs)
  if obs.payouts then return "payouts" end
  if obs.paid then return "paid" end
  return "paid24h"
end

---------------------------------------------------------------------------------------------
-- Payouts by tx id
---------------------------------------------------------------------------------------------

-- A payout's time in seconds, never later than now (a far-future time must not push the
-- forgetting cutoff past the present); missing = now, the time of first sight.
local function payout_time(t, now)
  if type(t) ~= "number" or t ~= t then return now end
  if t > MILLISECONDS_ABOVE then t = t / 1000 end
  if t > now then return now end
  return math.floor(t)
end

-- How many ids `seen` holds: the previous release kept at most this many.
local SEEN_LIMIT = 1000

-- Rollback safety: the release before `txs` existed (2acc70a) reads only `accounted.seen`,
-- a list of tx ids, and awards every listed tx that is not in it under the key "tx:<tx>",
-- which the database has never stored (ours are "tx:<wallet_id>:<tx>"). Without `seen`, an
-- engine rolled back to it would pay every listed tx a second time. So `seen` is written
-- beside `txs`: its ids, the newest SEEN_LIMIT of them by payout time, sorted. This version
-- reads `txs` when it is there and never `seen` then.
local function seen_list(txs)
  local ids = {}
  for tx in pairs(txs) do ids[#ids + 1] = tx end
  if #ids > SEEN_LIMIT then
    table.sort(ids, function(x, y)
      if txs[x] ~= txs[y] then return txs[x] > txs[y] end
      return x < y
    end)
    for i = #ids, SEEN_LIMIT + 1, -1 do ids[i] = nil end
  end
  table.sort(ids)
  return ids
end

-- Awards every listed tx not remembered, unless it is older than the forgetting cutoff or,
-- after a switch from a counter, not newer than `acc.counted_until` (the counter counted it);
-- remembers the ids still listed, and the others while they are younger than the cutoff.
-- With `award_new` false (a baseline) the listed ids are only remembered. With `switching`
-- (the poll of the switch from a counter) a listed tx without a time is taken as counted.
local function decide_payouts(prev, current, acc, ctx, awards, award_new, switching)
  local known = prev and prev.txs or {}
  local clock = prev and prev.clock or 0
  local counted_until = acc.counted_until
  local txs, fresh = {}, {}
  for _, p in ipairs(current.payouts) do
    local t = known[p.tx] or payout_time(p.time, ctx.now)
    if t > clock then clock = t end
    txs[p.tx] = t
    if known[p.tx] == nil then fresh[#fresh + 1] = p end
  end
  local cutoff = clock - TX_MEMORY_SECONDS
  local counted, first_counted = 0, nil
  for _, p in ipairs(fresh) do
    local t = txs[p.tx]
    if t < cutoff then
      m2p.log("warning", "payout_too_old", log_fields(ctx, { tx = p.tx, time = t,
        cutoff = cutoff, detail = "older than the payouts remembered: not awarded" }))
    elseif counted_until ~= nil
        and (t <= counted_until or (switching and type(p.time) ~= "number")) then
      counted, first_counted = counted + 1, first_counted or p.tx
    elseif award_new then
      local advc = ctx.to_advc(p.amount)
      if advc > 0 then
        awards[#awards + 1] = award(advc, "tx:" .. wallet_id(ctx) .. ":" .. p.tx,
                                    "payout " .. p.tx, exact(p.amount))
      end
    end
  end
  if counted > 0 and award_new then
    m2p.log("info", "payouts_counted_by_counter", log_fields(ctx, { count = counted,
      tx = first_counted, counted_until = counted_until,
      detail = "paid before the switch to payout ids: counted by the old counter, not awarded" }))
  end
  for tx, t in pairs(known) do
    if txs[tx] == nil and t >= cutoff then txs[tx] = t end
  end
  acc.txs, acc.clock, acc.seen = txs, clock, seen_list(txs)
end

---------------------------------------------------------------------------------------------
-- Cumulative paid
---------------------------------------------------------------------------------------------

local function new_baseline(acc, ctx)
  acc.epoch = acc.epoch + 1
  acc.since = ctx.now
end

-- A cumulative counter back at 0 is never believed, however long it lasts: a pool that lost
-- or has not yet loaded a wallet's figures answers 0 (NOMP's all-zero answer, an rplant or
-- YiiMP wallet between its stats' expiry and the next share), and a 0 taken as the new
-- baseline pays the wallet's whole history again when the real figure returns. A real reset
-- is believed once the counter shows a new figure above 0 (and below the mark) on
-- DECREASE_CONFIRM_POLLS consecutive polls; what it rose by from 0 is not awarded (the safe
-- direction). Logged once per drop, not per poll.
local function decide_zero(prev, current, acc, ctx)
  if not (prev.falling and prev.falling.zero) then
    m2p.log("warning", "paid_counter_zero_ignored", log_fields(ctx, {
      previous_paid = prev.paid, current_paid = current.paid }))
  end
  acc.paid = prev.paid
  acc.falling = { polls = 0, paid = 0, zero = true }
end

-- A lower counter is remembered as `falling` and believed on the DECREASE_CONFIRM_POLLS-th
-- consecutive poll that shows it: the new baseline is that poll's value (what the counter
-- rose by while the decrease was pending is not awarded, the safe direction).
local function decide_decrease(prev, current, acc, ctx)
  if current.paid <= 0 then return decide_zero(prev, current, acc, ctx) end
  local polls = (prev.falling and prev.falling.polls or 0) + 1
  if polls >= DECREASE_CONFIRM_POLLS then
    m2p.log("warning", "paid_counter_reset_confirmed", log_fields(ctx, {
      previous_paid = prev.paid, current_paid = current.paid, polls = polls }))
    new_baseline(acc, ctx)
    acc.paid = current.paid
  else
    m2p.log("warning", "paid_counter_decreased", log_fields(ctx, {
      previous_paid = prev.paid, current_paid = current.paid, polls = polls,
      confirm_polls = DECREASE_CONFIRM_POLLS }))
    acc.paid = prev.paid
    acc.falling = { polls = polls, paid = current.paid }
  end
end

-- Awards the increase above the high-water mark. Increases below MIN_PAYOUT_DELTA are not
-- lost: the mark stays put until they add up. A value back at or above the mark ends a
-- pending decrease: it was a glitch.
local function decide_paid(prev, current, acc, ctx, awards)
  local high = prev.paid
  if current.paid < high then return decide_decrease(prev, current, acc, ctx) end
  if prev.falling and not prev.falling.zero then
    m2p.log("info", "paid_counter_decrease_ignored", log_fields(ctx, {
      previous_paid = high, current_paid = current.paid, polls = prev.falling.polls }))
  end
  -- In units before the comparison: 10.5001 - 10.5 is 0.00009999999999976 in binary.
  local advc, is_exact = increase(high, current.paid, ctx)
  if advc > 0 and advc >= MIN_PAYOUT_DELTA then
    awards[#awards + 1] = award(advc, key("paid", acc, ctx, string.format("%.8f", current.paid)),
      string.format("paid %.8f -> %.8f", high, current.paid), is_exact)
    acc.paid = current.paid
  else
    acc.paid = high
  end
end

---------------------------------------------------------------------------------------------
-- paid24h fallback: increases are payouts; decreases are old payouts leaving the window.
-- An increase below MIN_PAYOUT_DELTA keeps the old level so that small steps add up.
---------------------------------------------------------------------------------------------
local function decide_paid24h(prev, current, acc, ctx, awards)
  local base = prev.paid24h
  acc.paid24h = current.paid24h
  if current.paid24h > base then
    local advc, is_exact = increase(base, current.paid24h, ctx)
    if advc > 0 and advc >= MIN_PAYOUT_DELTA then
      acc.count = acc.count + 1
      awards[#awards + 1] = award(advc, key("paid24h", acc, ctx, tostring(acc.count)),
        string.format("paid24h %.8f -> %.8f", base, current.paid24h), is_exact)
    else
      acc.paid24h = base
    end
  end
end

local deciders = {
  payouts = function(prev, current, acc, ctx, awards)
    decide_payouts(prev, current, acc, ctx, awards, true)
  end,
  paid = decide_paid,
  paid24h = decide_paid24h,
}

---------------------------------------------------------------------------------------------
-- Baselines and changes of counter
---------------------------------------------------------------------------------------------

-- A first observation, or a new counter: remember the level, award nothing (or the history,
-- on the account's very first observation with REWARD_HISTORY).
local function start(mode, current, acc, ctx, awards, first)
  acc.mode = mode
  local history = REWARD_HISTORY and first
  if mode == "payouts" then
    decide_payouts(nil, current, acc, ctx, awards, history)
  elseif mode == "paid" then
    acc.paid = current.paid
    if history and current.paid > 0 then
      -- One key per wallet, whatever the baseline: a player who goes W1 -> W2 -> W1 starts W1
      -- again from a first observation, and the database's unique key skips the history
      -- the second time.
      awards[#awards + 1] = award(ctx.to_advc(current.paid), "history:" .. wallet_id(ctx),
        "paid before first observation", exact(current.paid))
    end
  else
    acc.paid24h = current.paid24h
  end
end

-- A payout list appears for an account counted by paid or paid24h (rplant's walletEx sends
-- both). The counter's increase is NOT awarded: a payout in it may be listed only later (sent
-- without a tx yet), and would then be paid twice; and a listed payout the counter does not
-- show yet would be lost. Instead the counter is taken to have counted every payout up to its
-- last poll (`counted_until` = the previous state's `polled`; ctx.now for a state written
-- before `polled` existed, the conservative side): a tx whose time is not later is remembered
-- and never awarded, now or when it is first listed later; a newer one is awarded by tx.
-- Listed entries without a time count as counted at this poll (later, a missing time is the
-- time of first sight, newer than counted_until). The edge: a payout the pool added to its
-- counter only after that last poll, but dated before it, is not awarded (the safe side).
local function switch_to_payouts(prev, current, acc, ctx, awards)
  acc.mode = "payouts"
  acc.counted_until = prev.polled or ctx.now
  decide_payouts(nil, current, acc, ctx, awards, true, true)
end

-- The unit of the amounts changed (rplant's div2 between two polls; a wrong /api/dash answer,
-- or the operator's setting): a counter compared across units would award the difference.
-- A new baseline, nothing awarded. Tx ids do not depend on units: the ones remembered stay
-- remembered, the listed ones are remembered, none is awarded at this poll.
local function units_changed(prev, current, acc, ctx, awards)
  m2p.log("warning", "reward_units_changed", log_fields(ctx, {
    previous_unit = prev.unit or "(none)", unit = current.unit or "(none)",
    previous_mode = prev.mode, mode = mode_of(current),
    detail = "the scale of the amounts changed: new baseline, nothing awarded this poll" }))
  new_baseline(acc, ctx)
  if prev.mode == "payouts" then
    acc.mode, acc.counted_until = "payouts", prev.counted_until
    if current.payouts then
      decide_payouts(prev, current, acc, ctx, awards, false)
    else
      acc.txs, acc.clock, acc.seen = prev.txs, prev.clock, seen_list(prev.txs)
    end
  else
    -- From a counter to a list as well: everything up to now is in the new baseline.
    if current.payouts then acc.counted_until = ctx.now end
    start(mode_of(current), current, acc, ctx, awards, false)
  end
end

-- The state as this version reads it, or nil (a new baseline) when it is not one we wrote.
local function upgrade(prev, ctx)
  if type(prev) ~= "table" or not deciders[prev.mode] then return nil end
  local numeric = { epoch = true, count = true, since = true, clock = true, polled = true,
                    counted_until = true }
  for field in pairs(numeric) do
    if prev[field] ~= nil and type(prev[field]) ~= "number" then return nil end
  end
  if prev.unit ~= nil and type(prev.unit) ~= "string" then return nil end
  if prev.mode ~= "payouts" and type(prev[prev.mode]) ~= "number" then return nil end
  prev.epoch, prev.count = prev.epoch or 0, prev.count or 0
  if type(prev.falling) ~= "table" or type(prev.falling.polls) ~= "number" then
    prev.falling = nil
  end
  -- Written before keys named their baseline: start a key space of its own now.
  prev.since = prev.since or ctx.now
  if prev.mode == "payouts" then
    local txs = {}
    if type(prev.txs) == "table" then
      for tx, t in pairs(prev.txs) do
        if type(tx) == "string" and type(t) == "number" then txs[tx] = t end
      end
    else
      -- The old list of ids carries no times: remember each from now on.
      for _, tx in ipairs(type(prev.seen) == "table" and prev.seen or {}) do
        if type(tx) == "string" then txs[tx] = ctx.now end
      end
    end
    prev.txs = txs
  end
  return prev
end

function rewards.decide(previous, current, ctx)
  local prev = upgrade(previous and previous.accounted, ctx)
  local mode = mode_of(current)
  local acc = { mode = mode, epoch = prev and prev.epoch or 0, count = prev and prev.count or 0,
                since = prev and prev.since or ctx.now }
  local awards = {}
  if prev == nil then
    start(mode, current, acc, ctx, awards, true)
  elseif prev.unit ~= current.unit then
    units_changed(prev, current, acc, ctx, awards)
  elseif prev.mode == "payouts" and mode ~= "payouts" then
    -- No list in this answer: no payout information, never a change of mode.
    m2p.log("info", "payouts_list_missing", log_fields(ctx, {
      detail = "the account is counted by payout ids; nothing awarded this poll" }))
    acc.mode, acc.txs, acc.clock = "payouts", prev.txs, prev.clock
    acc.counted_until, acc.seen = prev.counted_until, seen_list(prev.txs)
  elseif mode == "payouts" and prev.mode ~= "payouts" then
    m2p.log("info", "reward_counter_changed", log_fields(ctx, { previous_mode = prev.mode,
      mode = mode, counted_until = prev.polled or ctx.now,
      detail = "payout ids from now on; payouts up to the last poll count as paid by the counter" }))
    switch_to_payouts(prev, current, acc, ctx, awards)
  elseif mode ~= prev.mode then
    -- paid <-> paid24h: comparing different counters would invent or double payouts.
    m2p.log("info", "reward_counter_changed", log_fields(ctx, { previous_mode = prev.mode,
      mode = mode }))
    new_baseline(acc, ctx)
    start(mode, current, acc, ctx, awards, false)
  else
    if mode == "payouts" then acc.counted_until = prev.counted_until end
    deciders[mode](prev, current, acc, ctx, awards)
  end
  acc.polled, acc.unit = ctx.now, current.unit
  current.accounted = acc
  -- The list itself is in this poll's snapshot; the state needs only the ids in acc.txs
  -- (up to 1,000 entries of about 100 bytes, rewritten with every payout otherwise).
  current.payouts = nil
  if #awards == 0 then return nil end
  return awards
end

---------------------------------------------------------------------------------------------
-- explain(previous, ctx) -> {baseline = text, next_award = text}: what --explain and
-- GET /accounts say about an account (docs/operations.md, "Why was I not rewarded?"). It only
-- reads: the state is never changed here.
---------------------------------------------------------------------------------------------

local function when(t)
  if type(t) ~= "number" then return "an unknown time" end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local function explain_paid(acc, ctx)
  local text = {
    baseline = string.format("cumulative paid %.8f %s (the high-water mark of baseline %d, "
      .. "since %s)", acc.paid, ctx.currency, acc.epoch, when(acc.since)),
    next_award = string.format("the pool's paid counter must rise above %.8f %s by at least "
      .. "%.8f ADVC (MIN_PAYOUT_DELTA)", acc.paid, ctx.currency, MIN_PAYOUT_DELTA),
  }
  if acc.falling and acc.falling.zero then
    text.next_award = text.next_award .. "; the pool's counter shows 0, which is never taken "
      .. "as a new baseline (a reset is believed when it shows a figure above 0)"
  elseif acc.falling then
    text.next_award = text.next_award .. string.format("; a lower counter (%.8f) was seen on "
      .. "%d of the %d consecutive polls that make it the new baseline (DECREASE_CONFIRM_POLLS)",
      acc.falling.paid or 0, acc.falling.polls, DECREASE_CONFIRM_POLLS)
  end
  return text
end

local function explain_payouts(acc)
  local n, newest = 0, 0
  for _, t in pairs(acc.txs) do
    n = n + 1
    if t > newest then newest = t end
  end
  local text = {
    baseline = string.format("%d payout id(s) known, the newest paid at %s", n,
      n > 0 and when(newest) or "(none)"),
    next_award = n == 0 and "any payout the pool lists from now on"
      or string.format("a payout whose tx id is not among the %d known and that is newer than "
        .. "%s (older ones are forgotten or were missed)", n,
        when(math.max(acc.clock or 0, newest) - TX_MEMORY_SECONDS)),
  }
  if acc.counted_until then
    text.next_award = text.next_award .. string.format("; payouts up to %s were counted by the "
      .. "earlier counter and are never awarded by id", when(acc.counted_until))
  end
  return text
end

function rewards.explain(previous, ctx)
  local acc = upgrade(previous and previous.accounted, ctx)
  if acc == nil then
    return {
      baseline = "none yet: the next successful poll is the baseline",
      next_award = REWARD_HISTORY
        and "the baseline poll awards what the wallet was paid before, once (REWARD_HISTORY)"
        or "payouts after the baseline poll; what was paid before it is not awarded",
    }
  end
  if acc.mode == "paid" then return explain_paid(acc, ctx) end
  if acc.mode == "payouts" then return explain_payouts(acc) end
  return {
    baseline = string.format("paid in the last 24 hours %.8f %s (since %s)", acc.paid24h,
      ctx.currency, when(acc.since)),
    next_award = string.format("the 24-hour paid figure must rise above %.8f %s by at least "
      .. "%.8f ADVC (MIN_PAYOUT_DELTA)", acc.paid24h, ctx.currency, MIN_PAYOUT_DELTA),
  }
end

return rewards
