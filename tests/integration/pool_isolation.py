"""Issue 3, item 2: a pool returning 500s, timeouts or garbage does not delay other pools.

One pool of the simulator is made to fail while the engine polls all three; the healthy
pools must keep their cadence exactly as in poll_interval.py (every account polled once per
interval over the run, by the engine's own clock), with no failed poll, and the simulator
must have received exactly the requests the engine reports. All pools share one simulator
(one host), so this is stricter than production, where pools are different hosts.
"""

import time

import harness
from harness import check

INTERVAL = 2
PLAYERS = 15
POOLS = ("cpu-pool", "rplant", "zpool")


def run_with_failing_pool(ctx, sim, failing, extra_settings=None):
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=INTERVAL, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100, POOL_REQUEST_TIMEOUT=1.5)
    settings.update(extra_settings or {})
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS)], settings)
    healthy = [p for p in POOLS if p != failing]
    eng.wait_until(lambda evs: all(len(harness.polls_per_account(evs, p)) == PLAYERS
                                   for p in healthy),
                   timeout=30, what="a first poll of every healthy account")
    time.sleep(4 * INTERVAL + 1)
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    events = eng.snapshot()
    check(eng.named("engine_stopped"), "no engine_stopped event")
    elapsed = harness.run_window(events)
    for pool in healthy:
        failures = harness.poll_ends(events, pool, harness.POLL_FAILURE_EVENTS)
        check(not failures, "%s (healthy) had failed polls: %s" % (pool, failures[:3]))
        counts = harness.check_cadence(events, pool, range(1, PLAYERS + 1), INTERVAL, elapsed)
        at_sim = int(sim.requests(pool)["total"])
        check(at_sim == sum(counts.values()),
              "%s: the simulator received %d requests but the engine logged %d polls"
              % (pool, at_sim, sum(counts.values())))
    return events


def test_500s_timeouts_and_garbage(ctx):
    """cpu-pool answers, in this order: 3 hanging requests (timeouts), 3 HTTP 500, 3 HTML
    pages, 3 truncated JSON bodies, then an empty body half of the time."""
    sim = ctx.start_sim("--payout-interval", "5")
    sim.fault("cpu-pool", "timeout", count=3)
    sim.fault("cpu-pool", "status", code=500, count=3)
    sim.fault("cpu-pool", "html", count=3)
    sim.fault("cpu-pool", "truncated", count=3)
    sim.fault("cpu-pool", "empty", rate=0.5)
    events = run_with_failing_pool(ctx, sim, "cpu-pool")

    by_fault = sim.stats()["cpu-pool"]["by_fault"]
    for kind in ("timeout", "status", "html", "truncated"):
        check(int(by_fault.get(kind, 0)) == 3,
              "the simulator served %s cpu-pool %s faults, expected 3" % (by_fault.get(kind), kind))
    cpu = [e for e in events if e.get("pool") == "cpu-pool"]
    timeouts = [e for e in cpu if e["event"] == "pool_poll_timeout"]
    http500 = [e for e in cpu if e["event"] == "pool_poll_http_error" and e.get("status") == 500]
    rejected = [e for e in cpu if e["event"] == "pool_poll_rejected"]
    check(len(timeouts) == 3, "expected 3 pool_poll_timeout for cpu-pool, got %d" % len(timeouts))
    check(len(http500) == 3, "expected 3 HTTP 500 errors for cpu-pool, got %d" % len(http500))
    garbage = 6 + int(by_fault.get("empty", 0))
    check(len(rejected) == garbage,
          "expected %d rejected cpu-pool polls (garbage), got %d" % (garbage, len(rejected)))
    at_sim = int(sim.requests("cpu-pool")["total"])
    ends = harness.poll_ends(events, "cpu-pool")
    check(at_sim == len(ends),
          "cpu-pool: the simulator received %d requests but the engine logged %d poll ends"
          % (at_sim, len(ends)))


def test_hanging_pool(ctx):
    """Every rplant request hangs until the engine's request timeout: its connections stay
    busy (up to its concurrency) for the whole run."""
    sim = ctx.start_sim("--payout-interval", "5")
    sim.fault("rplant", "timeout")
    events = run_with_failing_pool(ctx, sim, "rplant")
    rplant = harness.poll_ends(events, "rplant")
    check(rplant, "rplant was never polled")
    kinds = {e["event"] for e in rplant}
    check(kinds == {"pool_poll_timeout"}, "rplant polls ended with %s, expected only timeouts"
          % sorted(kinds))
    at_sim = int(sim.requests("rplant")["total"])
    check(at_sim == len(rplant),
          "rplant: the simulator received %d requests but the engine logged %d poll ends"
          % (at_sim, len(rplant)))


def test_pool_answering_503_with_retry_after(ctx):
    """zpool answers 503 with Retry-After: 30; it is paused, the other pools are not."""
    sim = ctx.start_sim("--payout-interval", "5")
    sim.fault("zpool", "status", code=503, retry_after=30)
    events = run_with_failing_pool(ctx, sim, "zpool")
    zpool = harness.poll_ends(events, "zpool")
    check(zpool, "zpool was never polled")
    check(all(e["event"] == "pool_poll_http_error" and e.get("status") == 503 for e in zpool),
          "zpool polls did not all end in HTTP 503: %s" % zpool[:3])
    # zpool runs one request at a time (limits.concurrency = 1), and the first answer pauses
    # the whole pool for longer than the run: exactly one request.
    check(len(zpool) == 1,
          "zpool was polled %d times although its first answer asked for a 30 s pause"
          % len(zpool))
    check(int(sim.requests("zpool")["total"]) == 1, "the simulator saw %s zpool requests"
          % sim.requests("zpool")["total"])


harness.main(globals())
