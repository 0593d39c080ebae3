-- tests/unit/test_script_crypto.c runs this with (prelude, crypto): the embedded prelude.lua
-- chunk and a table of the C natives (engine/script/script_crypto.c). It loads the prelude
-- twice, once with native.sha256 alone (so m2p.sha256, m2p.base58check and m2p.bech32 are the
-- Lua reference versions) and once with the C versions, and compares every result and every
-- error text on random and edge inputs. Returns the number of mismatches, the first few as
-- text, and the reasons seen, so that the caller can check that every error branch was hit.
local prelude, crypto = ...

local function world(with_c)
  local native = {
    sha256 = crypto.sha256,
    env = function() return nil end,
    log = function() end,
    null = {},
  }
  if with_c then
    native.sha256_hex, native.base58check, native.bech32 =
      crypto.sha256_hex, crypto.base58check, crypto.bech32
  end
  return prelude(native)
end

local ref, c = world(false), world(true)
assert(ref.base58check ~= c.base58check and ref.bech32 ~= c.bech32, "two different worlds")
assert(debug.getinfo(c.bech32, "S").what == "C", "the C bech32 is in use")
assert(debug.getinfo(ref.bech32, "S").what == "Lua", "the Lua bech32 is the reference")

math.randomseed(20261202)
local random = math.random
local mismatches, shown, compared, reasons = 0, {}, 0, {}

local function show(v)
  if type(v) == "string" then
    return #v > 100 and string.format("%q...", v:sub(1, 100)) or string.format("%q", v)
  end
  return tostring(v)
end

local function pack(...) return { n = select("#", ...), ... } end

-- An error's position is the line of the call, which differs between the two versions.
local function results(f, input)
  local r = pack(pcall(f, input))
  if not r[1] then r[2] = tostring(r[2]):gsub("^prelude%.lua:%d+: ", "prelude.lua:N: ") end
  return r
end

local function compare(name, input)
  compared = compared + 1
  local r, k = results(ref[name], input), results(c[name], input)
  local same = r.n == k.n
  for i = 1, math.max(r.n, k.n) do same = same and r[i] == k[i] end
  if r[1] and r[2] == nil and type(r[3]) == "string" then reasons[name .. ": " .. r[3]] = true end
  if not same then
    mismatches = mismatches + 1
    if #shown < 5 then
      local a, b = {}, {}
      for i = 1, r.n do a[i] = show(r[i]) end
      for i = 1, k.n do b[i] = show(k[i]) end
      shown[#shown + 1] = string.format("%s(%s): Lua %s, C %s", name, show(input),
                                        table.concat(a, ", "), table.concat(b, ", "))
    end
  end
end

-- Each input through every helper built on the natives.
local function all(input)
  for _, name in ipairs({ "base58check", "bech32", "advc_address", "btc_address" }) do
    compare(name, input)
  end
end

