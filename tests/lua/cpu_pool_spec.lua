-- pools/cpu-pool.lua: NOMP's worker_stats.
local helper = require("tests.lua.helper")

local WALLET = "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"
local OTHER = "Ab8uJDRufbThLGmZ6zf7PbxZnQ8LLYHzuy"

local function stats(fields)
  local t = { miner = WALLET, totalHash = 1234.5, totalShares = 98765, networkSols = 0,
              immature = 0.5, balance = 1.2, paid = 10.5, workers = {}, history = {} }
  for k, v in pairs(fields or {}) do t[k] = v end
  return t
end

describe("pools/cpu-pool.lua", function()
  local w, pool
  local function parse(body, opts)
    opts = opts or {}
    opts.wallet = opts.wallet or WALLET
    return pool.parse(w:response(body, opts))
  end

  before_each(function()
    w = helper.world()
    pool = w:load("pools/cpu-pool.lua")
  end)

  describe("declaration", function()
    it("is an enabled ADVC pool named cpu-pool with sensible limits", function()
      assert.are.equal("cpu-pool", pool.name)
      assert.are.equal("ADVC", pool.currency)
      assert.is_true(pool.enabled)
      assert.are.same({ concurrency = 8, per_second = 10 }, pool.limits)
    end)

      it("takes its limits from CPU_POOL_CONCURRENCY and CPU_POOL_PER_SECOND (0 = no cap)", function()
        local function limits(env)
          local e = {}
          for k, v in pairs(env) do e[k] = v end
          return helper.world({ env = e }):load("pools/cpu-pool.lua").limits
        end
        assert.are.same({ concurrency = 64 },
                        limits({ CPU_POOL_CONCURRENCY = "64", CPU_POOL_PER_SECOND = "0" }))
        assert.are.same({ concurrency = 10000, per_second = 2.5 },
                        limits({ CPU_POOL_CONCURRENCY = "0", CPU_POOL_PER_SECOND = "2.5" }))
        local ok, err = pcall(limits, { CPU_POOL_CONCURRENCY = "2.5" })
        assert.is_false(ok)
        assert.matches("CPU_POOL_CONCURRENCY", err)
      end)

    it("can be disabled with CPU_POOL_ENABLED", function()
      local p = helper.world({ env = { CPU_POOL_ENABLED = "false" } }):load("pools/cpu-pool.lua")
      assert.is_false(p.enabled)
    end)
  end)

  describe("request", function()
    it("puts the wallet as the whole query string (NOMP's form)", function()
      assert.are.equal("http://cpu-pool.com/api/worker_stats?" .. WALLET,
                       pool.request(WALLET).url)
    end)

    it("never builds ?addr=", function()
      assert.is_nil(pool.request(WALLET).url:find("addr=", 1, true))
    end)

    it("uses CPU_POOL_URL and drops a query left in it, with a warning", function()
      local w2 = helper.world({ env = { CPU_POOL_URL = "http://10.0.0.5:8080/api/worker_stats?addr=" } })
      local p = w2:load("pools/cpu-pool.lua")
      assert.are.equal("http://10.0.0.5:8080/api/worker_stats?" .. WALLET, p.request(WALLET).url)
      assert.are.equal(1, #w2:logged("cpu_pool_url_query_dropped"))
    end)
  end)

  describe("parse", function()
    it("reads NOMP's stats: paid is the counter", function()
      local obs = parse(stats())
      assert.are.same({ paid = 10.5, balance = 1.2, immature = 0.5, hashrate = 1234.5,
                        shares = 98765 }, obs)
    end)

    it("parses amounts sent as strings", function()
      local obs = parse(stats({ paid = "10.50000000", balance = "0.1" }))
      assert.are.equal(10.5, obs.paid)
      assert.are.equal(0.1, obs.balance)
    end)

    it("accepts the polled wallet with a .worker suffix", function()
      assert.are.equal(10.5, parse(stats({ miner = WALLET .. ".rig1" })).paid)
      assert.are.equal(10.5, parse(stats({ miner = WALLET .. ".rig.2" })).paid)
    end)

    it("refuses another miner, even with a suffix", function()
      local obs, reason = parse(stats({ miner = OTHER }))
      assert.is_nil(obs)
      assert.matches("not for the polled wallet", reason)
      assert.is_nil((parse(stats({ miner = OTHER .. ".rig1" }))))
      assert.is_nil((parse(stats({ miner = WALLET .. "x" }))))
      assert.is_nil((parse(stats({ miner = "." .. WALLET }))))
    end)

    it("refuses an absent, empty, null or non-string miner (unknown wallet)", function()
      local body = stats()
      body.miner = nil
      local obs, reason = parse(body)
      assert.is_nil(obs)
      assert.matches("no miner", reason)
      assert.is_nil((parse(stats({ miner = "" }))))
      assert.is_nil((parse(stats({ miner = w.null }))))
      assert.is_nil((parse(stats({ miner = 42 }))))
    end)

    -- NOMP echoes the address it was asked about, with zeros and no workers, for a wallet it
    -- does not know, and at times for one it knows (stats not gathered yet, a missed HSCAN).
    it("refuses the all-zero answer (miner echoed, zeros, no workers)", function()
      local zero = { miner = WALLET, totalHash = 0, totalShares = 0, networkSols = "0",
                     immature = 0, balance = 0, paid = 0, workers = {}, history = {} }
      local obs, reason = parse(zero)
      assert.is_nil(obs)
      assert.matches("all%-zero answer", reason)
      zero.paid, zero.balance, zero.immature = "0", "0.00000000", nil
      assert.is_nil((parse(zero)))
      zero.workers = w.null
      assert.is_nil((parse(zero)))
    end)

    it("takes zeros as an observation when the wallet has a worker or a balance", function()
      local obs = parse(stats({ paid = 0, balance = 0, immature = 0,
                                workers = { [WALLET .. ".rig1"] = { hashrate = 1 } } }))
      assert.are.equal(0, obs.paid)
      assert.are.equal(0, parse(stats({ paid = 0, balance = 0.2, immature = 0 })).paid)
      assert.are.equal(0, parse(stats({ paid = 0, balance = 0, immature = 0.05 })).paid)
    end)

    it("reads immature in coins and ignores networkSols sent as a string", function()
      local obs = parse(stats({ immature = 0.12345678, networkSols = "123456.789" }))
      assert.are.equal(0.12345678, obs.immature)
      assert.are.equal(10.5, obs.paid)
    end)

    it("fails on a bare {\"result\":\"error\"} without a message", function()
      local obs, reason = parse({ result = "error" })
      assert.is_nil(obs)
      assert.are.equal("pool error: no message", reason)
    end)

    it("fails with the pool's message on an error object", function()
      local obs, reason = parse({ result = "error", message = "Invalid wallet address" })
      assert.is_nil(obs)
      assert.are.equal("pool error: Invalid wallet address", reason)
      obs, reason = parse({ error = "busy" })
      assert.is_nil(obs)
      assert.are.equal("pool error: busy", reason)
    end)

    it("refuses a missing, null, malformed or negative paid", function()
      for _, bad in ipairs({ w.null, "ten", true, -1, "", { 1 } }) do
        local obs, reason = parse(stats({ paid = bad }))
        assert.is_nil(obs)
        assert.is_string(reason)
      end
      local body = stats()
      body.paid = nil
      assert.is_nil((parse(body)))
    end)

    it("leaves out malformed or negative informational fields", function()
      local obs = parse(stats({ balance = "n/a", immature = -1, totalHash = w.null,
                                totalShares = {} }))
      assert.are.same({ paid = 10.5 }, obs)
    end)

    it("refuses bodies that are not a JSON object", function()
      local obs, reason = pool.parse(w:response("<html>502</html>", { wallet = WALLET }))
      assert.is_nil(obs)
      assert.matches("not JSON", reason)
      assert.is_nil((parse("null")))
      assert.is_nil((parse('"text"')))
      assert.is_nil((parse("[]")))
      assert.is_nil((parse("12")))
    end)
  end)
end)
