-- pools/zpool.lua: YiiMP walletEx, payouts by tx, paid24h fallback, the rate limit.
local helper = require("tests.lua.helper")

local WALLET = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
local TX1 = "9f2c1d7e5b3a40c8e6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
local TX2 = "1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f70819"

-- walletEx exactly as YiiMP's ApiController.php prints it (YAAMP_API_PAYOUTS on): amounts
-- through bitcoinvaluetoa (%.8f) except `unsold`, a raw PHP float; json_encode's "\/";
-- payouts with `time` a number and `amount` a string, joined by ", " and then "}," -> "},\n".
local YIIMP_BODY = '{"currency": "BTC", "unsold": 7.690573182184E-6, "balance": 0.00023456, '
  .. '"unpaid": 0.00024225, "paid24h": 0.00090000, "total": 0.00114225, "miners": [{"version": '
  .. '"cpuminer-opt\\/23.15", "password": "c=BTC", "ID": "", "algo": "yespower", "difficulty": 0.5, '
  .. '"subscribe": 1, "accepted": 1234.5, "rejected": 0}],"payouts": [{"time": 1700021600,'
  .. '"amount": "0.00040000","tx": "' .. TX2 .. '"},\n {"time": 1700000000,"amount": '
  .. '"0.00050000","tx": "' .. TX1 .. '"}]}'
-- zpool's own build: `time` a string, `amount` a number, and "error": "" in a normal answer.
local ZPOOL_BODY = '{"currency": "BTC", "unsold": 1.2345678912E-5, "balance": 0.00000000, '
  .. '"unpaid": 0.00001235, "paid24h": 0.00090000, "total": 0.00091235, "miners": [],'
  .. '"payouts": [{"time": "1700021600","amount": 0.0004,"tx": "' .. TX2 .. '"},\n '
  .. '{"time": "1700000000","amount": 0.0005,"tx": "' .. TX1 .. '"}], "error": ""}'

local function wallet_ex(fields)
  local t = { currency = "BTC", unsold = 0.00001234, balance = 0.00023456, unpaid = 0.0002469,
              paid24h = 0.0005, total = 0.0007469, miners = {},
              payouts = { { time = 1700000000, amount = "0.00050000", tx = TX1 } } }
  for k, v in pairs(fields or {}) do t[k] = v end
  return t
end

