"""Issue 5: a broken pool script leaves the running generation untouched.

An engine (players from a file, state in memory) polls the simulator (manual clock) with its
own copies of pools/ and scripts/. While it runs, pools/rplant.lua is saved with
1. a syntax error (`local broken = = 1` on a known line), then
2. an error raised while the script loads (arithmetic on nil, on another known line),
and finally restored. Each broken save:
- is logged as `script_reload_failed` naming rplant.lua and the line, with no
  `script_reloaded`;
- leaves rplant polling with the version it had: every rplant account keeps being polled
  successfully, and payouts made meanwhile are awarded, exactly as the ledger says;
and the fix reloads (`script_reloaded`), after which everything keeps polling and awarding.
The counters `script_reload_failures` (2) and `script_reloads` (1) say the same.
"""

from decimal import Decimal

import harness
from harness import check

PLAYERS = 4
POOLS = ("cpu-pool", "rplant", "zpool")
BTC_TO_ADVC = Decimal(1000000)


def wallet_of(pid, pool):
    return harness.btc_wallet(pid) if pool == "zpool" else harness.advc_wallet(pid)


def ledger_advc(sim):
    out = {}
    for pid in range(1, PLAYERS + 1):
        for pool in POOLS:
            led = sim.ledger(pool, wallet_of(pid, pool))
            paid = Decimal(led["paid"])
            out[(pid, pool)] = paid * BTC_TO_ADVC if led["currency"] == "BTC" else paid
    return out


def awarded(eng, since=0):
    sums = {}
    for e in eng.named("mining_reward_detected", since):
        key = (e["player_id"], e["pool"])
        sums[key] = sums.get(key, Decimal(0)) + harness.decimal_field(e, "advc_amount")
    return sums


def wait_polls(eng, since, n, what, pools=POOLS):
    def done(evs):
        for pool in pools:
            counts = harness.polls_per_account(evs[since:], pool, ["pool_poll_success"])
            if len(counts) < PLAYERS or min(counts.values()) < n:
                return False
        return True
    eng.wait_until(done, timeout=60, what=what)


def wait_awards(eng, expected, what):
    """Waits until the awards logged add up to `expected` ({account: ADVC}) exactly."""
    def done(evs):
        got = awarded(eng)
        return all(got.get(a, Decimal(0)) == v for a, v in expected.items())
    try:
        eng.wait_until(done, timeout=30, what=what)
    except harness.TestFailure:
        got = awarded(eng)
        harness.fail("%s: (account, awarded, expected) %s" % (what, [
            (a, got.get(a), v) for a, v in sorted(expected.items()) if got.get(a) != v]))


def break_and_check(ctx, eng, sim, path, text, line, what, paid_before):
    """Saves the broken `text`; checks the failure is reported at `line` and that rplant keeps
    polling and awarding. Returns the ledger after this step's payouts."""
    mark = eng.count()
    harness.save_file(path, text)
    failed = eng.wait_for(lambda e: e["event"] == "script_reload_failed", 30,
                          "script_reload_failed after saving %s" % what, since=mark)
    message = failed.get("message", "")
    check("rplant.lua:%d:" % line in message,
          "script_reload_failed should name rplant.lua:%d (%s): %r" % (line, what, message))
    # the other failure lines of this reload (if any) are about rplant.lua too
    others = [e.get("message", "") for e in eng.named("script_reload_failed", mark)]
    check(all("rplant.lua" in m for m in others), "unexpected reload errors: %s" % others)

    # rplant keeps polling with the old version, and payouts are still awarded
    mark = eng.count()
    wait_polls(eng, mark, 2, "two polls of every account with the broken %s on disk" % what)
    sim.advance(25)
    wait_polls(eng, eng.count(), 2, "two polls of every account after the payouts (%s)" % what)
    paid = ledger_advc(sim)
    check(all(paid[(p, "rplant")] > paid_before[(p, "rplant")] for p in range(1, PLAYERS + 1)),
          "the simulator paid some rplant wallet nothing in this step")
    wait_awards(eng, paid, "awards to match the ledger while %s is on disk" % what)
    check(not eng.named("script_reloaded", mark), "a reload succeeded with %s on disk" % what)
    return paid


def test_broken_pool_keeps_the_old_version(ctx):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "7")
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    path = pools_dir + "/rplant.lua"
    original = harness.read_text(path)
    lines = original.split("\n")
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100)
    eng = harness.start_engine_dirs(ctx, ["--accounts", ctx.accounts(PLAYERS)], settings,
                                    pools_dir, scripts_dir)
    wait_polls(eng, 0, 2, "the baselines")
    paid = ledger_advc(sim)
    check(all(v == 0 for v in paid.values()), "the simulator paid something at time 0")

    # 1. a syntax error, inserted before the final `return pool`
    ret = max(i for i, l in enumerate(lines) if l.startswith("return "))
    broken = lines[:ret] + ["local broken = = 1"] + lines[ret:]
    paid = break_and_check(ctx, eng, sim, path, "\n".join(broken), ret + 1,
                           "a syntax error", paid)

    # 2. an error while the script loads, inserted after its first line
    broken = lines[:1] + ["local missing", "local boom = missing + 1"] + lines[1:]
    paid = break_and_check(ctx, eng, sim, path, "\n".join(broken), 3,
                           "an error at load", paid)

    # 3. the fix: the original file again
    mark = eng.count()
    harness.save_file(path, original)
    reloaded = eng.wait_for(lambda e: e["event"] in ("script_reloaded", "script_reload_failed"),
                            30, "script_reloaded after the fix", since=mark)
    check(reloaded["event"] == "script_reloaded", "the fixed file did not reload: %s"
          % reloaded["_raw"])
    check(reloaded.get("pools") == 3, "script_reloaded: %s" % reloaded["_raw"])
    mark = eng.count()
    sim.advance(25)
    wait_polls(eng, mark, 2, "two polls of every account after the fix")
    paid = ledger_advc(sim)
    wait_awards(eng, paid, "awards to match the ledger after the fix")

    events = eng.snapshot()
    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    check(not failures, "polls failed: %s" % [e["_raw"] for e in failures[:5]])
    eng.wait_until(lambda evs: any(e["event"] == "polling_cycle_complete"
                                   for e in evs[mark:]), 30, "a polling_cycle_complete")
    m = harness.last_metrics(eng)
    check(m.get("script_reloads") == 1 and m.get("script_reload_failures") == 2,
          "metrics: script_reloads %s, script_reload_failures %s (expected 1 and 2)"
          % (m.get("script_reloads"), m.get("script_reload_failures")))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
