"""Issue 3, item 1: every account is polled once per interval (within the jitter).

Counts the polls of every (player, pool) account over a --dry-run of a few intervals, using
the engine's debug log (one poll-end event per poll) and the simulator's request log. The
window is measured with the engine's own log timestamps, so a slow machine changes nothing:
each account must have been polled between floor(E/I) - 1 and ceil(E/I) + 1 times, where E is
the time from engine_started to shutdown_requested and I the poll interval.
"""

import math
import time

import harness
from harness import check

INTERVAL = 2
PLAYERS = 15
POOLS = ("cpu-pool", "rplant", "zpool")


def test_every_account_once_per_interval(ctx):
    sim = ctx.start_sim("--payout-interval", "5")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=INTERVAL, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS)], settings)

    for pool in POOLS:
        sched = eng.wait_for(lambda e: e["event"] == "pool_schedule" and e["pool"] == pool,
                             timeout=30, what="pool_schedule for %s" % pool)
        check(sched["accounts"] == PLAYERS,
              "%s: pool_schedule says %s accounts, expected %d" % (pool, sched["accounts"], PLAYERS))
        check(sched["effective_interval_seconds"] == INTERVAL,
              "%s: effective interval %s, expected %d (limits must not stretch it here)"
              % (pool, sched["effective_interval_seconds"], INTERVAL))

    # Every account has been polled once: the first cycle is done.
    eng.wait_until(lambda evs: all(len(harness.polls_per_account(evs, p)) == PLAYERS
                                   for p in POOLS),
                   timeout=30, what="a first poll of every account")
    time.sleep(4 * INTERVAL + 1)
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    events = eng.snapshot()
    check(eng.named("engine_stopped"), "no engine_stopped event")
    elapsed = harness.run_window(events)

    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed against a healthy simulator: %s" % failures[:3])

    for pool in POOLS:
        counts = harness.check_cadence(events, pool, range(1, PLAYERS + 1), INTERVAL, elapsed)
        check(len(counts) == PLAYERS, "%s: polled players %s" % (pool, sorted(counts)))
        # The simulator saw exactly the requests the engine reports as polls.
        at_sim = int(sim.requests(pool)["total"])
        check(at_sim == sum(counts.values()),
              "%s: the simulator received %d requests but the engine logged %d polls"
              % (pool, at_sim, sum(counts.values())))

    cycles = eng.named("polling_cycle_complete")
    check(cycles, "no polling_cycle_complete event in %.1f s" % elapsed)
    check(len(cycles) <= math.ceil(elapsed / INTERVAL) + 1,
          "%d polling_cycle_complete events in %.1f s at a %d s interval"
          % (len(cycles), elapsed, INTERVAL))
    for c in cycles:
        check(c["player_count"] == PLAYERS,
              "polling_cycle_complete player_count %s, expected %d" % (c["player_count"], PLAYERS))
        check(c["failures"] == 0, "polling_cycle_complete reports failures: %s" % c)


harness.main(globals())
