-- The m2p helper table that every pool and rule script sees (compiled into the binary).
--
-- Called once per script generation with `native`, the few primitives the C core provides:
--   native.log(level, event, fields)   write one structured log record
--   native.env(name)                   configuration lookup (environment, .env, overrides)
--   native.null                        the JSON null sentinel
--   native.json_decode(s), native.json_encode(v)
--   native.sha256(s)                   the 32-byte binary SHA-256 digest (OpenSSL)
--   native.sha256_hex(s), native.base58check(s), native.bech32(s)
--                                      C versions of m2p.sha256, m2p.base58check and m2p.bech32
--                                      (engine/script/script_crypto.c); optional
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

-- Exact amounts (docs/reliability.md, "Money exact to 1e-8"). Below m2p.EXACT_LIMIT = 2^26
-- (67,108,864) the double nearest to an amount of 8 decimals is within half an ulp (at most
-- 2^-28, 3.7e-9) of it, so "%.8f" gives the 8 decimals back; from 2^26 on the ulp is 1.5e-8
-- and neighbouring amounts share a double. Sums and differences are made in whole units of
-- 1e-8 (every integer below 2^53 is a double, so they are exact), never on the decimals.
local EXACT_LIMIT = 67108864
-- Below 2^24, x * 1e8 is within 0.25 of the units: math.floor(x * 1e8 + 0.5) is exact and
-- cheaper than "%.8f" (which is exact up to EXACT_LIMIT, the rounding above is not).
local FAST_LIMIT = 16777216
m2p.EXACT_LIMIT = EXACT_LIMIT

-- x as a whole number of units of 1e-8 (rounded half away from zero), or nil when |x| is not
-- below EXACT_LIMIT (or x is not a number): there x does not name one amount of 8 decimals.
function m2p.units(x)
  if type(x) ~= "number" or not (x > -EXACT_LIMIT and x < EXACT_LIMIT) then return nil end
  local a = x < 0 and -x or x
  local u
  if a < FAST_LIMIT then
    u = math.floor(a * 1e8 + 0.5)
  else
    u = tonumber((string.format("%.8f", a):gsub("%.", "", 1)))
  end
  return x < 0 and -u or u
end

-- Round to 8 decimal places (the precision of every amount the engine stores): the double
-- nearest to the rounded decimal. From 2^24 on x * 1e8 is rounded itself, "%.8f" is not.
function m2p.round8(x)
  if x >= FAST_LIMIT or x <= -FAST_LIMIT then
    local r = tonumber(string.format("%.8f", x))
    return r or x -- inf stays inf (the contract checks refuse it)
  end
  if x >= 0 then return math.floor(x * 1e8 + 0.5) / 1e8 end
  return -math.floor(-x * 1e8 + 0.5) / 1e8
end