local function random_string(n, alphabet)
  local t = {}
  for i = 1, n do
    local at = random(#alphabet)
    t[i] = alphabet:sub(at, at)
  end
  return table.concat(t)
end

local function random_bytes(n)
  local t = {}
  for i = 1, n do t[i] = string.char(random(0, 255)) end
  return table.concat(t)
end

-- One character replaced, dropped or inserted somewhere, from `pool` (characters to use).
local function mutate(s, pool)
  local i = random(math.max(#s, 1))
  local at = random(#pool)
  local ch = pool:sub(at, at)
  local kind = random(3)
  if kind == 1 then return s:sub(1, i - 1) .. ch .. s:sub(i + 1) end
  if kind == 2 then return s:sub(1, i - 1) .. s:sub(i + 1) end
  return s:sub(1, i - 1) .. ch .. s:sub(i)
end

---------------------------------------------------------------------------------- base58
local B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
local NOT_B58 = "0OIl \0\255+/=\t-_"

-- The base58 of bytes: long division by 58 of the big-endian number, a '1' per leading zero.
local function base58_encode(bytes)
  local digits, num = {}, { bytes:byte(1, -1) }
  local zeros = 0
  while zeros < #num and num[zeros + 1] == 0 do zeros = zeros + 1 end
  local start = zeros + 1
  while start <= #num do
    local rem = 0
    for i = start, #num do
      local x = rem * 256 + num[i]
      num[i], rem = math.floor(x / 58), x % 58
    end
    digits[#digits + 1] = B58:sub(rem + 1, rem + 1)
    while start <= #num and num[start] == 0 do start = start + 1 end
  end
  return string.rep("1", zeros) .. string.reverse(table.concat(digits))
end

local function base58check_encode(body)
  return base58_encode(body .. crypto.sha256(crypto.sha256(body)):sub(1, 4))
end

local function b58_cases()
  for n = 0, 129 do
    all(random_string(n, B58))
    all(string.rep("1", n))
    all(string.rep("z", n))
    all(string.rep("1", random(0, n)) .. random_string(n, B58))
    all(random_string(n, B58 .. NOT_B58))
  end
  for _ = 1, 1500 do
    -- a version byte (often an address's), leading zero bytes, a payload of 0-90 bytes
    local versions = { 0, 5, 23, 51, random(0, 255) }
    local body = string.char(versions[random(#versions)])
                 .. string.rep("\0", random(0, 3) == 0 and random(1, 20) or 0)
                 .. random_bytes(random(0, 90))
    local s = base58check_encode(body)
    all(s)
    all(mutate(s, B58))
    all(mutate(s, NOT_B58))
    all(s:sub(1, random(0, #s)))
    all(s .. random_string(random(1, 3), B58))
  end
  -- 21-byte bodies: valid ADVC and Bitcoin addresses, and their one-character changes
  for _, v in ipairs({ 0, 5, 23, 51, 24 }) do
    for _ = 1, 40 do
      local s = base58check_encode(string.char(v) .. random_bytes(20))
      all(s)
      all(mutate(s, B58))
    end
  end
end

---------------------------------------------------------------------------------- bech32
local BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
local BECH32M = 0x2bc830a3
local GEN = { 0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3 }

-- BIP-173's reference polymod, written out again here (not the prelude's) for the encoder.
local function polymod(values)
  local chk = 1
  for _, v in ipairs(values) do
    local top = bit.rshift(chk, 25)
    chk = bit.bxor(bit.lshift(bit.band(chk, 0x1ffffff), 5), v)
    for k = 1, 5 do
      if bit.band(bit.rshift(top, k - 1), 1) == 1 then chk = bit.bxor(chk, GEN[k]) end
    end
  end
  return chk
end

-- hrp .. "1" .. data .. the 6-character checksum for `const` (1: bech32, BECH32M: bech32m).
local function bech32_encode(hrp, data, const)
  local values = {}
  for i = 1, #hrp do values[#values + 1] = bit.rshift(hrp:byte(i), 5) end
  values[#values + 1] = 0
  for i = 1, #hrp do values[#values + 1] = bit.band(hrp:byte(i), 31) end
  for _, d in ipairs(data) do values[#values + 1] = d end
  for _ = 1, 6 do values[#values + 1] = 0 end
  local mod = bit.bxor(polymod(values), const)
  local out = {}
  for _, d in ipairs(data) do out[#out + 1] = BECH32:sub(d + 1, d + 1) end
  for i = 0, 5 do
    local d = bit.band(bit.rshift(mod, 5 * (5 - i)), 31)
    out[#out + 1] = BECH32:sub(d + 1, d + 1)
  end
  return hrp .. "1" .. table.concat(out)
end

-- A witness version and program as 5-bit groups, padded with `pad` (normally 0) and
-- sometimes with an extra group (padding longer than 4 bits).
local function segwit_data(version, program, pad, extra)
  local data, acc, bits = { version }, 0, 0
  for i = 1, #program do
    acc, bits = acc * 256 + program:byte(i), bits + 8
    while bits >= 5 do
      bits = bits - 5
      data[#data + 1] = math.floor(acc / 2 ^ bits) % 32
    end
    acc = acc % 2 ^ bits
  end
  if bits > 0 then data[#data + 1] = (acc * 2 ^ (5 - bits) + pad) % 32 end
  if extra then data[#data + 1] = 0 end
  return data
end

local function random_case(s)
  local r = random(4)
  if r == 1 then return s:upper() end
  if r == 2 then return mutate(s, "ABCDEFGHJKLMNPQRSTUVWXYZ") end
  return s
end

local HRP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'()*+,-./:;<=>?@[]^_`{|}~1"

local function bech32_cases()
  for n = 0, 95 do
    all(random_string(n, BECH32 .. "1"))
    all("bc1" .. random_string(n, BECH32))
    all(random_string(n, HRP_CHARS .. "BIO\127\31 \0\200"))
  end
  local consts = { 1, BECH32M }
  for _ = 1, 2500 do
    local hrp = random(3) == 1 and "bc" or random_string(random(1, 10), HRP_CHARS)
    local version = random(6) == 1 and random(0, 31) or random(0, 2) * random(0, 8)
    local length = ({ 20, 32, random(0, 45) })[random(3)]
    local pad = random(8) == 1 and random(1, 3) or 0
    local data = segwit_data(version, random_bytes(length), pad, random(12) == 1)
    if random(10) == 1 then data = {} end
    local s = bech32_encode(hrp, data, random(10) == 1 and random(0, 2 ^ 30) or consts[random(2)])
    all(random_case(s))
    all(mutate(s, BECH32))
    all(mutate(s, "bio1BIO \127"))
    all(s:sub(1, random(0, #s)))
  end
  -- long strings around the 90-character limit, with the checksum right
  for n = 70, 95 do
    local data = {}
    for i = 1, n - 9 do data[i] = random(0, 31) end
    all(bech32_encode("bc", data, consts[random(2)]))
    all(bech32_encode("bc", data, consts[random(2)]):upper())
  end
end

------------------------------------------------------------------------------- sha256
local function sha256_cases()
  for n = 0, 300 do compare("sha256", random_bytes(n)) end
  for _, s in ipairs({ "", "abc", string.rep("a", 65535), string.rep("a", 65536),
                       string.rep("a", 65537), string.rep("\0", 1000) }) do
    compare("sha256", s)
  end
  for _, v in ipairs({ 42, true, {}, print }) do compare("sha256", v) end
  compare("sha256", nil)
  -- the input cap's error names the prelude's line, as native.sha256's argcheck always did
  for _, m in ipairs({ ref, c }) do
    local _, err = pcall(m.sha256, string.rep("a", 65537))
    assert(err:match("^prelude%.lua:%d+: bad argument #1 to 'sha256' %(at most 65536 bytes%)$"),
           err)
  end
end

for _, v in ipairs({ 0, 42, true, {}, print, "" }) do all(v) end
all(nil)
b58_cases()
bech32_cases()
sha256_cases()

local seen = {}
for reason in pairs(reasons) do seen[#seen + 1] = reason end
table.sort(seen)
return mismatches, table.concat(shown, "\n"), compared, table.concat(seen, "\n")
