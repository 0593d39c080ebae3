-- The m2p helper table that every pool and rule script sees (compiled into the binary).
--
-- Called once per script generation with `native`, the few primitives the C core provides:
--   native.log(level, event, fields)   write one structured log record
--   native.env(name)                   configuration lookup (environment, .env, overrides)
--   native.null                        the JSON null sentinel
--   native.json_decode(s), native.json_encode(v)
-- Returns the m2p table. Everything here is plain Lua so it reads as documentation;
-- docs/scripting.md describes each function.
local native = ...

local m2p = {}

m2p.null = native.null

function m2p.is_null(v)
  return v == native.null
end

-- Strict decimal number parsing: pools send amounts as JSON numbers or as strings such as
-- "0.00050000" or "1e-8". Hex, "nan", "inf", empty strings and trailing garbage are rejected.
local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

function m2p.num(v)
  local t = type(v)
  if t == "number" then
    if finite(v) then return v end
    return nil, "not a finite number"
  end
  if t ~= "string" then
    return nil, "expected a number, got " .. (v == native.null and "null" or t)
  end
  local s = v:match("^%s*(.-)%s*$")
  local mantissa, exponent = s:match("^([+-]?[%d%.]+)([eE][+-]?%d+)$")
  mantissa = mantissa or s
  if not (mantissa:match("^[+-]?%d+%.?%d*$") or mantissa:match("^[+-]?%.%d+$")) then
    return nil, string.format("not a decimal number: %q", v:sub(1, 40))
  end
  local x = tonumber(mantissa .. (exponent or ""))
  if not x or not finite(x) then
    return nil, string.format("not a finite number: %q", v:sub(1, 40))
  end
  return x
end

-- Round to 8 decimal places (the precision of every amount the engine stores).
function m2p.round8(x)
  if x >= 0 then return math.floor(x * 1e8 + 0.5) / 1e8 end
  return -math.floor(-x * 1e8 + 0.5) / 1e8
end

-- Percent-encode everything but RFC 3986 unreserved characters.
function m2p.urlencode(s)
  s = tostring(s)
  return (s:gsub("[^A-Za-z0-9%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- Path lookup in nested tables: m2p.get(t, "stats.paid"). Returns nil when any step is
-- missing or not a table (JSON null counts as missing).
function m2p.get(t, path)
  for key in path:gmatch("[^%.]+") do
    if type(t) ~= "table" then return nil end
    t = t[key]
    if t == native.null then return nil end
  end
  return t
end

-- The first of several field paths that holds a valid number: value, path.
-- A present but malformed value is an error (nil, reason), never silently skipped.
function m2p.first_num(t, paths)
  for _, path in ipairs(paths) do
    local v = m2p.get(t, path)
    if v ~= nil then
      local x, err = m2p.num(v)
      if not x then return nil, path .. ": " .. err end
      return x, path
    end
  end
  return nil, "none of " .. table.concat(paths, ", ") .. " present"
end

-- An optional, informational number (balance, hashrate...): nil when absent, malformed or
-- negative, since a bad informational field must not fail a poll whose payout counter is fine.
function m2p.opt_num(t, path)
  local v = m2p.get(t, path)
  if v == nil then return nil end
  local x = m2p.num(v)
  if x == nil or x < 0 then return nil end
  return x
end

-- A short printable description of a value, for error messages about what a pool sent.
function m2p.describe(v)
  if v == native.null then return "null" end
  if type(v) == "string" then return string.format("%q", v:sub(1, 80)) end
  return type(v)
end

-- The response body as a decoded JSON object, or nil and why not (not JSON, or JSON that is
-- not an object).
function m2p.json_object(response)
  local json = response.json
  if json == nil then
    return nil, "response is not JSON (" .. tostring(response.json_error or "no JSON body") .. ")"
  end
  if type(json) ~= "table" then
    return nil, "response is not a JSON object (got " .. m2p.describe(json) .. ")"
  end
  return json
end

local levels = { debug = true, info = true, warning = true, error = true }

function m2p.log(level, event, fields)
  if not levels[level] then
    error("m2p.log: level must be debug, info, warning or error", 2)
  end
  if type(event) ~= "string" or event == "" then
    error("m2p.log: event must be a non-empty string", 2)
  end
  if fields ~= nil and type(fields) ~= "table" then
    error("m2p.log: fields must be a table", 2)
  end
  native.log(level, event, fields)
end

-- Configuration lookup: the engine's environment (and .env file). Values are strings.
function m2p.env(name, default)
  local v = native.env(name)
  if v == nil or v == "" then return default end
  return v
end

-- A number setting with optional bounds; a malformed or out-of-range value is a load error
-- that names the variable.
function m2p.env_number(name, default, min, max)
  local raw = native.env(name)
  if raw == nil or raw == "" then return default end
  local x, err = m2p.num(raw)
  if not x then error(name .. ": " .. err, 2) end
  if (min and x < min) or (max and x > max) then
    error(string.format("%s: %s is outside [%s, %s]", name, raw, tostring(min or "-inf"),
                        tostring(max or "inf")), 2)
  end
  return x
end

local truthy = { ["1"] = true, ["true"] = true, yes = true, on = true }
local falsy = { ["0"] = true, ["false"] = true, no = true, off = true }

function m2p.env_bool(name, default)
  local raw = native.env(name)
  if raw == nil or raw == "" then return default end
  local v = raw:lower()
  if truthy[v] then return true end
  if falsy[v] then return false end
  error(name .. ": expected true or false, got " .. string.format("%q", raw), 2)
end

m2p.json_decode = native.json_decode
m2p.json_encode = native.json_encode

return m2p