-- Percent-encode everything but RFC 3986 unreserved characters. A wallet (the usual
-- argument) is letters and digits only: returned as it is, found by one anchored match of a
-- single class, a fraction of what the set below (and gsub's copy) costs.
function m2p.urlencode(s)
  s = tostring(s)
  if s:find("^%w*$") then return s end
  return (s:gsub("[^A-Za-z0-9%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- Path lookup in nested tables: m2p.get(t, "stats.paid"). Returns nil when any step is
-- missing or not a table (JSON null counts as missing).
function m2p.get(t, path)
  -- One key (what parse functions mostly ask for): no iterator, which is most of the cost.
  if path ~= "" and not path:find(".", 1, true) then
    if type(t) ~= "table" then return nil end
    t = t[path]
    if t == native.null then return nil end
    return t
  end
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

-- A payout's transaction id as the engine accepts it (1-128 letters, digits and - _ : .), or
-- nil and why not. A numeric id is a JSON number, read as a double: exact only below 2^53.
-- Above, distinct ids read as one number (and from 2^63 "%d" prints them all as the same
-- string), so two payouts would share one key and one would never be awarded: refused (an
-- id sent as a string, "tx": "18446744073709551617", is fine).
local MAX_EXACT_TX = 2 ^ 53

function m2p.tx_id(tx)
  if type(tx) == "number" and tx % 1 == 0 and tx >= MAX_EXACT_TX then
    return nil, "numeric tx id of 2^53 or more: not exact as a JSON number"
  end
  if type(tx) == "number" and tx % 1 == 0 and tx > 0 then tx = string.format("%d", tx) end
  if type(tx) ~= "string" or #tx == 0 or #tx > 128 or not tx:match("^[%w%-_:%.]+$") then
    return nil, "no usable tx id (" .. m2p.describe(tx) .. ")"
  end
  return tx
end

-- A short printable description of a value, for error messages about what a pool sent.
function m2p.describe(v)
  if v == native.null then return "null" end
  if type(v) == "string" then return string.format("%q", v:sub(1, 80)) end
  return type(v)
end

-- The response body as a decoded JSON object, or nil and why not (not JSON, or JSON that is
-- not an object). A JSON array is a table too once decoded: the engine's json_type tells
-- them apart, and a response without it is not taken for an object.
function m2p.json_object(response)
  local json = response.json
  if json == nil then
    return nil, "response is not JSON (" .. tostring(response.json_error or "no JSON body") .. ")"
  end
  local kind = response.json_type
  if type(json) ~= "table" or kind ~= "object" then
    local got = kind == "array" and "an array"
      or type(json) == "table" and "a table without json_type" or m2p.describe(json)
    return nil, "response is not a JSON object (got " .. got .. ")"
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

-- A pool limit the operator may set (docs/pools.md, "Limits"): the setting's number, or
-- `default`; 0 = no cap. A concurrency (integer = true) without a cap is the most `limits`
-- allows, 10000 in flight; a rate without a cap is no `per_second` at all (nil).
function m2p.env_limit(name, default, integer)
  local x = m2p.env_number(name, default, 0, integer and 10000 or 100000)
  if integer and x % 1 ~= 0 then
    error(string.format("%s: %s is not a whole number", name, tostring(x)), 2)
  end
  if x == 0 then return integer and 10000 or nil end
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

---------------------------------------------------------------------------------------------
-- Addresses. A pool that matches wallets by prefix (NOMP) answers a truncated address with
-- another miner's figures, so a wallet must be a whole address, checksum included, before it
-- is polled. These helpers decode and check; pools use advc_address and btc_address as their
-- wallet_pattern (docs/scripting.md, "Wallets").
---------------------------------------------------------------------------------------------

-- The engine checks every account's wallet before its first poll and hashes it on every poll,
-- so it provides m2p.sha256, m2p.base58check and m2p.bech32 in C (native.sha256_hex,
-- native.base58check, native.bech32: the same results and the same reasons). The Lua versions
-- below are their specification: tests/unit/test_script_crypto.c compares the two on thousands
-- of inputs, and the busted specs (tests/lua, a prelude without the engine) run them.

-- SHA-256 of a string as 64 lower-case hex digits (native.sha256 is OpenSSL's, binary).
local function sha256_hex(s)
  return (native.sha256(s):gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
sha256_hex = native.sha256_hex or sha256_hex

function m2p.sha256(s)
  if type(s) ~= "string" then error("m2p.sha256: expected a string", 2) end
  return (sha256_hex(s)) -- not a tail call: an error names this line, as it always did
end

local BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
local BASE58_DIGIT = {}
for i = 1, #BASE58 do BASE58_DIGIT[BASE58:byte(i)] = i - 1 end
local BASE58_MAX = 128 -- far longer than any address; bounds the work on hostile input
local LIMB = 16777216  -- 2^24

-- The bytes of a base58 number, big-endian, one zero byte per leading '1'; nil if a character
-- is not a base58 digit. The number is built in 24-bit limbs, four digits at a time: 58^4 is
-- below 2^24, so limb * 58^4 + carry stays below 2^53 and every step is exact in a double.
-- (Written for the interpreter, which is what runs it: no calls inside the loops.)
local function base58_decode(s)
  local chars = { s:byte(1, -1) }
  local limbs, n = {}, 0 -- little-endian
  for i = 1, #chars, 4 do
    local group, scale = 0, 1
    for j = i, math.min(i + 3, #chars) do
      local digit = BASE58_DIGIT[chars[j]]
      if digit == nil then return nil end
      group, scale = group * 58 + digit, scale * 58
    end
    local carry = group
    for k = 1, n do
      carry = carry + limbs[k] * scale
      local low = carry % LIMB
      limbs[k], carry = low, (carry - low) / LIMB
    end
    while carry > 0 do
      local low = carry % LIMB
      n = n + 1
      limbs[n], carry = low, (carry - low) / LIMB
    end
  end
  local bytes, m = {}, 0
  while m < #chars and chars[m + 1] == 49 do -- '1'
    m = m + 1
    bytes[m] = 0
  end
  for k = n, 1, -1 do -- only the top limb (never 0) may start with unused zero bytes
    local limb = limbs[k]
    local high, middle = (limb - limb % 65536) / 65536, (limb % 65536 - limb % 256) / 256
    if k < n or high > 0 then m = m + 1; bytes[m] = high end
    if k < n or high > 0 or middle > 0 then m = m + 1; bytes[m] = middle end
    m = m + 1
    bytes[m] = limb % 256
  end
  return string.char(unpack(bytes, 1, m))
end

-- Base58check (Bitcoin's address encoding): version byte, payload, and the first 4 bytes of
-- SHA-256(SHA-256(version .. payload)). Returns version (0-255), payload | nil, reason.
function m2p.base58check(s)
  if type(s) ~= "string" or s == "" then return nil, "not base58 (empty)" end
  if #s > BASE58_MAX then return nil, "not base58check (longer than 128 characters)" end
  local raw = base58_decode(s)
  if raw == nil then return nil, "not base58 (a character outside the base58 alphabet)" end
  if #raw < 5 then return nil, "wrong length: too short for base58check" end
  local body, checksum = raw:sub(1, -5), raw:sub(-4)
  if native.sha256(native.sha256(body)):sub(1, 4) ~= checksum then
    return nil, "bad base58check checksum"
  end
  return body:byte(1), body:sub(2)
end
m2p.base58check = native.base58check or m2p.base58check

local BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
local BECH32_DIGIT = {}
for i = 1, #BECH32 do BECH32_DIGIT[BECH32:byte(i)] = i - 1 end
local BECH32_GENERATOR = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3 }
local BECH32_CONST, BECH32M_CONST = 1, 0x2bc830a3 -- BIP-173 and BIP-350 checksum constants

-- BIP-173's polymod folds in, for each of the 5 bits shifted out at the top, one generator
-- value; the XOR of those for each possible 5-bit top is computed once here.
local BECH32_FOLD = {}
for top = 0, 31 do
  local x = 0
  for k = 1, 5 do
    if bit.band(bit.rshift(top, k - 1), 1) == 1 then x = bit.bxor(x, BECH32_GENERATOR[k]) end
  end
  BECH32_FOLD[top] = x
end

-- The BCH checksum of BIP-173 over 5-bit values; every intermediate fits in 30 bits.
local function bech32_polymod(values)
  local chk = 1
  for i = 1, #values do
    local top = bit.rshift(chk, 25)
    chk = bit.bxor(bit.lshift(bit.band(chk, 0x1ffffff), 5), values[i], BECH32_FOLD[top])
  end
  return chk
end

-- The data part's 5-bit groups (after the version, before the checksum) as bytes; nil and a
-- reason when the padding is longer than 4 bits or not zero (BIP-173's conversion rules).
local function bech32_program(data)
  local acc, bits, bytes = 0, 0, {}
  for i = 2, #data - 6 do
    acc, bits = acc * 32 + data[i], bits + 5
    if bits >= 8 then
      bits = bits - 8
      bytes[#bytes + 1] = string.char(math.floor(acc / 2 ^ bits))
      acc = acc % 2 ^ bits
    end
  end
  if bits >= 5 then return nil, "bech32 padding longer than 4 bits" end
  if acc ~= 0 then return nil, "bech32 padding is not zero" end
  return table.concat(bytes)
end

-- A segwit address: BIP-173 bech32 for witness version 0, BIP-350 bech32m for versions 1-16.
-- Returns hrp (lower-case), witness_version, program (binary) | nil, reason.
function m2p.bech32(s)
  if type(s) ~= "string" or s == "" then return nil, "not bech32 (empty)" end
  if #s > 90 then return nil, "not bech32 (longer than 90 characters)" end
  if s:find("[^\33-\126]") then
    return nil, "not bech32 (a character outside US-ASCII 33-126)"
  end
  local lower = s:lower()
  if s ~= lower and s ~= s:upper() then return nil, "bech32 in mixed case" end
  local sep = lower:match("^.*()1")
  if sep == nil then return nil, "not bech32 (no '1' separator)" end
  if sep == 1 then return nil, "not bech32 (empty human-readable part)" end
  if #lower - sep < 6 then return nil, "not bech32 (checksum shorter than 6 characters)" end
  local hrp, values, data = lower:sub(1, sep - 1), {}, {}
  for i = 1, #hrp do values[#values + 1] = bit.rshift(hrp:byte(i), 5) end
  values[#values + 1] = 0
  for i = 1, #hrp do values[#values + 1] = bit.band(hrp:byte(i), 31) end
  for i = sep + 1, #lower do
    local digit = BECH32_DIGIT[lower:byte(i)]
    if digit == nil then return nil, "not bech32 (a character outside the bech32 alphabet)" end
    data[#data + 1] = digit
    values[#values + 1] = digit
  end
  local const = bech32_polymod(values)
  if const ~= BECH32_CONST and const ~= BECH32M_CONST then return nil, "bad bech32 checksum" end
  if #data < 7 then return nil, "bech32 without a witness version (empty data part)" end
  local version = data[1]
  if version > 16 then return nil, "bech32 witness version " .. version .. " (at most 16)" end
  if version == 0 and const ~= BECH32_CONST then
    return nil, "bad bech32 checksum: witness version 0 needs bech32 (BIP-173), not bech32m"
  end
  if version > 0 and const ~= BECH32M_CONST then
    return nil, "bad bech32 checksum: witness version " .. version .. " needs bech32m (BIP-350)"
  end
  local program, reason = bech32_program(data)
  if program == nil then return nil, reason end
  if #program < 2 or #program > 40 then
    return nil, "wrong length: a witness program of " .. #program .. " bytes (2-40)"
  end
  if version == 0 and #program ~= 20 and #program ~= 32 then
    return nil, "wrong length: a witness version 0 program of " .. #program .. " bytes (20 or 32)"
  end
  return hrp, version, program
end
m2p.bech32 = native.bech32 or m2p.bech32

-- ADVC_ADDRESS_VERSIONS ("23,51" by default: mainnet P2PKH 23 and P2SH 51, base58Prefixes in
-- AdventureCoin's src/chainparams.cpp) as a set of version bytes.
-- Read once: the prelude runs once per script generation and a settings change is a new
-- generation, so the setting cannot change under it; the wallet check of every account
-- saves a settings lookup. (A malformed value is not kept: every check says so.)
local advc_versions_raw, advc_versions_set -- the setting, and its set once parsed

local function advc_versions()
  if advc_versions_set then return advc_versions_set, advc_versions_raw end
  local raw = m2p.env("ADVC_ADDRESS_VERSIONS", "23,51")
  local set = {}
  for item in (raw .. ","):gmatch("([^,]*),") do
    local v = tonumber(item:match("^%s*(%d+)%s*$"))
    if v == nil or v > 255 then
      error("ADVC_ADDRESS_VERSIONS: expected comma-separated bytes 0-255, got "
            .. string.format("%q", raw), 0)
    end
    set[v] = true
  end
  advc_versions_raw, advc_versions_set = raw, set
  return set, raw
end

-- An AdventureCoin address: base58check, a 20-byte hash after the version byte, and a version
-- from ADVC_ADDRESS_VERSIONS. Returns true | nil, reason.
function m2p.advc_address(s)
  local version, payload = m2p.base58check(s)
  if version == nil then return nil, payload end
  if #payload ~= 20 then
    return nil, "wrong length: " .. (#payload + 1)
                .. " bytes before the checksum, an ADVC address has 21"
  end
  local versions, raw = advc_versions()
  if not versions[version] then
    return nil, "version " .. version .. " is not an ADVC address (ADVC_ADDRESS_VERSIONS="
                .. raw .. ")"
  end
  return true
end

local function not_mainnet(hrp)
  return string.format("bech32 hrp %q is not Bitcoin mainnet (bc)", hrp:sub(1, 20))
end

-- A Bitcoin mainnet address: base58check P2PKH (version 0) or P2SH (5) with a 20-byte hash,
-- or segwit bech32/bech32m with hrp "bc". Returns the canonical form (bech32 lower-cased,
-- since its case carries no meaning; base58 unchanged) | nil, reason.
function m2p.btc_address(s)
  if type(s) ~= "string" then return nil, "not a string" end
  if s:sub(1, 3):lower() == "bc1" then
    local hrp, version = m2p.bech32(s)
    if hrp == nil then return nil, version end
    if hrp ~= "bc" then return nil, not_mainnet(hrp) end
    return s:lower()
  end
  local version, payload = m2p.base58check(s)
  if version == nil then
    local hrp = m2p.bech32(s)
    if hrp then return nil, not_mainnet(hrp) end
    return nil, payload
  end
  if version ~= 0 and version ~= 5 then
    return nil, "version " .. version .. " is not a Bitcoin mainnet address (0 or 5)"
  end
  if #payload ~= 20 then
    return nil, "wrong length: " .. (#payload + 1)
                .. " bytes before the checksum, a Bitcoin address has 21"
  end
  return s
end

return m2p
