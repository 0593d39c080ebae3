"""Issue 3, item 4: backoff and circuit breaking recover when the fault is removed.

Two pools fail for a few seconds, then heal:

- rplant answers 503 (a pool failure): after 10 consecutive failures its circuit breaker
  opens and only single probes go out (5 s, then 10 s, 20 s ... apart);
- cpu-pool answers HTML pages (a per-account failure, which does not open the breaker):
  each account backs off exponentially (interval x 1, 2, 4, 8, 16, x0.75..1.25 jitter).

Checked: during the fault each pool's request count stays under what the breaker/backoff
allows for the (measured, upper-bounded) fault duration, well under the healthy rate; after
the fault is cleared every account of both pools succeeds again, and keeps being polled.
The bounds are upper bounds derived from the fault duration as seen from outside (which only
grows on a slow machine), so they cannot fail because a machine is slow.
"""

import time

import harness
from harness import check

INTERVAL = 1
PLAYERS = 10
BREAKER_THRESHOLD = 10      # SCHED_BREAKER_THRESHOLD
FIRST_PROBE_DELAY = 5.0     # SCHED_BREAKER_PROBE_MIN
RPLANT_CONCURRENCY = 8      # pools/rplant.lua
FAULT_SECONDS = 8
RECOVERY_TIMEOUT = 40       # generous: next probe <= 20 s, longest backoff <= 20 s


def max_backoff_failures(duration, interval):
    """Most failed polls one account can have within `duration` seconds when its retries are
    delayed by at least 0.75 x interval x 2^min(k-1, 4) after its k-th failure."""
    n, elapsed = 1, 0.0
    while True:
        elapsed += 0.75 * interval * 2 ** min(n - 1, 4)
        if elapsed > duration:
            return n
        n += 1


def max_probes(duration):
    """Breaker probes within `duration` seconds of opening: at 5, 15, 35, ... seconds."""
    n, at, delay = 0, 0.0, FIRST_PROBE_DELAY
    while at + delay <= duration:
        at += delay
        delay = min(delay * 2, 300.0)
        n += 1
    return n


def test_breaker_and_backoff_recover(ctx):
    sim = ctx.start_sim("--payout-interval", "5")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=INTERVAL, LOG_LEVEL="debug",
                    ZPOOL_ENABLED="false")
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)],
                           settings)
    pools = ("cpu-pool", "rplant")
    eng.wait_until(lambda evs: all(
        len(harness.polls_per_account(evs, p, ["pool_poll_success"])) == PLAYERS for p in pools),
        timeout=30, what="a first successful poll of every account")

    # Healthy rate, for the record and as the reference the faulted rates are compared with.
    t0 = sim.now_ms()
    time.sleep(3)
    healthy = {p: len(sim.requests(p, since_ms=t0)["times"]) / ((sim.now_ms() - t0) / 1000.0)
               for p in pools}
    harness.note("healthy request rates: %s" % {p: round(r, 2) for p, r in healthy.items()})

    # ---- the fault
    fault_index = eng.count()
    started = time.monotonic()
    sim.fault("rplant", "status", code=503)
    sim.fault("cpu-pool", "html")
    time.sleep(FAULT_SECONDS)
    sim.clear_faults()
    duration = time.monotonic() - started   # >= how long the simulator served the faults
    clear_index = eng.count()

    during = eng.snapshot()[fault_index:]
    # rplant: the breaker lets BREAKER_THRESHOLD failures through (plus what was already in
    # flight when it opened), then one probe at a time.
    failed_503 = [e for e in during if e.get("pool") == "rplant"
                  and e["event"] == "pool_poll_http_error" and e.get("status") == 503]
    rplant_bound = BREAKER_THRESHOLD + (RPLANT_CONCURRENCY - 1) + max_probes(duration)
    harness.note("rplant: %d requests answered 503 in %.1f s (bound %d, healthy rate %.1f/s)"
                 % (len(failed_503), duration, rplant_bound, healthy["rplant"]))
    check(failed_503, "rplant: no 503 was seen during the fault")
    check(len(failed_503) <= rplant_bound,
          "rplant: %d requests failed with 503 within %.1f s; an open circuit breaker allows "
          "at most %d" % (len(failed_503), duration, rplant_bound))
    check(rplant_bound < healthy["rplant"] * FAULT_SECONDS / 2,
          "test is not meaningful: the breaker bound %d is close to the healthy count %.0f"
          % (rplant_bound, healthy["rplant"] * FAULT_SECONDS))

    # cpu-pool: per-account exponential backoff.
    rejected = harness.polls_per_account(during, "cpu-pool", ["pool_poll_rejected"])
    per_account_bound = max_backoff_failures(duration, INTERVAL)
    harness.note("cpu-pool: failed polls per account %s in %.1f s (bound %d each, healthy %.1f)"
                 % (sorted(rejected.values()), duration, per_account_bound,
                    healthy["cpu-pool"] / PLAYERS * duration))
    check(len(rejected) == PLAYERS,
          "cpu-pool: only players %s saw the fault" % sorted(rejected))
    over = {p: n for p, n in rejected.items() if n > per_account_bound}
    check(not over,
          "cpu-pool: accounts polled more often than exponential backoff allows within %.1f s "
          "(at most %d failed polls each): %s" % (duration, per_account_bound, over))
    check(per_account_bound < FAULT_SECONDS / INTERVAL,
          "test is not meaningful: backoff bound %d >= polls without backoff" % per_account_bound)

    # ---- recovery: every account succeeds again, then keeps being polled
    def successes_after_clear(evs, pool):
        return harness.polls_per_account(evs[clear_index:], pool, ["pool_poll_success"])

    cleared = time.monotonic()
    eng.wait_until(lambda evs: all(len(successes_after_clear(evs, p)) == PLAYERS for p in pools),
                   timeout=RECOVERY_TIMEOUT,
                   what="a successful poll of every account after the fault was cleared")
    harness.note("every account succeeded again %.1f s after the clear"
                 % (time.monotonic() - cleared))
    eng.wait_until(lambda evs: all(min(successes_after_clear(evs, p).values()) >= 3
                                   for p in pools),
                   timeout=RECOVERY_TIMEOUT,
                   what="three successful polls of every account after the fault was cleared")

    rc = eng.stop()
    eng.expect_clean_exit(rc)
    after = eng.snapshot()[clear_index:]
    late = [e for e in after if e["event"] in harness.POLL_FAILURE_EVENTS]
    # Requests in flight at the clear may still fail; nothing after them.
    check(len(late) <= RPLANT_CONCURRENCY + PLAYERS,
          "%d polls failed after the fault was cleared: %s" % (len(late), late[:3]))


