"""Issue 12: an operator installs hostile pool scripts into a running engine.

An engine (players from a file, state in memory) polls the simulator with its own copies of
pools/ and scripts/. While it runs, pools/hostile.lua is saved with
1. a bytecode chunk behind a UTF-8 byte order mark: the reload is refused with
   "binary (bytecode) chunks are refused" (script_reload_failed);
2. a script whose loading recurses through string.gsub in C (which crashed the process with
   SIGSEGV before the C stack was bounded): refused with "C stack overflow";
3. a loadable pool whose parse runs a backtracking pattern (minutes of C before the matcher
   was charged to the budget): it is reloaded, every one of its polls is rejected with
   "instruction budget exceeded" and awards nothing.
Throughout, cpu-pool, rplant and zpool keep polling every account successfully, and the
engine exits cleanly at the end.
"""

import harness
from harness import check

PLAYERS = 2
POOLS = ("cpu-pool", "rplant", "zpool")

BOM_BYTECODE = b"\xef\xbb\xbf\x1bLJ\x02\x00garbage"

GSUB_RECURSION = """local function f() return ("x"):gsub(".", f) end
f()
return {}
"""

PATTERN_BOMB = """-- a pool whose parse backtracks: 2^40 steps for the stock matcher
return { currency = "ADVC",
  request = function(w) return { url = m2p.env("CPU_POOL_URL") .. "?" .. w } end,
  parse = function(r)
    local n = 40
    local s = ("a"):rep(n)
    s:find(("a?"):rep(n) .. ("a"):rep(n))
    return { paid = 1 }
  end }
"""


def wait_polls(eng, since, n, what, pools=POOLS, names=("pool_poll_success",)):
    def done(evs):
        for pool in pools:
            counts = harness.polls_per_account(evs[since:], pool, names)
            if len(counts) < PLAYERS or min(counts.values()) < n:
                return False
        return True
    eng.wait_until(done, timeout=30, what=what)


def refused(eng, path, text, expected, what):
    mark = eng.count()
    if isinstance(text, bytes):
        with open(path, "wb") as f:
            f.write(text)
    else:
        harness.save_file(path, text)
    failed = eng.wait_for(lambda e: e["event"] in ("script_reload_failed", "script_reloaded"),
                          30, "script_reload_failed after saving %s" % what, since=mark)
    check(failed["event"] == "script_reload_failed", "%s was loaded: %s" % (what, failed["_raw"]))
    message = failed.get("message", "")
    check("hostile.lua" in message and expected in message,
          "script_reload_failed should say %r about hostile.lua (%s): %r"
          % (expected, what, message))
    wait_polls(eng, eng.count(), 2, "two polls of every account with %s on disk" % what)


def test_hostile_scripts_are_contained(ctx):
    sim = ctx.start_sim("--payout-interval", "5", "--seed", "12")
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    path = pools_dir + "/hostile.lua"
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100)
    eng = harness.start_engine_dirs(ctx, ["--accounts", ctx.accounts(PLAYERS)], settings,
                                    pools_dir, scripts_dir)
    wait_polls(eng, 0, 1, "the first polls")

    refused(eng, path, BOM_BYTECODE, "binary (bytecode) chunks are refused",
            "bytecode behind a byte order mark")
    refused(eng, path, GSUB_RECURSION, "C stack overflow", "a gsub recursion at load")

    mark = eng.count()
    harness.save_file(path, PATTERN_BOMB)
    reloaded = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"),
                            30, "script_reloaded with the pattern bomb", since=mark)
    check(reloaded["event"] == "script_reloaded", "the pattern bomb did not load: %s"
          % reloaded["_raw"])
    mark = eng.count()
    wait_polls(eng, mark, 2, "two rejected polls of the pattern bomb", pools=("hostile",),
               names=("pool_poll_rejected",))
    wait_polls(eng, eng.count(), 2, "two polls of every account next to the pattern bomb")

    events = eng.snapshot()
    hostile = harness.poll_ends(events[mark:], "hostile")
    check(all(e["event"] == "pool_poll_rejected" and "hostile.lua:7: instruction budget "
              "exceeded" in e.get("error", "") for e in hostile),
          "hostile polls: %s" % [e["_raw"] for e in hostile[:3]])
    check(not [e for e in events if e["event"] == "mining_reward_detected"
               and e.get("pool") == "hostile"], "the hostile pool awarded something")
    others = [e for e in harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
              if e.get("pool") != "hostile"]
    check(not others, "other pools' polls failed: %s" % [e["_raw"] for e in others[:3]])
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
