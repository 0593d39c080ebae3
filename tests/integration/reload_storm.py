"""Issue 5: a storm of saves is a handful of reloads at most, and costs nothing.

An engine (players from a file, state in memory) polls the simulator with its own copies of
pools/ and scripts/; a third of the requests are answered 0.4 s late, so polls are in flight
(holding the generation they started with) whenever a reload swaps in a new one.

- test_save_storm: scripts/convert.lua is saved 100 times in about a second, each time with a
  different comment (in place and by rename, alternately). That is at most 5 reloads (one is
  expected: the burst is debounced), the generation finally loaded is the one of the last
  save (its rules_generation equals the one a single save of the same content gives), polls
  go on during and after the storm, and at SIGTERM the engine exits 0: with the ASan build,
  LeakSanitizer fails the exit status on any leaked generation.
- test_sighup_storm: 30 SIGHUPs in a row (each one a full reload, not debounced) while polls
  are in flight, same checks: every reload succeeds, polling goes on, clean exit.
"""

import signal
import time

import harness
from harness import check

PLAYERS = 4
POOLS = ("cpu-pool", "rplant", "zpool")


def start(ctx):
    sim = ctx.start_sim("--payout-interval", "3", "--seed", "13")
    for pool in POOLS:
        sim.fault(pool, "latency", ms=400, rate=0.33)
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100)
    eng = harness.start_engine_dirs(ctx, ["--accounts", ctx.accounts(PLAYERS)], settings,
                                    pools_dir, scripts_dir)
    wait_polls(eng, 0, 2, "the baselines")
    return sim, eng, pools_dir, scripts_dir


def wait_polls(eng, since, n, what):
    def done(evs):
        for pool in POOLS:
            counts = harness.polls_per_account(evs[since:], pool, ["pool_poll_success"])
            if len(counts) < PLAYERS or min(counts.values()) < n:
                return False
        return True
    eng.wait_until(done, timeout=60, what=what)


def reload_events(eng, since):
    return [e for e in eng.snapshot()[since:]
            if e["event"] in ("script_reloaded", "script_reload_failed")]


def wait_quiet_reloads(eng, since, quiet=2.0, timeout=60):
    """Waits until the engine has logged at least one reload after `since` and then none for
    `quiet` seconds (the debounce is 0.3 s); returns the reload events."""
    deadline = time.monotonic() + timeout
    eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"), timeout,
                 "a reload", since=since)
    n = len(reload_events(eng, since))
    settled = time.monotonic()
    while time.monotonic() - settled < quiet:
        check(time.monotonic() < deadline, "reloads did not stop within %d s" % timeout)
        check(eng.proc.poll() is None, "the engine exited (status %s)" % eng.proc.returncode)
        time.sleep(0.1)
        m = len(reload_events(eng, since))
        if m != n:
            n, settled = m, time.monotonic()
    return reload_events(eng, since)


def finish(eng, since, what):
    """Polling goes on, nothing failed but the latency faults' slowness, exit 0 (no leak)."""
    wait_polls(eng, since, 2, "two polls of every account after %s" % what)
    events = eng.snapshot()
    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % [e["_raw"] for e in failures[:5]])
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def test_save_storm(ctx):
    sim, eng, pools_dir, scripts_dir = start(ctx)
    path = scripts_dir + "/convert.lua"
    original = harness.read_text(path)
    mark = eng.count()
    started = time.monotonic()
    for i in range(100):
        harness.save_file(path, original + "\n-- storm save %d\n" % i,
                          how="write" if i % 2 == 0 else "rename")
        # spread the 100 saves over about a second
        delay = started + (i + 1) * 0.01 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    final = original + "\n-- storm save 99\n"
    harness.note("100 saves in %.2f s" % (time.monotonic() - started))
    reloads = wait_quiet_reloads(eng, mark)
    ok = [e for e in reloads if e["event"] == "script_reloaded"]
    harness.note("reloads after the storm: %s" % [e["_raw"] for e in reloads])
    check(ok, "no script_reloaded after the storm: %s" % [e["_raw"] for e in reloads])
    check(len(reloads) <= 5, "%d reloads for one burst of saves (at most 5 expected): %s"
          % (len(reloads), [e["_raw"] for e in reloads]))
    check(reloads[-1]["event"] == "script_reloaded", "the last reload failed: %s"
          % reloads[-1]["_raw"])
    storm_generation = reloads[-1]["rules_generation"]
    first_reload = eng.snapshot().index(reloads[0])
    during = harness.poll_ends(eng.snapshot()[mark:first_reload])
    check(during, "no poll ended during the storm")

    # the generation loaded last is the last save's: the same content saved once gives it
    mark2 = eng.count()
    harness.save_file(path, original)
    back = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"), 30,
                        "the reload of the original convert.lua", since=mark2)
    check(back["event"] == "script_reloaded", "reload failed: %s" % back["_raw"])
    mark2 = eng.count()
    harness.save_file(path, final)
    again = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"), 30,
                         "the reload of the storm's last content", since=mark2)
    check(again["event"] == "script_reloaded", "reload failed: %s" % again["_raw"])
    check(again["rules_generation"] == storm_generation,
          "the storm ended on rules_generation %s, but its last save's content is %s: the "
          "engine did not load the last save" % (storm_generation, again["rules_generation"]))
    check(back["rules_generation"] != storm_generation,
          "restoring the original convert.lua did not change rules_generation")
    finish(eng, eng.count(), "the storm")


def test_sighup_storm(ctx):
    sim, eng, pools_dir, scripts_dir = start(ctx)
    mark = eng.count()
    for _ in range(30):
        eng.send_signal(signal.SIGHUP)
        time.sleep(0.02)
    reloads = wait_quiet_reloads(eng, mark)
    harness.note("%d reloads for 30 SIGHUPs" % len(reloads))
    bad = [e["_raw"] for e in reloads
           if e["event"] != "script_reloaded" or e.get("trigger") != "SIGHUP"]
    check(not bad, "reloads that failed or were not SIGHUP's: %s" % bad[:3])
    check(1 <= len(reloads) <= 30, "%d reloads for 30 SIGHUPs" % len(reloads))
    finish(eng, eng.count(), "30 SIGHUPs")


harness.main(globals())
