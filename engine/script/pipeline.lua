-- The engine's side of the script contract (privileged; compiled into the binary).
--
-- The C runtime (engine/script/script.c) loads this file once per script generation, with the JIT
-- off and the instruction budget armed. It builds the sandbox every operator script runs in,
-- loads pools and rules, and runs one poll: response -> pool.parse -> observation check ->
-- rewards.decide (with convert.to_advc) -> award check; a pool's metadata answers (fetched by
-- engine/poll/pool_metadata.c) go through its metadata.parse and are kept for its polls.
-- Everything an operator script hands back is checked here, so C only ever sees validated
-- plain values.
local native, prelude = ...

local m2p = prelude(native)
-- A collection cycle starts when the heap has grown to 4 times (Lua's default: 2) what the
-- last one left: what survives is small (pools, rules, the wallet memory below: about 1 MiB)
-- and nearly everything a call allocates is garbage when it returns, so each cycle's marking
-- is paid for by three times as much garbage. Measured (docs/performance.md): 5,000 fewer
-- instructions per first poll, about 1 MiB more peak heap per process, none per account.
collectgarbage("setpause", 400)
-- LuaJIT's table.new(narray, nhash): a table sized once for what it will hold (a table grown
-- key by key is rebuilt at 1, 2, 4 and 8 keys). A plain table elsewhere (the busted specs
-- may run another Lua).
local ok_new, table_new = pcall(require, "table.new")
if not ok_new then table_new = function() return {} end end
local pipeline = {}
local pools = {}
local rules = {}

---------------------------------------------------------------------------------------------
-- Sandbox
---------------------------------------------------------------------------------------------
local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget",
  "rawset", "select", "tonumber", "tostring", "type", "unpack", "getmetatable",
  "setmetatable", "_VERSION" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The budget and memory errors must not be swallowed by a script's own pcall: once the
-- runtime has aborted a call, every protected call inside the sandbox re-raises.
local function rethrow_if_aborted(ok, ...)
  if not ok and native.aborted() then error((...), 0) end
  return ok, ...
end

-- A binary (bytecode) chunk: LuaJIT takes one after a UTF-8 byte order mark or a "#" first
-- line too (it then reports it "malformed"), so those are skipped before the check. Loading
-- is text-only ("t") as well, but this check gives the error its meaning.
local function is_bytecode(chunk)
  local i = chunk:sub(1, 3) == "\239\187\191" and 4 or 1
  if chunk:byte(i) == 35 then -- "#": LuaJIT skips the first line
    local eol = chunk:find("[\r\n]", i)
    if not eol then return false end
    i = eol + 1
  end
  return chunk:byte(i) == 27
end

local function sandbox_load(env)
  return function(chunk, chunkname)
    if type(chunk) ~= "string" then error("load: only source strings are accepted", 2) end
    if is_bytecode(chunk) then error("load: binary (bytecode) chunks are refused", 2) end
    local fn, err = load(chunk, chunkname or "=(load)", "t")
    if fn then setfenv(fn, env) end
    return fn, err
  end
end

-- Once the runtime has aborted the call, a script's error handler is not run at all: a
-- handler that loops would otherwise be called again for each budget error it raises.
local function guarded_handler(h)
  return function(e)
    if native.aborted() then return e end
    return h(e)
  end
end

