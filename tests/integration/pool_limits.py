"""Issue 3, item 3: per-pool limits hold, measured at the simulator.

The pool scripts are the shipped ones copied into a temporary pools directory with their
`limits` replaced, so the real request/parse code runs. Rates are checked on the simulator's
request arrival times (its own monotonic clock) as upper bounds: in every window of w seconds
a pool with per_second = r gets at most r*w + burst requests (burst = the token bucket's
capacity, max(1, r), plus one for arrival jitter). A slow machine can only lower a rate, so
these bounds hold anywhere; the lower bounds below (a limited --once run must take at least
(n - burst) / r seconds) hold for the same reason.
"""

import time

import harness
from harness import check


def check_rate(times_ms, per_second, what):
    """At most per_second * w + burst arrivals in every window [t_i, t_j]."""
    burst = max(1.0, per_second) + 1
    times = sorted(int(t) for t in times_ms)
    worst = None
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = per_second * (times[j] - times[i]) / 1000.0 + burst
            if j - i + 1 > allowed and (worst is None or j - i + 1 - allowed > worst[0]):
                worst = (j - i + 1 - allowed, j - i + 1, times[j] - times[i])
    check(worst is None,
          "%s: %d requests arrived within %d ms, more than %.1f/s allows (+%g burst)"
          % (what, worst[1] if worst else 0, worst[2] if worst else 0, per_second, burst))
    if len(times) > 1:
        span = (times[-1] - times[0]) / 1000.0
        harness.note("%s: %d requests over %.2f s (%.2f/s; limit %g/s)"
                     % (what, len(times), span, (len(times) - 1) / span if span else 0,
                        per_second))


def test_once_rate_and_concurrency(ctx):
    """--once makes every account due at once: the token bucket and the concurrency cap are
    what spreads the requests."""
    players = 18
    per_second = 3
    latency_ms = 300
    pools = ctx.pools_dir({
        "cpu-pool.lua": harness.shipped_pool(
            "cpu-pool", "{ concurrency = 1, per_second = %d }" % per_second),
        "rplant.lua": harness.shipped_pool("rplant", "{ concurrency = 1 }"),
    })
    sim = ctx.start_sim("--payout-interval", "5")
    sim.fault("rplant", "latency", ms=latency_ms)
    rc, events, out, err = ctx.run_engine(
        ["--once", "--accounts", ctx.accounts(players, zpool=False)],
        dict(sim.pool_env(), LOG_LEVEL="debug"), pools_dir=pools, timeout=60)
    check(rc == 0, "--once exited with %d: %s" % (rc, err[-2000:]))
    done = [e for e in events if e["event"] == "single_cycle_complete"]
    check(done, "no single_cycle_complete event")
    metrics = done[0]["metrics"]
    check(metrics["polls_total"] == 2 * players and metrics["polls_successful"] == 2 * players,
          "expected %d successful polls, got %s" % (2 * players, metrics))

    cpu = sim.requests("cpu-pool")["times"]
    check(len(cpu) == players, "cpu-pool: %d requests at the simulator, expected %d"
          % (len(cpu), players))
    check_rate(cpu, per_second, "cpu-pool (per_second = %d)" % per_second)
    span = (max(cpu) - min(cpu)) / 1000.0
    minimum = (players - (max(1, per_second) + 1)) / per_second
    check(span >= minimum,
          "cpu-pool: %d requests took only %.2f s; at %d/s they need at least %.2f s"
          % (players, span, per_second, minimum))

    rplant = sorted(int(t) for t in sim.requests("rplant")["times"])
    check(len(rplant) == players, "rplant: %d requests at the simulator, expected %d"
          % (len(rplant), players))
    gaps = [b - a for a, b in zip(rplant, rplant[1:])]
    harness.note("rplant: smallest gap between requests %d ms (each is held %d ms)"
                 % (min(gaps), latency_ms))
    # concurrency = 1: a request starts only after the previous answer, which the simulator
    # holds for latency_ms. (ms truncation of the arrival times: 2 ms of slack.)
    check(min(gaps) >= latency_ms - 2,
          "rplant (concurrency = 1): two requests arrived %d ms apart while each answer takes "
          "%d ms: they overlapped" % (min(gaps), latency_ms))


def test_dry_run_rate_and_zpool_default(ctx):
    """In a running engine a per_second limit stretches the pool's cycle instead of bursting,
    and the shipped zpool script's default (1 request per 65 s) holds."""
    players = 24
    per_second = 4
    interval = 2
    pools = ctx.pools_dir({
        "cpu-pool.lua": harness.shipped_pool(
            "cpu-pool", "{ concurrency = 1, per_second = %d }" % per_second),
        "zpool.lua": harness.shipped_pool("zpool"),
    })
    sim = ctx.start_sim("--payout-interval", "5", "--zpool-rate-limit", "60")
    settings = dict(sim.pool_env(), LOG_LEVEL="debug", POLL_INTERVAL_SECONDS=interval)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(players)], settings,
                           pools_dir=pools)
    schedules = {}
    for pool in ("cpu-pool", "zpool"):
        schedules[pool] = eng.wait_for(
            lambda e: e["event"] == "pool_schedule" and e["pool"] == pool,
            timeout=30, what="pool_schedule for %s" % pool)
    stretched = players / per_second
    check(abs(schedules["cpu-pool"]["effective_interval_seconds"] - stretched) < 1e-9,
          "cpu-pool: effective interval %s, expected %d accounts / %d per second = %g s"
          % (schedules["cpu-pool"]["effective_interval_seconds"], players, per_second, stretched))
    check(abs(schedules["zpool"]["effective_interval_seconds"] - players * 65) < 1e-6,
          "zpool: effective interval %s, expected %d accounts x 65 s"
          % (schedules["zpool"]["effective_interval_seconds"], players))

    # One whole cpu-pool cycle, and a bit more.
    eng.wait_until(lambda evs: len(harness.polls_per_account(evs, "cpu-pool")) == players,
                   timeout=40, what="a poll of every cpu-pool account")
    time.sleep(interval)
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    cpu = sim.requests("cpu-pool")["times"]
    check_rate(cpu, per_second, "cpu-pool (per_second = %d)" % per_second)
    # Its 24 accounts are spread over 24 x 65 s: at most one of them comes due in this run.
    zpool = sim.requests("zpool")
    check(int(zpool["total"]) <= 1,
          "zpool (shipped limit: one request per 65 s) got %s requests in %.0f s"
          % (zpool["total"], harness.run_window(eng.snapshot())))
    check(int(sim.stats()["zpool"]["rate_limited"]) == 0,
          "the simulated YiiMP rate limiter refused zpool requests")
    failures = harness.poll_ends(eng.snapshot(), names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % failures[:3])


harness.main(globals())
