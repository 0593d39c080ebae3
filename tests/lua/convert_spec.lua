-- scripts/convert.lua: pool currency -> ADVC.
local helper = require("tests.lua.helper")

describe("convert.to_advc (scripts/convert.lua)", function()
  local function load(env)
    local w = helper.world({ env = env or {} })
    return w:load("scripts/convert.lua")
  end

  it("is the identity for ADVC", function()
    local convert = load()
    assert.are.equal(1.25, convert.to_advc(1.25, "ADVC", {}))
    assert.are.equal(0, convert.to_advc(0, "ADVC", {}))
  end)

  it("multiplies BTC by the default rate of 1,000,000", function()
    local convert = load()
    assert.are.equal(1000000, convert.rates.BTC)
    assert.are.equal(500, convert.to_advc(0.0005, "BTC", {}))
  end)

  it("multiplies in units of 1e-8: 0.00012345 BTC is exactly 123.45 ADVC", function()
    local convert = load()
    assert.are.equal(123.45, convert.to_advc(0.00012345, "BTC", {})) -- not 123.44999999999999
    assert.are.equal(0.01, convert.to_advc(0.00000001, "BTC", {}))
    -- More than 8 decimals, or beyond m2p.EXACT_LIMIT: multiplied as it is.
    assert.are.equal(0.123456789 * 1e6, convert.to_advc(0.123456789, "BTC", {}))
    assert.are.equal(1e8 * 1e6, convert.to_advc(1e8, "BTC", {}))
  end)

  it("reads BTC_TO_ADVC_RATE when it loads", function()
    local convert = load({ BTC_TO_ADVC_RATE = "2500000" })
    assert.are.equal(1000, convert.to_advc(0.0004, "BTC", {}))
  end)

  it("refuses a malformed or out-of-range rate at load, naming the variable", function()
    for _, bad in ipairs({ "lots", "0", "-5", "1e16" }) do
      local ok, err = pcall(load, { BTC_TO_ADVC_RATE = bad })
      assert.is_false(ok, bad)
      assert.matches("BTC_TO_ADVC_RATE", err)
    end
  end)

  it("fails on an unknown currency instead of returning zero", function()
    local convert = load()
    local ok, err = pcall(convert.to_advc, 1, "LTC", {})
    assert.is_false(ok)
    assert.matches('no conversion rate for currency "LTC"', err)
    ok = pcall(convert.to_advc, 1, nil, {})
    assert.is_false(ok)
  end)
end)
