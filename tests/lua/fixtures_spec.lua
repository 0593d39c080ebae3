-- Every --script-test fixture, replayed through engine/script/pipeline.lua (the engine's own
-- contract checks) with dkjson standing in for cJSON. A quick pre-check that runs with the
-- Lua specs; `m2p-engine --script-test tests/fixtures` remains the authority.
local helper = require("tests.lua.helper")

local POOLS = { "cpu-pool", "rplant", "zpool" }

describe("fixtures through engine/script/pipeline.lua", function()
  for _, pool in ipairs(POOLS) do
    local files = helper.list("tests/fixtures/" .. pool, "json")

    it(pool .. " has at least 12 cases", function()
      assert.is_true(#files >= 12, pool .. " has " .. #files .. " fixtures")
    end)

    for _, file in ipairs(files) do
      it(file, function()
        local failures = helper.run_fixture(file)
        assert.are.same({}, failures)
      end)
    end
  end

  it("examples/newpool.fixture.json (with --pools examples)", function()
    assert.are.same({}, helper.run_fixture("examples/newpool.fixture.json",
                                           { pools_dir = "examples" }))
  end)

  it("reports a wrong expectation (the runner is not a rubber stamp)", function()
    local tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    f:write([[{"name": "wrong on purpose", "pool": "cpu-pool",
      "wallet": "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY",
      "steps": [
        {"response": {"status": 200, "body": {"miner": "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY", "paid": 1}},
         "expect": {"request": {"url": "http://cpu-pool.com/api/worker_stats?addr=AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY"},
                    "reward": {"advc": 1, "ap": 100}}},
        {"response": {"status": 500, "body": "<html></html>"},
         "expect": {"error": "HTTP 404"}},
        {"response": {"status": 200, "body": {"miner": "AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY", "paid": 2}},
         "expect": {"observation": {"paid": 3}, "reward": null}}]}]])
    f:close()
    local failures = helper.run_fixture(tmp)
    os.remove(tmp)
    assert.are.equal(5, #failures)
    assert.matches("step 1: request url", failures[1])
    assert.matches("step 1: expected a reward", failures[2])
    assert.matches("step 2: error", failures[3])
    assert.matches("step 3: observation.paid", failures[4])
    assert.matches("step 3: expected no reward", failures[5])
  end)
end)
