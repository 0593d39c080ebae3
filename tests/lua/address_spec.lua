-- engine/script/prelude.lua's address helpers: sha256, base58check, bech32/bech32m, advc_address and
-- btc_address. A pool that matches wallets by prefix (NOMP) hands a truncated address another
-- miner's figures, so only whole, checksum-valid addresses may be polled.
local helper = require("tests.lua.helper")

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Test wallets of the tree (/tmp/m2p-wallets-done lists them): nobody owns them.
local ADVC = "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"      -- version 23 (P2PKH)
local ADVC_P2SH = "Mo7TSTAnoQMt9CZFkxwFeLYgRMk6KV5L3c" -- version 51
local GENESIS = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"   -- Bitcoin's genesis block reward
local BTC_P2SH = "3QTUfXBMrEKmFbca95foW7YPjhkE5RUeBx"

-- One character changed, at position i (to the next base58 digit): never a valid checksum
-- for these addresses (checked below against the decoder itself).
local function changed(s, i)
  local alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
  local at = alphabet:find(s:sub(i, i), 1, true)
  local c = alphabet:sub(at % #alphabet + 1, at % #alphabet + 1)
  return s:sub(1, i - 1) .. c .. s:sub(i + 1)
end

-- BIP-173 and BIP-350 (bitcoin/bips, and sipa/bech32 ref/python/tests.py): valid segwit
-- addresses with the scriptPubKey they stand for (version opcode, length, program).
local VALID_SEGWIT = {
  { "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6" },
  { "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
    "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262" },
  { "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
    "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6" },
  { "BC1SW50QGDZ25J", "6002751e" },
  { "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323" },
  { "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
    "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433" },
  { "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
    "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433" },
  { "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
    "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798" },
}

-- Invalid as segwit addresses whatever the hrp (BIP-350's list, BIP-173's list for witness
-- version 0, and BIP-173's v1+ examples whose bech32 checksum BIP-350 no longer accepts).
local INVALID_SEGWIT = {
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", -- bech32, needs bech32m
  "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", -- bech32, needs bech32m
  "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", -- bech32, needs bech32m
  "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",                     -- bech32m, needs bech32
  "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", -- bech32m, needs bech32
  "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", -- 'o' in the checksum
  "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", -- witness version 17
  "bc1pw5dgrnzv",                                                   -- 1-byte program
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", -- 41 bytes
  "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",                           -- v0 with 16 bytes
  "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", -- mixed case
  "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", -- padding over 4 bits
  "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", -- non-zero padding
  "bc1gmk9yu",                                                      -- empty data part
  "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",                     -- bad checksum
  "BC13W508D6QEJXTDG4Y5R3ZARVARY0C5XW7KN40WF2",                     -- witness version 17
  "bc1rw5uspcuh",                                                   -- 1-byte program
  "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90", -- 41 bytes
  "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", -- mixed case
  "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du",                          -- padding over 4 bits
  "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv", -- non-zero padding
  "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7k7grplx", -- BIP-173 v1
  "BC1SW50QA3JX3S",                                                 -- BIP-173 v16
  "bc1zw508d6qejxtdg4y5r3zarvaryvg6kdaj",                           -- BIP-173 v2
}

-- BIP-173/BIP-350 strings that are not even bech32 (so not addresses either).
local NOT_BECH32 = {
  " 1nwldj5", "\127" .. "1axkwrx", "\128" .. "1eym55h",
  "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
  "pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "de1lg7wt" .. "\255", "A1G7SGD8",
  "10a06t8", "1qzzfhee", "qyrz8wqd2c9m", "1qyrz8wqd2c9m", "y1b0jsk6g", "lt1igcx5c0", "in1muywd",
  "mm1crxm3i", "au1s5cgom", "M1VUXWEZ", "16plkw9", "1p2gdwpf",
}

describe("address helpers (engine/script/prelude.lua)", function()
  local m2p
  before_each(function()
    m2p = helper.world().m2p
  end)

  describe("sha256", function()
    it("gives 64 lower-case hex digits (FIPS 180-2 examples)", function()
      assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                       m2p.sha256(""))
      assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                       m2p.sha256("abc"))
      assert.are.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
                       m2p.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    end)

    it("hashes binary strings whole, NUL bytes included", function()
      assert.are_not.equal(m2p.sha256("a\0b"), m2p.sha256("a"))
    end)

    it("refuses what is not a string", function()
      assert.has_error(function() m2p.sha256(nil) end)
      assert.has_error(function() m2p.sha256({}) end)
    end)
  end)

  describe("base58check", function()
    it("decodes Bitcoin's genesis address: version 0 and its 20-byte hash", function()
      local version, payload = m2p.base58check(GENESIS)
      assert.are.equal(0, version)
      assert.are.equal("62e907b15cbf27d5425399ebf6f0fb50ebb88f18", hex(payload))
    end)

    it("turns each leading '1' into a zero byte", function()
      -- version 0 is the leading '1'; a payload that starts with zero bytes adds more
      local version, payload = m2p.base58check("1111111111111111111114oLvT2")
      assert.are.equal(0, version)
      assert.are.equal(string.rep("\0", 20), payload)
    end)

    it("decodes the version bytes of ADVC (23, 51) and BTC P2SH (5)", function()
      assert.are.equal(23, (m2p.base58check(ADVC)))
      assert.are.equal(51, (m2p.base58check(ADVC_P2SH)))
      assert.are.equal(5, (m2p.base58check(BTC_P2SH)))
    end)

    it("refuses a truncated address and every one-character change", function()
      local v, reason = m2p.base58check(GENESIS:sub(1, -2))
      assert.is_nil(v)
      assert.matches("checksum", reason)
      for i = 1, #ADVC do
        v, reason = m2p.base58check(changed(ADVC, i))
        assert.is_nil(v, changed(ADVC, i))
        assert.matches("bad base58check checksum", reason)
      end
    end)

    it("refuses what is not base58", function()
      for _, s in ipairs({ "", "0OIl", ADVC:sub(1, 10) .. "0" .. ADVC:sub(12), ADVC .. " ",
                           "A\0B" }) do
        local v, reason = m2p.base58check(s)
        assert.is_nil(v, s)
        assert.matches("not base58", reason)
      end
      assert.matches("not base58", select(2, m2p.base58check(nil)))
    end)

    it("refuses strings too short to hold a checksum, and absurdly long ones", function()
      assert.matches("too short", select(2, m2p.base58check("1")))
      assert.matches("too short", select(2, m2p.base58check("2g")))
      assert.matches("longer than 128", select(2, m2p.base58check(string.rep("2", 129))))
    end)
  end)

  describe("bech32", function()
    it("decodes the BIP-173 and BIP-350 valid addresses to their witness programs", function()
      for _, case in ipairs(VALID_SEGWIT) do
        local address, script = case[1], case[2]
        local hrp, version, program = m2p.bech32(address)
        assert.is_string(hrp, address .. ": " .. tostring(version))
        assert.are.equal(address:lower():match("^(%l%l)1"), hrp)
        local opcode = version == 0 and 0 or 0x50 + version
        assert.are.equal(script, string.format("%02x%02x", opcode, #program) .. hex(program))
      end
    end)

    it("refuses the BIP-173 and BIP-350 invalid addresses", function()
      for _, address in ipairs(INVALID_SEGWIT) do
        local hrp, reason = m2p.bech32(address)
        assert.is_nil(hrp, address)
        assert.is_string(reason)
      end
    end)

    it("refuses the BIP-173 and BIP-350 invalid bech32 strings", function()
      for _, s in ipairs(NOT_BECH32) do
        local hrp, reason = m2p.bech32(s)
        assert.is_nil(hrp, s)
        assert.is_string(reason)
      end
    end)

    it("says why", function()
      local function reason(s) return select(2, m2p.bech32(s)) end
      assert.matches("mixed case", reason(VALID_SEGWIT[1][1]:sub(1, 10) .. "w" ..
                                          VALID_SEGWIT[1][1]:sub(12)))
      assert.matches("needs bech32m", reason(INVALID_SEGWIT[1]))
      assert.matches("needs bech32", reason(INVALID_SEGWIT[4]))
      assert.matches("version 17", reason(INVALID_SEGWIT[7]))
      assert.matches("20 or 32", reason(INVALID_SEGWIT[10]))
      assert.matches("2%-40", reason(INVALID_SEGWIT[8]))
      assert.matches("padding", reason(INVALID_SEGWIT[12]))
      assert.matches("bad bech32 checksum", reason(INVALID_SEGWIT[15]))
      assert.matches("longer than 90", reason(NOT_BECH32[4]))
      assert.matches("no '1' separator", reason("pzry9x0s0muk"))
      assert.matches("empty human%-readable part", reason("1pzry9x0s0muk"))
    end)

    it("refuses a truncated address and a one-character change", function()
      local address = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
      assert.is_string((m2p.bech32(address)))
      assert.is_nil((m2p.bech32(address:sub(1, -2))))
      assert.is_nil((m2p.bech32(address:sub(1, 20) .. "x" .. address:sub(22))))
    end)
  end)

  describe("advc_address", function()
    it("accepts P2PKH (23) and P2SH (51) addresses", function()
      assert.is_true(m2p.advc_address(ADVC))
      assert.is_true(m2p.advc_address(ADVC_P2SH))
    end)

    it("refuses the NOMP prefix case: a truncated address", function()
      for n = 1, #ADVC - 1 do
        local ok, reason = m2p.advc_address(ADVC:sub(1, n))
        assert.is_nil(ok, ADVC:sub(1, n))
        assert.is_string(reason)
      end
      assert.is_nil((m2p.advc_address(ADVC .. ".rig1")))
    end)

    it("refuses a one-character change and other networks' addresses", function()
      assert.matches("bad base58check checksum", select(2, m2p.advc_address(changed(ADVC, 12))))
      assert.matches("version 0 is not an ADVC address", select(2, m2p.advc_address(GENESIS)))
      assert.matches("version 5 is not", select(2, m2p.advc_address(BTC_P2SH)))
    end)

    it("refuses a valid base58check string of the wrong length", function()
      -- version 23 with a 21-byte payload, checksum correct
      local ok, reason = m2p.advc_address("igCEs9Dj21BDq3ZDcWSWXudm4YJXXNUfcej")
      assert.is_nil(ok)
      assert.matches("wrong length", reason)
    end)

    it("takes its versions from ADVC_ADDRESS_VERSIONS", function()
      local only_p2sh = helper.world({ env = { ADVC_ADDRESS_VERSIONS = "51" } }).m2p
      assert.is_true(only_p2sh.advc_address(ADVC_P2SH))
      local ok, reason = only_p2sh.advc_address(ADVC)
      assert.is_nil(ok)
      assert.matches("ADVC_ADDRESS_VERSIONS=51", reason)
      local with_btc = helper.world({ env = { ADVC_ADDRESS_VERSIONS = "23, 51, 0" } }).m2p
      assert.is_true(with_btc.advc_address(GENESIS))
    end)
  end)

  describe("btc_address", function()
    it("accepts base58 P2PKH and P2SH, unchanged", function()
      assert.are.equal(GENESIS, m2p.btc_address(GENESIS))
      assert.are.equal(BTC_P2SH, m2p.btc_address(BTC_P2SH))
    end)

    it("accepts mainnet bech32 and bech32m, lower-cased (its canonical form)", function()
      assert.are.equal("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
                       m2p.btc_address("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"))
      local taproot = "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
      assert.are.equal(taproot, m2p.btc_address(taproot))
      local p2wsh = "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3"
      assert.are.equal(p2wsh, m2p.btc_address(p2wsh))
    end)

    it("refuses testnet and other networks", function()
      assert.matches('hrp "tb" is not Bitcoin mainnet',
                     select(2, m2p.btc_address(VALID_SEGWIT[2][1])))
      assert.matches("version 23 is not a Bitcoin", select(2, m2p.btc_address(ADVC)))
      assert.is_nil((m2p.btc_address("tc1qw508d6qejxtdg4y5r3zarvary0c5xw7kg3g4ty")))
    end)

    it("refuses truncated and one-character-changed addresses", function()
      assert.is_nil((m2p.btc_address(GENESIS:sub(1, -2))))
      assert.is_nil((m2p.btc_address(changed(GENESIS, 5))))
      assert.is_nil((m2p.btc_address("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5md")))
      assert.is_nil((m2p.btc_address("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp")))
      for _, address in ipairs(INVALID_SEGWIT) do
        assert.is_nil((m2p.btc_address(address)), address)
      end
    end)
  end)
end)

-- The pool contract (engine/script/pipeline.lua): wallet_pattern decides what may be polled and what
-- the wallet's canonical form is; a refused wallet never reaches request().
describe("the wallet contract (engine/script/pipeline.lua)", function()
  local function load_test_pool(pattern_source)
    local pipeline = helper.pipeline({ only = {} })
    local source = [[
      return {
        name = "testpool", currency = "ADVC",
        wallet_pattern = ]] .. pattern_source .. [[,
        request = function(wallet)
          return { url = "http://127.0.0.1/" .. m2p.urlencode(wallet) }
        end,
        parse = function(response) return nil, "parse saw " .. response.wallet end,
      }
    ]]
    local i = pipeline.load_pool("test/testpool.lua", source, "testpool")
    return pipeline, i
  end

  it("gives 'invalid wallet: <reason>' from a function's reason", function()
    local pipeline, i = load_test_pool("m2p.advc_address")
    local ok, err = pcall(pipeline.request, i, ADVC:sub(1, -2))
    assert.is_false(ok)
    assert.are.equal("invalid wallet: bad base58check checksum", err)
    ok, err = pcall(pipeline.wallet_check, i, ADVC .. ".rig1")
    assert.is_false(ok)
    assert.matches("^invalid wallet: not base58", err)
  end)

  it("returns the wallet itself when the function says true", function()
    local pipeline, i = load_test_pool("m2p.advc_address")
    assert.are.equal(ADVC, pipeline.wallet_check(i, ADVC))
    assert.are.equal("http://127.0.0.1/" .. ADVC, pipeline.request(i, ADVC))
  end)

  it("uses the canonical form a function returns, for wallet_check, request and parse", function()
    local pipeline, i = load_test_pool("m2p.btc_address")
    local upper = "BC1QAR0SRRR7XFKVY5L643LYDNW9RE59GTZZWF5MDQ"
    local lower = upper:lower()
    assert.are.equal(lower, pipeline.wallet_check(i, upper))
    assert.are.equal("http://127.0.0.1/" .. lower, pipeline.request(i, upper))
    local ok, err = pcall(pipeline.poll, i, { player_id = 1, username = "p1", wallet = upper },
      { status = 200, headers = {}, body = "{}", json = {}, json_type = "object" })
    assert.is_false(ok)
    assert.are.equal("test/testpool.lua: parse saw " .. lower, err)
  end)

  it("refuses spaces, control characters and huge strings before the pool's function", function()
    local pipeline, i = load_test_pool("function() return true end")
    for _, bad in ipairs({ "", "a b", "a\r\nHost: x", string.rep("A", 257) }) do
      local ok, err = pcall(pipeline.wallet_check, i, bad)
      assert.is_false(ok)
      assert.matches("^invalid wallet: ", err)
    end
    assert.are.equal("anything", pipeline.wallet_check(i, "anything"))
  end)

  it("names a default reason when a function refuses without one", function()
    local pipeline, i = load_test_pool("function() return false end")
    local ok, err = pcall(pipeline.wallet_check, i, ADVC)
    assert.is_false(ok)
    assert.are.equal("invalid wallet: refused by wallet_pattern", err)
  end)

  it("fails the script, naming it, when a function returns something unusable", function()
    for _, ret in ipairs({ "42", "'has space'", "''", "{}" }) do
      local pipeline, i = load_test_pool("function() return " .. ret .. " end")
      local ok, err = pcall(pipeline.wallet_check, i, ADVC)
      assert.is_false(ok)
      assert.matches("test/testpool.lua", tostring(err))
      assert.matches("wallet_pattern must return", tostring(err))
    end
  end)

  it("keeps string patterns and the default check", function()
    local pipeline, i = load_test_pool("'^A%w+$'")
    assert.are.equal("Abc", pipeline.wallet_check(i, "Abc"))
    assert.are.equal("invalid wallet: does not match the pool's wallet_pattern",
                     select(2, pcall(pipeline.wallet_check, i, "Bbc")))
  end)

  it("is what the shipped pools declare", function()
    local pipeline, _, index = helper.pipeline({ only = { "cpu-pool", "rplant", "zpool" },
                                                 env = { RPLANT_DIV2 = "0" } })
    for _, name in ipairs({ "cpu-pool", "rplant" }) do
      assert.are.equal(ADVC, pipeline.wallet_check(index[name], ADVC))
      assert.matches("^invalid wallet: bad base58check checksum",
                     select(2, pcall(pipeline.request, index[name], ADVC:sub(1, -2))))
      assert.matches("^invalid wallet: version 0 is not an ADVC address",
                     select(2, pcall(pipeline.request, index[name], GENESIS)))
    end
    local upper = "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"
    assert.are.equal(upper:lower(), pipeline.wallet_check(index.zpool, upper))
    assert.are.equal(GENESIS, pipeline.wallet_check(index.zpool, GENESIS))
    assert.matches("^invalid wallet: version 23 is not a Bitcoin",
                   select(2, pcall(pipeline.wallet_check, index.zpool, ADVC)))
  end)
end)