def test_retry_after_pauses_the_pool_then_resumes(ctx):
    """One 503 with Retry-After: 4 pauses the whole pool for 4 s (only requests already in
    flight arrive meanwhile), then every account is polled again."""
    pause = 4
    sim = ctx.start_sim("--payout-interval", "5")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=INTERVAL, LOG_LEVEL="debug",
                    ZPOOL_ENABLED="false", CPU_POOL_ENABLED="false")
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)],
                           settings)
    eng.wait_until(lambda evs: len(harness.polls_per_account(evs, "rplant",
                                                             ["pool_poll_success"])) == PLAYERS,
                   timeout=30, what="a first successful poll of every rplant account")
    since = sim.now_ms()
    sim.fault("rplant", "status", code=503, retry_after=pause, count=1)
    paused = eng.wait_for(lambda e: e["event"] == "pool_poll_http_error"
                          and e.get("status") == 503, timeout=30, what="the 503")
    check(paused.get("retry_after") == pause, "the 503 was logged without retry_after: %s"
          % paused["_raw"])
    resumed = eng.count()
    eng.wait_until(lambda evs: len(harness.polls_per_account(
        evs[resumed:], "rplant", ["pool_poll_success"])) == PLAYERS,
        timeout=pause + RECOVERY_TIMEOUT, what="every rplant account polled after the pause")
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    # The 503 is the first request that arrived after the fault was added; `first`, the first
    # arrival after `since`, is that one or (rarely) one of the few in the instant before.
    # Either way the pause lasts until at least first + pause: what arrives before that was
    # in flight when the 503 came back (at most concurrency - 1) or came before the 503.
    times = sorted(int(t) for t in sim.requests("rplant", since_ms=since)["times"])
    first = times[0]
    during = [t for t in times[1:] if t < first + pause * 1000 - 50]
    allowed = RPLANT_CONCURRENCY - 1 + 2
    harness.note("rplant: %d requests arrived during the %d s pause (allowed %d; unpaused: "
                 "about %d)" % (len(during), pause, allowed, PLAYERS * pause / INTERVAL))
    check(len(during) <= allowed,
          "rplant got %d requests during its %d s Retry-After pause; at most %d may have been "
          "in flight" % (len(during), pause, allowed))


def test_breaker_recovers_after_a_probe_answered_with_garbage(ctx):
    """The breaker's probe can end in a per-account failure rather than a pool failure: here
    rplant is down (503) long enough to open the breaker, then answers its probe with an HTML
    page (HTTP 200, not an observation), then heals. The pool must be polled again."""
    sim = ctx.start_sim("--payout-interval", "5")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=INTERVAL, LOG_LEVEL="debug",
                    ZPOOL_ENABLED="false", CPU_POOL_ENABLED="false")
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)],
                           settings)
    eng.wait_until(lambda evs: len(harness.polls_per_account(evs, "rplant",
                                                             ["pool_poll_success"])) == PLAYERS,
                   timeout=30, what="a first successful poll of every rplant account")

    down = eng.count()
    sim.fault("rplant", "status", code=503)
    eng.wait_until(lambda evs: len([e for e in evs[down:] if e["event"] == "pool_poll_http_error"
                                    and e.get("status") == 503]) >= BREAKER_THRESHOLD,
                   timeout=30, what="%d failed polls (the breaker opens)" % BREAKER_THRESHOLD)
    # The breaker is open now: the next request is its probe. It gets an HTML page.
    sim.clear_faults("rplant")
    garbage = eng.count()
    sim.fault("rplant", "html")
    eng.wait_for(lambda e: e["event"] == "pool_poll_rejected" and e.get("pool") == "rplant",
                 since=garbage, timeout=FIRST_PROBE_DELAY + 20,
                 what="the breaker's probe (answered with an HTML page)")
    sim.clear_faults("rplant")
    healed = eng.count()
    requests_at_heal = int(sim.requests("rplant")["total"])
    try:
        eng.wait_until(lambda evs: len(harness.polls_per_account(
            evs[healed:], "rplant", ["pool_poll_success"])) == PLAYERS,
            timeout=RECOVERY_TIMEOUT,
            what="every rplant account polled successfully after the pool healed")
    except harness.TestFailure as e:
        harness.fail("%s: rplant got %d requests in the %d s after it healed. A breaker probe "
                     "that ends in a per-account failure (HTTP 200 but no observation) must "
                     "not leave the breaker half-open for ever."
                     % (e, int(sim.requests("rplant")["total"]) - requests_at_heal,
                        RECOVERY_TIMEOUT))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
