"""Issue 3, item 8: a run with many accounts completes (and, under build-asan, leaks nothing).

10,000 players x 3 pools = 30,000 polls in one --once cycle, with rplant answering HTTP 500
to a fifth of its requests. The pool scripts are the shipped ones with high concurrency and
no per_second limit (the limits are tested in pool_limits.py), so the cycle is quick.

Checked: exit status 0 (a pool that fails only for some accounts has not failed entirely;
under AddressSanitizer a leak report at exit would make it non-zero), exactly one request
per account at the simulator, rplant's failures equal the faults the simulator served, every
other poll succeeded, and nothing is awarded in a first cycle (it is the baseline).
"""

import harness
from harness import check

PLAYERS = 10000
LIMITS = "{ concurrency = 200 }"
FAULTY = "rplant"
RATE = 0.2


def test_ten_thousand_accounts_once(ctx):
    pools = ctx.pools_dir({name + ".lua": harness.shipped_pool(name, LIMITS)
                           for name in ("cpu-pool", "rplant", "zpool")})
    sim = ctx.start_sim("--payout-interval", "30", "--quiet")
    sim.fault(FAULTY, "status", code=500, rate=RATE)
    rc, events, out, err = ctx.run_engine(
        ["--once", "--accounts", ctx.accounts(PLAYERS)],
        dict(sim.pool_env(), LOG_LEVEL="info", POOL_REQUEST_TIMEOUT=30),
        pools_dir=pools, timeout=240)
    check(rc == 0, "--once with %d players exited %d (a sanitizer report, if any, is below)\n%s"
          % (PLAYERS, rc, err[-4000:]))

    stats = sim.stats()
    for pool in ("cpu-pool", "rplant", "zpool"):
        check(int(stats[pool]["requests"]) == PLAYERS,
              "%s: the simulator got %s requests for %d accounts"
              % (pool, stats[pool]["requests"], PLAYERS))
    served = int(stats[FAULTY]["by_fault"].get("status", 0))
    harness.note("%s: %d of %d requests answered 500" % (FAULTY, served, PLAYERS))
    check(0.1 * PLAYERS < served < 0.3 * PLAYERS,
          "the simulator served %d faults at rate %g" % (served, RATE))

    failed = [e for e in events if e["event"] in harness.POLL_FAILURE_EVENTS]
    wrong = [e for e in failed if e.get("pool") != FAULTY or e.get("status") != 500]
    check(not wrong, "unexpected failures: %s" % wrong[:3])
    check(len(failed) == served,
          "%s: %d failed polls logged, the simulator answered %d with 500"
          % (FAULTY, len(failed), served))
    check(not [e for e in events if e["event"] == "mining_reward_detected"],
          "a first (baseline) cycle awarded something")

    done = [e for e in events if e["event"] == "single_cycle_complete"]
    check(len(done) == 1, "expected one single_cycle_complete event, got %d" % len(done))
    m = done[0]["metrics"]
    check(done[0]["accounts"] == 3 * PLAYERS, "accounts %s" % done[0]["accounts"])
    check(m["polls_total"] == 3 * PLAYERS, "polls_total %s, expected %d"
          % (m["polls_total"], 3 * PLAYERS))
    check(m["polls_successful"] == 3 * PLAYERS - served,
          "polls_successful %s, expected %d" % (m["polls_successful"], 3 * PLAYERS - served))
    check(m["pools"][FAULTY]["failures"] == served,
          "%s: %s, the simulator served %d faults" % (FAULTY, m["pools"][FAULTY], served))


harness.main(globals())