-- Each resume nests the C stack (LuaJIT resumes a coroutine from C): a coroutine that resumes
-- a new one, and so on, would crash the process. native.cstack_ok says when to stop.
local CSTACK_ERROR = "C stack overflow (coroutines nested too deeply)"
local cstack_ok = native.cstack_ok or function() return true end -- (the busted specs' stub)

local function guarded_resume(co, ...)
  if not cstack_ok() then error(CSTACK_ERROR, 2) end
  return rethrow_if_aborted(coroutine.resume(co, ...))
end

local function wrap_result(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

local function guarded_wrap(f)
  local co = coroutine.create(f)
  return function(...)
    if not cstack_ok() then error(CSTACK_ERROR, 2) end
    return wrap_result(rethrow_if_aborted(coroutine.resume(co, ...)))
  end
end

-- The strings' __index is the real string table: ("").dump would reach what the sandbox's
-- copy leaves out.
string.dump = nil

local function new_env(path)
  local env = {}
  for _, k in ipairs(SAFE_GLOBALS) do env[k] = _G[k] end
  env.pcall = function(f, ...) return rethrow_if_aborted(pcall(f, ...)) end
  env.xpcall = function(f, h, ...)
    return rethrow_if_aborted(xpcall(f, type(h) == "function" and guarded_handler(h) or h, ...))
  end
  env.string = copy(string)
  env.string.dump = nil
  env.table = copy(table)
  env.math = copy(math)
  env.bit = copy(bit)
  env.coroutine = copy(coroutine)
  env.coroutine.resume = guarded_resume
  env.coroutine.wrap = guarded_wrap
  env.os = { time = os.time, clock = os.clock, date = os.date }
  env.m2p = copy(m2p)
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    native.log("info", "script_print", { script = path, message = table.concat(parts, "\t") })
  end
  env.load = sandbox_load(env)
  env.loadstring = env.load
  env._G = env
  return env
end

-- Compiles and runs one operator script in a fresh sandbox; returns what it returned.
local function run_script(path, source)
  if is_bytecode(source) then
    error(path .. ": binary (bytecode) chunks are refused; ship the Lua source", 0)
  end
  local chunk, err = load(source, "@" .. path, "t")
  if not chunk then error(err, 0) end
  setfenv(chunk, new_env(path))
  return chunk()
end

---------------------------------------------------------------------------------------------
-- Contract checks
---------------------------------------------------------------------------------------------
local function fail(path, fmt, ...)
  error(path .. ": " .. string.format(fmt, ...), 0)
end

local function describe(v)
  if v == m2p.null then return "null" end
  if type(v) == "string" then return string.format("%q", v:sub(1, 60)) end
  return tostring(v)
end

local function check_limits(path, limits)
  if limits == nil then return {} end
  if type(limits) ~= "table" then fail(path, "field 'limits' must be a table") end
  local out = {}
  local function num_field(key, min, max, integer)
    local v = limits[key]
    if v == nil then return end
    if type(v) ~= "number" or v ~= v or v < min or v > max or (integer and v % 1 ~= 0) then
      fail(path, "limits.%s must be a%s number in [%s, %s] (got %s)", key,
           integer and "n integer" or "", tostring(min), tostring(max), describe(v))
    end
    out[key] = v
  end
  num_field("concurrency", 1, 10000, true)
  num_field("per_second", 1e-6, 100000)
  num_field("interval", 1, 86400 * 7)
  -- How stale the pool's data may get: a pool that only lists the last 24 hours of payouts
  -- loses any an account is not polled in time for. The engine warns when it cannot keep up.
  num_field("max_interval", 1, 86400 * 30)
  for k in pairs(limits) do
    if out[k] == nil then fail(path, "limits.%s is not a known limit", tostring(k)) end
  end
  if out.interval and out.max_interval and out.interval > out.max_interval then
    fail(path, "limits.interval (%s) is longer than limits.max_interval (%s)",
         tostring(out.interval), tostring(out.max_interval))
  end
  return out
end

local METADATA_FIELDS = { url = true, refresh = true, parse = true }
local METADATA_MAX_JSON = 64 * 1024

-- `metadata = {url, refresh, parse}`: a second request the engine makes for the pool on its
-- own schedule (docs/scripting.md, "Pool metadata").
local function check_metadata(path, m)
  if m == nil then return nil end
  if type(m) ~= "table" then
    fail(path, "field 'metadata' must be a table {url = ..., refresh = ..., parse = ...} (got %s)",
         describe(m))
  end
  for k in pairs(m) do
    if not METADATA_FIELDS[k] then
      fail(path, "metadata.%s is not a known field (url, refresh, parse)", tostring(k))
    end
  end
  local url = m.url
  if type(url) ~= "string" or not url:match("^https?://[^%c%s]+$") or #url > 4096 then
    fail(path, "metadata.url must be an http:// or https:// URL without spaces (got %s)",
         describe(url))
  end
  local refresh = m.refresh == nil and 3600 or m.refresh
  if type(refresh) ~= "number" or refresh ~= refresh or refresh < 10 or refresh > 86400 * 7 then
    fail(path, "metadata.refresh must be a number of seconds in [10, 604800] (got %s)",
         describe(refresh))
  end
  if type(m.parse) ~= "function" then
    fail(path, "metadata.parse must be a function (got %s)", describe(m.parse))
  end
  return { url = url, refresh = refresh, parse = m.parse }
end

local function check_pool(path, default_name, t)
  if type(t) ~= "table" then fail(path, "a pool script must return a table (got %s)", type(t)) end
  local name = t.name == nil and default_name or t.name
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") or #name > 64 then
    fail(path, "field 'name' must be 1-64 characters of letters, digits, '-' or '_' (got %s)",
         describe(name))
  end
  if type(t.currency) ~= "string" or not t.currency:match("^[A-Z0-9]+$") then
    fail(path, "field 'currency' must be an upper-case code such as \"BTC\" (got %s)",
         describe(t.currency))
  end
  if t.enabled ~= nil and type(t.enabled) ~= "boolean" then
    fail(path, "field 'enabled' must be a boolean (got %s)", describe(t.enabled))
  end
  for _, fn in ipairs({ "request", "parse" }) do
    if type(t[fn]) ~= "function" then
      fail(path, "field '%s' must be a function (got %s)", fn, describe(t[fn]))
    end
  end
  local wp = t.wallet_pattern
  if wp ~= nil and type(wp) ~= "string" and type(wp) ~= "function" then
    fail(path, "field 'wallet_pattern' must be a Lua pattern string or a function")
  end
  if t.proxy ~= nil and (type(t.proxy) ~= "string" or not t.proxy:match("^%a[%w+.-]*://[^%s%c]+$")) then
    fail(path, "field 'proxy' must be a proxy URL such as \"http://10.0.0.1:3128\" (got %s)",
         describe(t.proxy))
  end
  if t.interface ~= nil and (type(t.interface) ~= "string" or not t.interface:match("^[^%s%c]+$")) then
    fail(path, "field 'interface' must be an interface or address such as \"eth1\" or "
         .. "\"host!10.0.0.2\" (got %s)", describe(t.interface))
  end
  if t.redirects ~= nil and t.redirects ~= "none" and t.redirects ~= "same-host" then
    fail(path, "field 'redirects' must be \"none\" or \"same-host\" (got %s)",
         describe(t.redirects))
  end
  -- The engine keeps each account's request from one poll to the next (docs/scripting.md,
  -- "Requests are cached"); a request that carries a time or a nonce opts out.
  if t.cache_request ~= nil and type(t.cache_request) ~= "boolean" then
    fail(path, "field 'cache_request' must be a boolean (got %s)", describe(t.cache_request))
  end
  local metadata = check_metadata(path, t.metadata)
  return { script = t, path = path, name = name, currency = t.currency,
           cache_request = t.cache_request ~= false,
           enabled = t.enabled ~= false, limits = check_limits(path, t.limits),
           proxy = t.proxy, interface = t.interface, metadata = metadata,
           same_host_redirects = t.redirects == "same-host",
           metadata_url = metadata and metadata.url,
           metadata_refresh = metadata and metadata.refresh }
end

-- The wallet's canonical form on this pool, or nil and why not. Control characters, spaces
-- and absurd lengths are refused whatever the pool says (never let a hostile string reach a
-- URL); then the pool's wallet_pattern decides (docs/scripting.md, "Wallets"): a Lua pattern,
-- or a function returning true (valid as it is), a string (valid, and this is its canonical
-- form: the key under which the wallet belongs to one player), or nil/false and a reason.
-- `clean`: the engine has already found no space or control character in it (a byte scan
-- in C is far cheaper than the pattern; a wallet it did not vouch for is scanned here).
local function wallet_canonical(pool, wallet, clean)
  if type(wallet) ~= "string" or #wallet == 0 then return nil, "empty" end
  if #wallet > 256 then return nil, "longer than 256 characters" end
  if not clean and wallet:find("[%c%s]") then
    return nil, "contains spaces or control characters"
  end
  local wp = pool.script.wallet_pattern
  if wp == nil then
    if #wallet < 20 or #wallet > 120 or not wallet:match("^[A-Za-z0-9]+$") then
      return nil, "not 20-120 letters and digits"
    end
    return wallet
  elseif type(wp) == "string" then
    if not wallet:match(wp) then return nil, "does not match the pool's wallet_pattern" end
    return wallet
  end
  local verdict, reason = wp(wallet)
  if verdict == true then return wallet end
  if verdict == nil or verdict == false then
    return nil, type(reason) == "string" and reason:sub(1, 200) or "refused by wallet_pattern"
  end
  if type(verdict) ~= "string" or #verdict == 0 or #verdict > 256 or verdict:find("[%c%s]") then
    fail(pool.path, "wallet_pattern must return true, the canonical wallet (a string without "
         .. "spaces, 1-256 characters) or nil and a reason (got %s)", describe(verdict))
  end
  return verdict
end

-- A poll checks the wallet its request was built for moments before, so the last few thousand
-- valid wallets are remembered per pool: the address checksum is computed once per poll, not
-- twice. (A new script generation, as after a settings change, starts with no memory.) With
-- cached requests the engine says when it has checked the wallet itself (wallet_checked).
local WALLET_MEMORY = 4096

local function checked_wallet(pool, wallet, clean)
  local memory = pool.wallet_memory
  if memory == nil or pool.wallet_memory_size >= WALLET_MEMORY then
    memory = {}
    pool.wallet_memory, pool.wallet_memory_size = memory, 0
  end
  local known = memory[wallet]
  if known then return known end
  local canonical, reason = wallet_canonical(pool, wallet, clean)
  if canonical == nil then error("invalid wallet: " .. reason, 0) end
  memory[wallet] = canonical
  pool.wallet_memory_size = pool.wallet_memory_size + 1
  return canonical
end

local function check_url(path, url)
  if type(url) ~= "string" or not url:match("^https?://[^%c%s]+$") or #url > 4096 then
    fail(path, "request() returned an invalid url %s (need http:// or https://, no spaces)",
         describe(url))
  end
end

-- `engine_checks_url`: the caller (engine/script/script_calls.c) checks the URL's characters
-- itself as it copies it, a byte scan far cheaper than the pattern, and raises through
-- pipeline.refuse_url. An error about the headers then checks the URL first, so that a
-- request wrong in both ways is still refused for its URL.
local function header_fail(path, url, engine_checks_url, fmt, ...)
  if engine_checks_url then check_url(path, url) end
  fail(path, fmt, ...)
end

-- The header lines already checked, per pool: [name][value] = "name: value". A pool sends the
-- same few constant headers with every request, so each is checked and joined once (bounded
-- like the wallet memory: a pool that varies a header per request starts afresh now and then).
local HEADER_MEMORY = 256

local function header_line(pool, k, v)
  local memory = pool.header_memory
  local values = memory and memory[k]
  local line = values and values[v]
  if line then return line end
  if type(k) ~= "string" or not k:match("^[%w%-]+$") or type(v) ~= "string"
      or v:find("[\r\n%z]") then
    return nil
  end
  line = k .. ": " .. v
  if memory == nil or pool.header_memory_size >= HEADER_MEMORY then
    memory = {}
    pool.header_memory, pool.header_memory_size = memory, 0
  end
  values = memory[k]
  if values == nil then
    values = {}
    memory[k] = values
  end
  values[v] = line
  pool.header_memory_size = pool.header_memory_size + 1
  return line
end

local function check_request(pool, req, engine_checks_url)
  local path = pool.path
  if type(req) ~= "table" then fail(path, "request() must return a table (got %s)", describe(req)) end
  local url = req.url
  if type(url) ~= "string" or not engine_checks_url then check_url(path, url) end
  local headers = {}
  if req.headers ~= nil then
    if type(req.headers) ~= "table" then
      header_fail(path, url, engine_checks_url, "request().headers must be a table")
    end
    for k, v in pairs(req.headers) do
      local line = header_line(pool, k, v)
      if line == nil then
        header_fail(path, url, engine_checks_url, "request().headers has an invalid header %s",
                    describe(k))
      end
      headers[#headers + 1] = line
    end
    if #headers > 1 then table.sort(headers) end
  end
  return url, headers
end

local AMOUNT_FIELDS = { "paid", "balance", "immature", "unsold", "unpaid", "paid24h", "total",
  "hashrate", "shares" }
local MAX_PAYOUTS = 1000
-- The largest amount the engine can store is below 1e22 (NUMERIC(30,8): 22 integer digits).
-- A pool's figure at or above it is refused as a failed poll, before the rules see it: taken
-- as an observation (even with its award held) it would become the baseline, and the honest
-- figure after it would read as a decrease (docs/reliability.md, "Pool faults").
local MAX_AMOUNT = 1e22

local function check_payouts(path, list)
  if type(list) ~= "table" then fail(path, "observation.payouts must be a list") end
  if #list > MAX_PAYOUTS then fail(path, "observation.payouts has more than %d entries", MAX_PAYOUTS) end
  local out, seen = {}, {}
  for i, p in ipairs(list) do
    if type(p) ~= "table" then fail(path, "observation.payouts[%d] must be a table", i) end
    if type(p.tx) ~= "string" or not p.tx:match("^[%w%-_:%.]+$") or #p.tx > 128 then
      fail(path, "observation.payouts[%d].tx must be an id of 1-128 letters/digits (got %s)", i,
           describe(p.tx))
    end
    local amount, err = m2p.num(p.amount)
    if not amount or amount <= 0 then
      fail(path, "observation.payouts[%d].amount: %s", i, err or "must be greater than 0")
    end
    if amount >= MAX_AMOUNT then
      fail(path, "observation.payouts[%d].amount is beyond what the engine stores (%s >= 1e22)",
           i, tostring(amount))
    end
    local time = p.time ~= nil and p.time ~= m2p.null and m2p.num(p.time) or nil
    if not seen[p.tx] then
      seen[p.tx] = true
      out[#out + 1] = { tx = p.tx, amount = amount, time = time }
    end
  end
  return out
end

-- Builds a clean observation from what parse returned: known fields only, numbers checked.
local function check_observation(path, obs)
  if type(obs) ~= "table" then fail(path, "parse() must return a table (got %s)", describe(obs)) end
  local out = table_new(0, 8) -- most pools: 4-6 amounts, and the rules' bookkeeping
  for _, f in ipairs(AMOUNT_FIELDS) do
    local v = obs[f]
    if v ~= nil and v ~= m2p.null then
      local x, err = m2p.num(v)
      if not x then fail(path, "observation.%s: %s", f, err) end
      if x < 0 then fail(path, "observation.%s is negative (%s)", f, tostring(x)) end
      if x >= MAX_AMOUNT then
        fail(path, "observation.%s is beyond what the engine stores (%s >= 1e22)", f, tostring(x))
      end
      out[f] = x
    end
  end
  if obs.payouts ~= nil and obs.payouts ~= m2p.null then
    out.payouts = check_payouts(path, obs.payouts)
  end
  -- The scale of the amounts (rplant: "div2=8"): when it changes the rules take a new
  -- baseline rather than compare amounts in different units.
  local unit = obs.unit
  if unit ~= nil and unit ~= m2p.null then
    if type(unit) ~= "string" or #unit == 0 or #unit > 64 or unit:find("[^\32-\126]") then
      fail(path, "observation.unit must be a string of 1-64 printable characters (got %s)",
           describe(unit))
    end
    out.unit = unit
  end
  if out.paid == nil and out.payouts == nil and out.paid24h == nil then
    fail(path, "observation has no payout counter (paid, payouts or paid24h)")
  end
  return out
end

local function check_awards(result)
  if result == nil then return {} end
  local path = rules.rewards_path
  if type(result) ~= "table" then fail(path, "decide() must return an award, a list or nil") end
  local list = result.advc ~= nil and { result } or result
  local out, keys = {}, {}
  for i, a in ipairs(list) do
    if type(a) ~= "table" then fail(path, "award %d must be a table", i) end
    local advc, ap = a.advc, a.ap
    if type(advc) ~= "number" or advc ~= advc or advc <= 0 or advc == math.huge then
      fail(path, "award %d: advc must be a positive finite number (got %s)", i, describe(advc))
    end
    if type(ap) ~= "number" or ap ~= ap or ap < 0 or ap == math.huge then
      fail(path, "award %d: ap must be a finite number >= 0 (got %s)", i, describe(ap))
    end
    if type(a.key) ~= "string" or #a.key == 0 or #a.key > 200 then
      fail(path, "award %d: key must be a string of 1-200 characters (got %s)", i, describe(a.key))
    end
    if keys[a.key] then fail(path, "award %d: key %q used twice in one decision", i, a.key) end
    keys[a.key] = true
    local reason = a.reason
    if reason ~= nil and type(reason) ~= "string" then
      fail(path, "award %d: reason must be a string", i)
    end
    -- exact = false: the rules could not compute this award to 1e-8 (an amount beyond
    -- m2p.EXACT_LIMIT); the engine holds it (award_limits.h, HOLD_EXACT_RANGE).
    out[#out + 1] = { advc = m2p.round8(advc), ap = m2p.round8(ap), key = a.key,
                      reason = reason or "", inexact = a.exact == false }
  end
  return out
end

---------------------------------------------------------------------------------------------
-- Entry points called from C
---------------------------------------------------------------------------------------------
function pipeline.load_rules(path, source, kind)
  local t = run_script(path, source)
  if type(t) ~= "table" then fail(path, "a rules script must return a table (got %s)", type(t)) end
  local fn = kind == "convert" and "to_advc" or "decide"
  if type(t[fn]) ~= "function" then
    fail(path, "field '%s' must be a function (got %s)", fn, describe(t[fn]))
  end
  rules[kind] = t
  rules[kind .. "_path"] = path
end

-- Returns the pool's index and its settings for the C scheduler.
function pipeline.load_pool(path, source, default_name)
  local pool = check_pool(path, default_name, run_script(path, source))
  for _, p in ipairs(pools) do
    if p.name == pool.name then fail(path, "pool name %q is already used by %s", pool.name, p.path) end
  end
  pools[#pools + 1] = pool
  return #pools, pool
end

-- `wallet_checked`: the engine checked the wallet in this generation and it is its own
-- canonical form (as for pipeline.poll): no second address checksum for the request.
-- `engine_checks_url`: see check_request.
function pipeline.request(index, wallet, wallet_checked, engine_checks_url)
  local pool = pools[index]
  if not wallet_checked then wallet = checked_wallet(pool, wallet) end
  return check_request(pool, pool.script.request(wallet), engine_checks_url)
end

-- The engine found the URL pipeline.request returned invalid: the error check_request raises.
function pipeline.refuse_url(index, url)
  check_url(pools[index].path, url)
end

-- The wallet's canonical form (what one player owns on this pool), or an error
-- "invalid wallet: <reason>". `clean`: see wallet_canonical.
function pipeline.wallet_check(index, wallet, clean)
  local pool = pools[index]
  return checked_wallet(pool, wallet, clean)
end

-- A short id of the wallet for award keys (scripts/rewards.lua): the first 16 hex digits of
-- its SHA-256, so keys of different wallets never collide and stay short.
local function wallet_id(wallet)
  return m2p.sha256(wallet):sub(1, 16)
end

-- ctx.wallet_id costs a SHA-256, and most polls (nothing changed, nothing awarded) never read
-- it: it is computed on the first read, from the canonical wallet kept in ctx's metatable,
-- and then stored in ctx like any other field. (pairs(ctx) lists it only once read.)
local function lazy_wallet_id(ctx, key)
  if key ~= "wallet_id" then return nil end
  local id = wallet_id(getmetatable(ctx).canonical)
  rawset(ctx, "wallet_id", id)
  return id
end

local function context(pool, account)
  -- The id comes from the canonical form (docs/scripting.md, Wallets: bech32 lower-cased), so
  -- one wallet typed in another letter case keeps its award keys. (pipeline.to_advc passes
  -- no wallet: there is nothing to check.)
  local canonical = account.wallet
  if type(canonical) == "string" and canonical ~= "" and not account.wallet_checked then
    canonical = checked_wallet(pool, canonical)
  end
  -- Every field in one constructor: LuaJIT sizes the table once (a field set afterwards
  -- would grow it).
  local ctx
  ctx = { pool = pool.name, currency = pool.currency, player_id = account.player_id,
          username = account.username, wallet = account.wallet, now = os.time(),
          to_advc = function(amount)
            local advc = rules.convert.to_advc(amount, pool.currency, ctx)
            if type(advc) ~= "number" or advc ~= advc or advc < 0 or advc == math.huge then
              fail(rules.convert_path, "to_advc(%s, %q) returned %s (need a finite number >= 0)",
                   tostring(amount), pool.currency, describe(advc))
            end
            return advc
          end }
  return setmetatable(ctx, { __index = lazy_wallet_id, canonical = canonical })
end

-- convert.to_advc for one amount in the pool's currency (used by --probe).
function pipeline.to_advc(index, amount)
  local pool = pools[index]
  return context(pool, { player_id = 0, wallet = "" }).to_advc(amount)
end

---------------------------------------------------------------------------------------------
-- Pool metadata: the engine (engine/poll/pool_metadata.c) fetches it and hands each answer to
-- metadata_parse; the last good result is kept here as JSON and decoded afresh for every
-- poll, so one poll's parse cannot change what the next one sees.
---------------------------------------------------------------------------------------------
local function metadata_value(pool, response)
  if response.status < 200 or response.status > 299 then
    error(string.format("HTTP %d", response.status), 0)
  end
  if not response.body:find("%S") then error("empty body", 0) end
  local value, reason = pool.metadata.parse(response)
  if value == nil then
    fail(pool.path, "metadata.parse: %s", type(reason) == "string" and reason:sub(1, 300)
                                          or "no metadata")
  end
  if type(value) ~= "table" then
    fail(pool.path, "metadata.parse() must return a table (got %s)", describe(value))
  end
  local ok, json = rethrow_if_aborted(pcall(native.json_encode, value))
  if not ok then fail(pool.path, "metadata.parse() returned a table that is not JSON: %s", json) end
  if #json > METADATA_MAX_JSON then
    fail(pool.path, "metadata.parse() returned %d bytes of JSON (at most %d: keep only what "
         .. "parse needs)", #json, METADATA_MAX_JSON)
  end
  return json
end

-- Returns the result's JSON; raises the reason when the answer is not usable (the C side
-- then records it with metadata_failed).
function pipeline.metadata_parse(index, response)
  local pool = pools[index]
  if not pool.metadata then error(pool.path .. ": declares no metadata", 0) end
  local json = metadata_value(pool, response)
  pool.metadata_json, pool.metadata_error = json, nil
  return json
end

-- A failed fetch or parse: the last good metadata stays; without one, parse sees why.
function pipeline.metadata_failed(index, reason)
  local pool = pools[index]
  pool.metadata_error = type(reason) == "string" and reason:sub(1, 500) or "metadata fetch failed"
end

local function add_metadata(pool, response)
  if not pool.metadata then return end
  if pool.metadata_json then
    response.metadata = native.json_decode(pool.metadata_json)
  else
    response.metadata_error = pool.metadata_error or "not fetched yet"
  end
end

-- One poll: returns observation JSON, the new account state JSON and the awards. Any error
-- raised here fails the poll and leaves the account's state as it was.
function pipeline.poll(index, account, response)
  local pool = pools[index]
  if response.status >= 300 and response.status <= 399 then
    error(string.format("HTTP %d: a redirect, not followed (a pool may allow same-host ones "
                        .. "with redirects = \"same-host\")", response.status), 0)
  end
  if response.status < 200 or response.status > 299 then
    error(string.format("HTTP %d", response.status), 0)
  end
  if not response.body:find("%S") then error("empty body", 0) end
  -- What the request asked for. The engine says when it checked the wallet already (and it
  -- is its own canonical form): then no second checksum per poll.
  response.wallet = account.wallet_checked and account.wallet
                    or checked_wallet(pool, account.wallet)
  add_metadata(pool, response)
  local parsed, reason = pool.script.parse(response)
  if parsed == nil then
    -- The file, as in every other error about a pool script (load errors, observation checks,
    -- file:line of a runtime error), so an author finds one prefix for one file.
    error(pool.path .. ": " .. (type(reason) == "string" and reason or "no observation"), 0)
  end
  local observation = check_observation(pool.path, parsed)
  local observation_json = native.json_encode(observation)
  local previous
  if account.state then
    local ok, decoded = rethrow_if_aborted(pcall(native.json_decode_state, account.state))
    if ok and type(decoded) == "table" then
      previous = decoded
    else
      native.log("warning", "account_state_unreadable", { pool = pool.name,
        player_id = account.player_id, detail = tostring(decoded) })
    end
  end
  local awards = check_awards(rules.rewards.decide(previous, observation, context(pool, account)))
  local ok, state_json = rethrow_if_aborted(pcall(native.json_encode, observation))
  if not ok then fail(rules.rewards_path, "account state is not JSON-serialisable: %s", state_json) end
  return observation_json, state_json, awards
end

-- pipeline.poll with the account's fields as arguments (engine/script/script_calls.c): the
-- same table as the engine would build, from a constructor. A false wallet_checked is left
-- out, as the engine leaves it out.
function pipeline.poll_account(index, player_id, username, wallet, wallet_checked, state,
                               response)
  return pipeline.poll(index, { player_id = player_id, username = username, wallet = wallet,
                                wallet_checked = wallet_checked or nil, state = state },
                       response)
end

-- What the rules say about an account's state (--explain, GET /accounts): JSON of
-- {baseline = text, next_award = text}. Rules without an `explain` function get the raw
-- bookkeeping they keep; a state that is not JSON is said so.
local function explain_text(path, t, field)
  local v = t[field]
  if v ~= nil and type(v) ~= "string" then
    fail(path, "explain() field '%s' must be a string (got %s)", field, describe(v))
  end
  return v
end

function pipeline.explain(index, account)
  local pool = pools[index]
  local previous
  if account.state then
    local ok, decoded = pcall(native.json_decode_state, account.state)
    if not ok or type(decoded) ~= "table" then
      return native.json_encode({ baseline = "the stored state is unreadable: the next poll "
        .. "is a new baseline" })
    end
    previous = decoded
  end
  local explain = rules.rewards.explain
  if type(explain) ~= "function" then
    return native.json_encode({ baseline = previous
      and native.json_encode(previous.accounted or previous) or "none yet" })
  end
  local t = explain(previous, context(pool, account))
  if type(t) ~= "table" then
    fail(rules.rewards_path, "explain() must return a table (got %s)", describe(t))
  end
  return native.json_encode({ baseline = explain_text(rules.rewards_path, t, "baseline"),
                              next_award = explain_text(rules.rewards_path, t, "next_award") })
end

return pipeline