describe("pools/zpool.lua", function()
  local w, pool
  local function parse(body)
    return pool.parse(w:response(body, { wallet = WALLET }))
  end

  before_each(function()
    w = helper.world()
    pool = w:load("pools/zpool.lua")
  end)

  describe("declaration", function()
    it("is a BTC pool named zpool", function()
      assert.are.equal("zpool", pool.name)
      assert.are.equal("BTC", pool.currency)
      assert.is_true(pool.enabled)
      local off = helper.world({ env = { ZPOOL_ENABLED = "0" } }):load("pools/zpool.lua")
      assert.is_false(off.enabled)
    end)

    it("stays under YiiMP's one walletEx request per minute per IP", function()
      assert.are.equal(1, pool.limits.concurrency)
      assert.is_true(pool.limits.per_second <= 1 / 60)
      assert.are.equal(1 / 65, pool.limits.per_second)
    end)

    it("lets an operator with several egress addresses raise the rate", function()
      local p = helper.world({ env = { ZPOOL_PER_SECOND = "0.05" } }):load("pools/zpool.lua")
      assert.are.equal(0.05, p.limits.per_second)
      assert.has_error(function()
        helper.world({ env = { ZPOOL_PER_SECOND = "0" } }):load("pools/zpool.lua")
      end)
    end)
  end)

  describe("request", function()
    it("asks walletEx with ?address=", function()
      assert.are.equal("https://zpool.ca/api/walletEx?address=" .. WALLET,
                       pool.request(WALLET).url)
    end)

    it("uses ZPOOL_URL", function()
      local p = helper.world({ env = { ZPOOL_URL = "http://127.0.0.1:9301/api/walletEx" } })
                  :load("pools/zpool.lua")
      assert.are.equal("http://127.0.0.1:9301/api/walletEx?address=" .. WALLET,
                       p.request(WALLET).url)
    end)
  end)

  describe("payouts", function()
    it("become observation.payouts with numbers", function()
      local obs = parse(wallet_ex())
      assert.are.same({ { tx = TX1, amount = 0.0005, time = 1700000000 } }, obs.payouts)
      assert.are.equal(0.0005, obs.paid24h)
      assert.are.equal(0.00023456, obs.balance)
      assert.are.equal(0.00001234, obs.unsold)
      assert.are.equal(0.0002469, obs.unpaid)
      assert.are.equal(0.0007469, obs.total)
    end)

    it("an empty list is a valid observation", function()
      assert.are.same({}, parse(wallet_ex({ payouts = {}, paid24h = 0 })).payouts)
    end)

    it("skips entries without a usable tx, quietly", function()
      local obs = parse(wallet_ex({ payouts = {
        { amount = "0.0004", time = 1 }, { amount = "0.0004", tx = "" },
        { amount = "0.0004", tx = w.null }, { amount = "0.0004", tx = "has space" },
        { amount = "0.0004", tx = { "x" } }, { amount = "0.0005", tx = TX1 } } }))
      assert.are.equal(1, #obs.payouts)
      assert.are.equal(TX1, obs.payouts[1].tx)
      local skipped = w:logged("zpool_payout_skipped")
      assert.are.equal(5, #skipped)
      for _, r in ipairs(skipped) do assert.are.equal("debug", r.level) end
    end)

    it("skips entries with a bad amount, with a warning", function()
      local obs = parse(wallet_ex({ payouts = {
        { amount = "abc", tx = "t1" }, { amount = -1, tx = "t2" }, { amount = 0, tx = "t3" },
        { tx = "t4" }, { amount = w.null, tx = "t5" }, { amount = "0.0001", tx = "t6" } } }))
      assert.are.same({ { tx = "t6", amount = 0.0001 } }, obs.payouts)
      local warnings = w:logged("zpool_payout_skipped")
      assert.are.equal(5, #warnings)
      assert.are.equal("warning", warnings[1].level)
    end)

    -- Numbers in JSON are doubles: above 2^53 two ids read as one, and from 2^63 "%d" prints
    -- every one as the same string (the review paid 100 of 300 ADVC: one key for two payouts).
    it("skips numeric tx ids of 2^53 or more, with a warning; smaller ones become digits", function()
      local obs = parse('{"currency": "BTC", "paid24h": 0.0004, "payouts": ['
        .. '{"time": 1, "amount": 0.0001, "tx": 18446744073709551617},'
        .. '{"time": 1, "amount": 0.0002, "tx": 99999999999999999999},'
        .. '{"time": 1, "amount": 0.0003, "tx": 9007199254740993},'
        .. '{"time": 1, "amount": 0.0004, "tx": 9007199254740991},'
        .. '{"time": 1, "amount": 0.0005, "tx": 12345}]}')
      assert.are.same({ { tx = "9007199254740991", amount = 0.0004, time = 1 },
                        { tx = "12345", amount = 0.0005, time = 1 } }, obs.payouts)
      local warnings = {}
      for _, r in ipairs(w:logged("zpool_payout_skipped")) do
        if r.level == "warning" then warnings[#warnings + 1] = r end
      end
      assert.are.equal(3, #warnings)
      assert.matches("2%^53", warnings[1].fields.detail)
    end)

    it("keeps a tx listed twice once", function()
      local obs = parse(wallet_ex({ payouts = {
        { amount = "0.0004", tx = TX2, time = 2 }, { amount = "0.0004", tx = TX2, time = 2 },
        { amount = "0.0005", tx = TX1, time = 1 } } }))
      assert.are.equal(2, #obs.payouts)
    end)

    it("drops an unreadable time but keeps the payout", function()
      local obs = parse(wallet_ex({ payouts = { { amount = "0.0004", tx = TX2, time = "soon" } } }))
      assert.are.same({ { tx = TX2, amount = 0.0004 } }, obs.payouts)
    end)

    it("fails when payouts is not a list", function()
      for _, bad in ipairs({ "none", 5, { tx = TX1, amount = "0.1" } }) do
        local obs, reason = parse(wallet_ex({ payouts = bad }))
        assert.is_nil(obs)
        assert.matches("payouts is not a list", reason)
      end
    end)
  end)

  describe("answers shaped as the pool software prints them", function()
    it("reads stock YiiMP's walletEx (raw PHP float, time a number, amount a string)", function()
      local obs, why = parse(YIIMP_BODY)
      assert.is_table(obs, why)
      assert.are.equal(7.690573182184e-6, obs.unsold)
      assert.are.equal(0.0009, obs.paid24h)
      assert.are.same({ { tx = TX2, amount = 0.0004, time = 1700021600 },
                        { tx = TX1, amount = 0.0005, time = 1700000000 } }, obs.payouts)
    end)

    it("reads zpool's walletEx (time a string, amount a number, an empty error)", function()
      local obs, why = parse(ZPOOL_BODY)
      assert.is_table(obs, why)
      assert.are.same({ { tx = TX2, amount = 0.0004, time = 1700021600 },
                        { tx = TX1, amount = 0.0005, time = 1700000000 } }, obs.payouts)
    end)

    it("takes an empty or blank error as no error", function()
      for _, blank in ipairs({ "", " ", "\t\n" }) do
        local obs, why = parse(wallet_ex({ error = blank }))
        assert.is_table(obs, why)
      end
      assert.is_table((parse(wallet_ex({ error = false }))))
      assert.is_table((parse(wallet_ex({ error = w.null }))))
      local obs, reason = parse(wallet_ex({ error = " rate limited " }))
      assert.is_nil(obs)
      assert.matches("pool error", reason)
    end)
  end)

  describe("without a payouts list", function()
    it("falls back to paid24h", function()
      local obs = parse(wallet_ex({ payouts = w.null }))
      assert.is_nil(obs.payouts)
      assert.are.equal(0.0005, obs.paid24h)
    end)

    it("uses a cumulative paid field when there is one", function()
      local body = wallet_ex({ paid = "0.0123" })
      body.payouts = nil
      assert.are.equal(0.0123, parse(body).paid)
    end)

    it("fails on a malformed paid or paid24h", function()
      assert.is_nil((parse(wallet_ex({ paid24h = "n/a" }))))
      assert.is_nil((parse(wallet_ex({ paid = -1 }))))
    end)

    it("fails when there is no counter at all", function()
      local obs, reason = parse({ currency = "BTC", balance = 0.0001 })
      assert.is_nil(obs)
      assert.matches("no payouts, paid or paid24h", reason)
    end)
  end)

  describe("refuses", function()
    it("a wallet paid in another currency", function()
      local obs, reason = parse(wallet_ex({ currency = "LTC" }))
      assert.is_nil(obs)
      assert.matches("not BTC", reason)
    end)

    it("an answer naming another address", function()
      local obs, reason = parse(wallet_ex({ address = "bc1qm34lsc65zpw79lxes69zkqmk6ee3ewf0j77s3h" }))
      assert.is_nil(obs)
      assert.matches("not for the polled wallet", reason)
      assert.is_table(parse(wallet_ex({ address = WALLET })))
      assert.is_table(parse(wallet_ex({ address = WALLET:upper() }))) -- bech32 ignores case
    end)

    it("error objects, with their message", function()
      local obs, reason = parse({ error = "invalid address" })
      assert.is_nil(obs)
      assert.are.equal("pool error: invalid address", reason)
    end)

    it("bodies that are not a JSON object", function()
      local obs, reason = parse("Disabled, server overloaded")
      assert.is_nil(obs)
      assert.matches("not JSON", reason)
      assert.is_nil((parse("null")))
      assert.is_nil((parse('"ok"')))
    end)
  end)
end)
