-- Test helper for the busted specs: runs pool and rule scripts the way the engine does.
--
--   local helper = require("tests.lua.helper")
--   local w = helper.world({ env = { BTC_TO_ADVC_RATE = "2000000" } })
--   local zpool = w:load("pools/zpool.lua")          -- a fresh sandbox, like the engine
--   local obs, reason = zpool.parse(w:response('{"paid24h": "0.001"}', { wallet = "bc1q..." }))
--   w.logs                                           -- every m2p.log record, in order
--
-- A world is one "script generation": the m2p table from engine/script/prelude.lua, called with a
-- stub `native` (log captured into w.logs, env looked up in the overrides and then
-- os.getenv, null a unique userdata like the engine's light userdata, sha256 from OpenSSL's
-- libcrypto as in the engine, JSON functions that raise: scripts are not supposed to need
-- them). Each w:load() gets its own sandbox with the engine's safe globals
-- (engine/script/pipeline.lua, new_env).
--
-- helper.pipeline({...}) loads engine/script/pipeline.lua itself (the engine's contract checks) with
-- a JSON-capable native, and helper.run_fixture(path) replays a --script-test fixture through
-- it: a quick pre-check of tests/fixtures before the binary exists. The binary
-- (`m2p-engine --script-test`) stays the authority on fixtures.
local json = require("dkjson")

local helper = {}

-- The repository root: this file is <root>/tests/lua/helper.lua.
helper.root = (function()
  local source = debug.getinfo(1, "S").source:gsub("^@", "")
  local root = source:match("^(.*)/tests/lua/helper%.lua$")
  if root == nil or root == "" then return "." end
  return root
end)()

function helper.path(rel)
  if rel:sub(1, 1) == "/" then return rel end
  return helper.root .. "/" .. rel
end

function helper.read(rel)
  local f = assert(io.open(helper.path(rel), "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function helper.exists(rel)
  local f = io.open(helper.path(rel), "rb")
  if f then f:close() return true end
  return false
end

-- Every *.<ext> file directly in a directory, sorted.
function helper.list(dir, ext)
  local out = {}
  local p = io.popen('ls -1 "' .. helper.path(dir) .. '" 2>/dev/null')
  for name in p:lines() do
    if name:sub(-#ext - 1) == "." .. ext then out[#out + 1] = dir .. "/" .. name end
  end
  p:close()
  table.sort(out)
  return out
end

---------------------------------------------------------------------------------------------
-- JSON with the engine's conventions: null <-> a sentinel, no metatables on decoded tables.
---------------------------------------------------------------------------------------------
function helper.json_decode(text, null)
  local value, _, err = json.decode(text, 1, null, nil, nil)
  if err then return nil, err end
  return value
end

-- The engine's response.json_type for a decoded body (the C bridge reads it off cJSON; dkjson
-- gives plain tables, so an array is told by its first byte).
function helper.json_type(body, decoded, null)
  if decoded == nil then return nil end
  if decoded == null then return "null" end
  if type(decoded) == "table" then
    return body:match("^[%s\239\187\191]*%[") and "array" or "object"
  end
  return type(decoded)
end

function helper.json_encode(value, null)
  local text, err = json.encode(value, {
    exception = function(reason, v)
      if null ~= nil and v == null then return "null" end
      return nil, reason
    end,
  })
  if not text then error("json_encode: " .. tostring(err), 2) end
  return text
end

---------------------------------------------------------------------------------------------
-- Worlds: the prelude with a stub native, and sandboxes like the engine's
---------------------------------------------------------------------------------------------
local SAFE_GLOBALS = { "assert", "error", "ipairs", "next", "pairs", "rawequal", "rawget",
  "rawset", "select", "tonumber", "tostring", "type", "unpack", "getmetatable",
  "setmetatable", "_VERSION", "pcall", "xpcall" }

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- native.sha256 as the engine has it (engine/script/script.c): OpenSSL's SHA256 through LuaJIT's FFI,
-- so the specs check the prelude's address code against the same digest.
local ffi = require("ffi")
ffi.cdef [[ unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md); ]]
local function load_libcrypto()
  local ok, lib = pcall(ffi.load, "crypto") -- libcrypto.so, from libssl-dev
  if ok then return lib end
  return ffi.load("libcrypto.so.3") -- the runtime library alone (OpenSSL 3, Debian 12)
end
local libcrypto = load_libcrypto()

local function sha256(s)
  if type(s) ~= "string" then error("bad argument #1 to 'sha256' (string expected)", 2) end
  local digest = ffi.new("unsigned char[32]")
  libcrypto.SHA256(s, #s, digest)
  return ffi.string(digest, 32)
end

local function new_native(opts, logs)
  local env = opts.env or {}
  local native = {
    null = newproxy(false),
    log = function(level, event, fields)
      logs[#logs + 1] = { level = level, event = event, fields = fields }
    end,
    env = function(name)
      local v = env[name]
      if v == false then return nil end -- false = "unset", even if the process has it
      if v ~= nil then return tostring(v) end
      if opts.isolated then return nil end
      return os.getenv(name)
    end,
    aborted = function() return false end,
    sha256 = sha256,
  }
  if opts.json then
    native.json_decode = function(text) return assert(helper.json_decode(text, native.null)) end
    native.json_encode = function(value) return helper.json_encode(value, native.null) end
  else
    native.json_decode = function() error("json_decode is not available to scripts in tests", 2) end
    native.json_encode = function() error("json_encode is not available to scripts in tests", 2) end
  end
  -- The engine's reading of its own state; its U+FFFD for invalid bytes is tested in C
  -- (test_script_json_strict.c): the states of these specs are all valid UTF-8.
  native.json_decode_state = native.json_decode
  return native
end

local World = {}
World.__index = World

-- opts.env: overrides for m2p.env (a value of false hides a process variable);
-- opts.isolated: do not fall back to os.getenv (the default for specs: reproducible).
function helper.world(opts)
  opts = opts or {}
  if opts.isolated == nil then opts.isolated = true end
  local w = setmetatable({ logs = {}, env = opts.env or {} }, World)
  w.native = new_native(opts, w.logs)
  w.null = w.native.null
  local prelude = assert(loadstring(helper.read("engine/script/prelude.lua"), "@engine/script/prelude.lua"))
  w.m2p = prelude(w.native)
  return w
end

-- A fresh sandbox environment with the engine's safe globals and a copy of m2p.
function World:sandbox(path)
  local env = {}
  for _, k in ipairs(SAFE_GLOBALS) do env[k] = _G[k] end
  env.string = copy(string)
  env.string.dump = nil
  env.table = copy(table)
  env.math = copy(math)
  env.bit = copy(bit)
  env.coroutine = copy(coroutine)
  env.os = { time = os.time, clock = os.clock, date = os.date }
  env.m2p = copy(self.m2p)
  local logs = self.logs
  env.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    logs[#logs + 1] = { level = "info", event = "script_print",
                        fields = { script = path, message = table.concat(parts, "\t") } }
  end
  env._G = env
  return env
end

-- Runs a script file in a fresh sandbox; returns what it returned and its environment.
function World:load(rel)
  local chunk = assert(loadstring(helper.read(rel), "@" .. rel))
  local env = self:sandbox(rel)
  setfenv(chunk, env)
  return chunk(), env
end

-- The response table parse() receives. `body` is the raw text (a table is JSON-encoded
-- first); opts.status (200), opts.headers (names lower-cased), opts.wallet.
function World:response(body, opts)
  opts = opts or {}
  local kind -- what a spec meant by a Lua table: {} is an empty object, as in the fixtures
  if type(body) == "table" then
    kind = #body > 0 and "array" or "object"
    body = helper.json_encode(body, self.null)
    if kind == "object" and body == "[]" then body = "{}" end
  end
  local headers = {}
  for k, v in pairs(opts.headers or { ["Content-Type"] = "application/json" }) do
    headers[k:lower()] = v
  end
  local decoded, err = helper.json_decode(body, self.null)
  return { status = opts.status or 200, headers = headers, body = body, json = decoded,
           json_type = decoded ~= nil and kind or helper.json_type(body, decoded, self.null),
           json_error = decoded == nil and (err or "not JSON") or nil, wallet = opts.wallet }
end

-- The log records whose event is `event`.
function World:logged(event)
  local out = {}
  for _, r in ipairs(self.logs) do
    if r.event == event then out[#out + 1] = r end
  end
  return out
end

---------------------------------------------------------------------------------------------
-- The engine's own pipeline (engine/script/pipeline.lua), for whole polls and fixtures
---------------------------------------------------------------------------------------------

-- opts.env, opts.pools_dir ("pools"), opts.scripts_dir ("scripts"), opts.only (a pool name
-- list: load just these). Returns pipeline, world, {name -> index}.
function helper.pipeline(opts)
  opts = opts or {}
  local w = helper.world({ env = opts.env, isolated = true, json = true })
  local prelude = assert(loadstring(helper.read("engine/script/prelude.lua"), "@engine/script/prelude.lua"))
  local chunk = assert(loadstring(helper.read("engine/script/pipeline.lua"), "@engine/script/pipeline.lua"))
  local pipeline = chunk(w.native, prelude)
  local scripts = opts.scripts_dir or "scripts"
  pipeline.load_rules(scripts .. "/convert.lua", helper.read(scripts .. "/convert.lua"), "convert")
  pipeline.load_rules(scripts .. "/rewards.lua", helper.read(scripts .. "/rewards.lua"), "rewards")
  local index = {}
  for _, file in ipairs(helper.list(opts.pools_dir or "pools", "lua")) do
    local default_name = file:match("([^/]+)%.lua$")
    local wanted = opts.only == nil
    for _, n in ipairs(opts.only or {}) do wanted = wanted or n == default_name end
    if wanted then
      local i, pool = pipeline.load_pool(file, helper.read(file), default_name)
      index[pool.name] = i
    end
  end
  return pipeline, w, index
end

local function near(a, b)
  return math.abs(a - b) <= 1e-9 * math.max(1, math.abs(a), math.abs(b))
end

-- Subset match: every key of `want` must be in `got` with an equal value (numbers to 1e-9).
local function subset(want, got, path, null)
  if want == null then
    if got ~= nil and got ~= null then return path .. ": expected null, got " .. tostring(got) end
    return nil
  end
  if type(want) == "number" then
    if type(got) ~= "number" or not near(want, got) then
      return string.format("%s: expected %.10g, got %s", path, want, tostring(got))
    end
    return nil
  end
  if type(want) == "table" then
    if type(got) ~= "table" then return path .. ": expected a table, got " .. tostring(got) end
    for k, v in pairs(want) do
      local err = subset(v, got[k], path .. "." .. tostring(k), null)
      if err then return err end
    end
    return nil
  end
  if want ~= got then
    return string.format("%s: expected %s, got %s", path, tostring(want), tostring(got))
  end
  return nil
end

-- The wallet of a fixture that names none (engine/cli/scripttest.c uses the same).
local DEFAULT_WALLET = "AGwBxFjnhMYit2YBRQpEx4WbPpJad9VNAy"

-- Replays one fixture file (the --script-test format) through the pipeline. Returns a list
-- of failure messages (empty when every step matched).
function helper.run_fixture(rel, opts)
  opts = opts or {}
  local fixture_null = json.null
  local fixture = assert(helper.json_decode(helper.read(rel), fixture_null))
  -- The same file again with dkjson's shape metatables, so that a body of {} is sent as {}
  -- and [] as [], as the engine does (a plain empty table would encode as []).
  local shaped = json.decode(helper.read(rel), 1, fixture_null)
  local failures = {}
  local function failf(step, fmt, ...)
    failures[#failures + 1] = string.format("%s: step %d: " .. fmt, rel, step, ...)
  end
  local ok, pipeline, w, index = pcall(helper.pipeline, { env = fixture.env,
    pools_dir = opts.pools_dir })
  if not ok then
    failures[1] = rel .. ": loading scripts: " .. tostring(pipeline)
    return failures
  end
  local pool = index[fixture.pool]
  if not pool then
    failures[1] = rel .. ": no pool named " .. tostring(fixture.pool)
    return failures
  end
  local wallet = fixture.wallet or DEFAULT_WALLET
  local account = { player_id = 1, username = "fixture", wallet = wallet }
  -- The pool's metadata as engine/cli/scripttest.c hands it over: {status, headers, body} through
  -- metadata.parse, or {"error": ...}; a failure keeps the last good one.
  local function give_metadata(spec, shaped_spec)
    if type(spec.error) == "string" then return pipeline.metadata_failed(pool, spec.error) end
    local body = spec.body
    if body == nil or body == fixture_null then body = "" end
    if type(body) ~= "string" then body = helper.json_encode(shaped_spec.body, fixture_null) end
    local headers = {}
    for k, v in pairs(spec.headers or {}) do headers[k:lower()] = v end
    local decoded, jerr = helper.json_decode(body, w.null)
    local mok, err = pcall(pipeline.metadata_parse, pool, { status = spec.status or 200,
      headers = headers, body = body, json = decoded,
      json_type = helper.json_type(body, decoded, w.null),
      json_error = decoded == nil and (jerr or "not JSON") or nil })
    if not mok then pipeline.metadata_failed(pool, err) end
  end
  if fixture.metadata ~= nil then
    give_metadata(fixture.metadata, shaped.metadata)
  else
    pipeline.metadata_failed(pool, 'this fixture gives no "metadata"')
  end
  for i, step in ipairs(fixture.steps or {}) do
    local expect = step.expect or {}
    if step.metadata ~= nil then give_metadata(step.metadata, shaped.steps[i].metadata) end
    local rok, url = pcall(pipeline.request, pool, wallet)
    local wants_error = expect.error ~= nil and expect.error ~= fixture_null and expect.error ~= false
    if not rok and wants_error then
      -- refused before any request (an invalid wallet): the step's expected error, as in
      -- engine/cli/scripttest.c, and the response is never looked at
      if type(expect.error) == "string" and not tostring(url):find(expect.error, 1, true) then
        failf(i, "error %q does not contain %q", tostring(url), expect.error)
      end
      goto next_step
    elseif not rok then
      failf(i, "request failed: %s", tostring(url))
    elseif type(expect.request) == "table" and expect.request.url ~= nil
        and expect.request.url ~= url then
      failf(i, "request url: expected %s, got %s", expect.request.url, url)
    end
    local r = step.response or {}
    local body = r.body
    if body == nil or body == fixture_null then body = "" end
    if type(body) ~= "string" then
      body = helper.json_encode(shaped.steps[i].response.body, fixture_null)
    end
    local headers = {}
    for k, v in pairs(r.headers or {}) do headers[k:lower()] = v end
    local decoded, jerr = helper.json_decode(body, w.null)
    local response = { status = r.status or 200, headers = headers, body = body,
                       json = decoded, json_type = helper.json_type(body, decoded, w.null),
                       json_error = decoded == nil and (jerr or "not JSON") or nil }
    local pok, obs_json, state_json, awards = pcall(pipeline.poll, pool, account, response)
    if expect.error ~= nil and expect.error ~= fixture_null and expect.error ~= false then
      if pok then
        failf(i, "expected the poll to fail, it succeeded with %s", obs_json)
      elseif type(expect.error) == "string"
          and not tostring(obs_json):find(expect.error, 1, true) then
        failf(i, "error %q does not contain %q", tostring(obs_json), expect.error)
      end
    elseif not pok then
      failf(i, "poll failed: %s", tostring(obs_json))
    else
      account.state = state_json
      if expect.observation ~= nil then
        local err = subset(expect.observation, helper.json_decode(obs_json, fixture_null),
                           "observation", fixture_null)
        if err then failf(i, "%s", err) end
      end
      if expect.reward ~= nil then
        if expect.reward == fixture_null then
          if #awards > 0 then failf(i, "expected no reward, got %d award(s)", #awards) end
        else
          local advc, ap = 0, 0
          for _, a in ipairs(awards) do advc, ap = advc + a.advc, ap + a.ap end
          if #awards == 0 then
            failf(i, "expected a reward, got none")
          else
            local err = subset(expect.reward, { advc = advc, ap = ap }, "reward", fixture_null)
            if err then failf(i, "%s", err) end
          end
        end
      end
    end
    ::next_step::
  end
  return failures
end

return helper
