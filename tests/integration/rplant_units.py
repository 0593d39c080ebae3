"""Issue 8, rplant's units: amounts in atomic units, divided by 10^div2 from /api/dash.

The simulator serves rplant like the real pool: walletEx amounts in atomic units of
10^-div2 coin (here div2 = 12, so nothing works by accident with the simulator's own 1e-8
units) and /api/dash with tbs.advc.info.div2. The engine fetches /api/dash as rplant's
metadata request (engine/poll/pool_metadata.c) and pools/rplant.lua divides by it.

- The awards equal the simulator's ledger exactly (to 1e-8) while the clock moves in steps,
  and /api/dash was asked once (its refresh is an hour).
- The first /api/dash answer is slow: the first polls wait for it instead of failing for
  want of units, in the service and in --once.
- With /api/dash failing, rplant's polls fail with a reason that says so and nothing is
  awarded although the pool pays; once /api/dash answers again (the engine retries with
  backoff), polling resumes and the awards again equal the ledger from the first good
  observation on (the baseline, as for any new account).
- A reload keeps the last good /api/dash answer when the metadata URL is unchanged, and
  fetches again at once when it changed.

Only rplant is loaded (a pools directory with the shipped rplant.lua alone).
"""

from decimal import Decimal

import harness
from harness import check

PLAYERS = 6
PAYOUT_INTERVAL = 10  # simulated seconds between two payouts of one wallet
DIV2 = 12
STEPS = (7, 12, 31, 3)
AP_PER_ADVC = Decimal(100)
Q = Decimal("0.00000001")


def start_sim(ctx):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", str(PAYOUT_INTERVAL),
                        "--seed", "8", "--rplant-div2", str(DIV2))
    sim.advance(5)
    return sim


def settings(sim):
    return dict(RPLANT_URL=sim.pool_env()["RPLANT_URL"], POLL_INTERVAL_SECONDS=1,
                LOG_LEVEL="debug")


def rplant_only(ctx):
    return ctx.pools_dir({"rplant.lua": harness.shipped_pool("rplant")})


def ledgers(sim):
    return {pid: sim.ledger("rplant", harness.advc_wallet(pid))
            for pid in range(1, PLAYERS + 1)}


def wait_polls(eng, since, n, what):
    """Every account has n successful polls logged after event index `since`."""
    def done(evs):
        counts = harness.polls_per_account(evs[since:], "rplant", ["pool_poll_success"])
        return len(counts) == PLAYERS and min(counts.values()) >= n
    eng.wait_until(done, timeout=90, what=what)


def advance_and_poll(sim, eng):
    for i, step in enumerate(STEPS):
        sim.advance(step)
        # The second poll of an account after this point started after the advance.
        wait_polls(eng, eng.count(), 2, "two polls of every account after step %d" % (i + 1))


def awards_of(eng):
    awards = {}
    for e in eng.named("mining_reward_detected"):
        check(e["pool"] == "rplant", "an award on another pool: %s" % e["_raw"])
        advc = harness.decimal_field(e, "advc_amount").quantize(Q)
        ap = harness.decimal_field(e, "ap_awarded")
        check(abs(ap - (advc * AP_PER_ADVC).quantize(Q)) < Q / 2,
              "AP is not ADVC x %s: %s" % (AP_PER_ADVC, e["_raw"]))
        awards.setdefault(e["player_id"], []).append((e["key"], advc))
    return awards


def compare_with_ledger(eng, first, last):
    awards = awards_of(eng)
    total = Decimal(0)
    for pid in range(1, PLAYERS + 1):
        got = awards.get(pid, [])
        keys = [k for k, _ in got]
        check(len(keys) == len(set(keys)), "player %d: an award key twice: %s" % (pid, keys))
        awarded = sum((a for _, a in got), Decimal(0))
        expected = (Decimal(last[pid]["paid"]) - Decimal(first[pid]["paid"])).quantize(Q)
        harness.note("player %d: ledger %s -> %s, %d awards, %s ADVC"
                     % (pid, first[pid]["paid"], last[pid]["paid"], len(got), awarded))
        check(awarded == expected,
              "player %d: awarded %s ADVC, the ledger says %s (%s -> %s)"
              % (pid, awarded, expected, first[pid]["paid"], last[pid]["paid"]))
        total += awarded
    check(total > 0, "nothing was awarded at all")


def test_awards_equal_the_ledger_with_div2_from_dash(ctx):
    sim = start_sim(ctx)
    # A slow first /api/dash answer: every first poll has to wait for it.
    sim.fault("rplant-dash", "latency", ms=1500, count=1)
    at_start = ledgers(sim)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)],
                           settings(sim), pools_dir=rplant_only(ctx))
    wait_polls(eng, 0, 1, "the baseline poll of every account")
    advance_and_poll(sim, eng)
    at_end = ledgers(sim)
    rc = eng.stop()
    eng.expect_clean_exit(rc)

    failures = harness.poll_ends(eng.snapshot(), "rplant", harness.POLL_FAILURE_EVENTS)
    check(not failures, "rplant polls failed (the first ones must wait for /api/dash): %s"
          % [e["_raw"] for e in failures[:3]])
    updated = eng.named("pool_metadata_updated")
    check(len(updated) == 1 and updated[0]["pool"] == "rplant"
          and updated[0]["metadata"] == {"coin": "advc", "div2": DIV2},
          "expected one pool_metadata_updated with div2 %d: %s" % (DIV2, updated))
    dash = sim.stats()["rplant-dash"]
    check(int(dash["requests"]) == 1, "/api/dash was asked %s times, expected once (refresh "
          "is an hour)" % dash["requests"])
    compare_with_ledger(eng, at_start, at_end)


def test_once_waits_for_dash(ctx):
    sim = start_sim(ctx)
    sim.fault("rplant-dash", "latency", ms=1500, count=1)
    rc, events, out, err = ctx.run_engine(
        ["--once", "--accounts", ctx.accounts(PLAYERS, zpool=False)], settings(sim),
        pools_dir=rplant_only(ctx))
    check(rc == 0, "--once exited %s: %s" % (rc, err[-2000:]))
    counts = harness.polls_per_account(events, "rplant", ["pool_poll_success"])
    failures = harness.poll_ends(events, "rplant", harness.POLL_FAILURE_EVENTS)
    check(len(counts) == PLAYERS and not failures,
          "--once: every rplant poll should succeed after waiting for /api/dash; successes "
          "%s, failures %s" % (counts, [e["_raw"] for e in failures[:3]]))


def test_dash_down_fails_polls_with_the_reason_then_recovers(ctx):
    sim = start_sim(ctx)
    sim.fault("rplant-dash", "status", code=503)  # until cleared
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)],
                           settings(sim), pools_dir=rplant_only(ctx))

    def refused(evs):
        counts = harness.polls_per_account(evs, "rplant", ["pool_poll_rejected"])
        return len(counts) == PLAYERS and min(counts.values()) >= 2
    eng.wait_until(refused, timeout=60, what="two refused polls of every account")
    rejected = eng.named("pool_poll_rejected")
    check(all("units unknown" in e["error"] and "HTTP 503" in e["error"]
              and "RPLANT_DIV2" in e["error"] for e in rejected),
          "the refusals should say that the units are unknown and why: %s"
          % sorted({e["error"] for e in rejected}))
    failed = eng.named("pool_metadata_failed")
    check(failed and failed[0]["pool"] == "rplant" and "HTTP 503" in failed[0]["error"],
          "no pool_metadata_failed for the 503: %s" % failed)
    # The pool pays meanwhile; without units nothing may be awarded, nor is it later: these
    # accounts have no observation yet, and the first good one is their baseline.
    sim.advance(25)
    eng.wait_until(lambda evs: min(harness.polls_per_account(
        evs, "rplant", ["pool_poll_rejected"]).values()) >= 3,
        timeout=60, what="a third refused poll of every account")
    check(not eng.named("mining_reward_detected"), "awarded without knowing the units")
    check(not eng.named("pool_poll_success"), "a poll succeeded without units")

    sim.clear_faults("rplant-dash")
    eng.wait_for(lambda e: e["event"] == "pool_metadata_updated", timeout=60,
                 what="the engine's retry of /api/dash")
    at_base = ledgers(sim)  # the clock stands still until every account has its baseline
    wait_polls(eng, 0, 1, "a baseline of every account after the recovery")
    advance_and_poll(sim, eng)
    at_end = ledgers(sim)
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    compare_with_ledger(eng, at_base, at_end)


def test_reload_keeps_dash_answer_when_its_url_is_unchanged(ctx):
    """A reload with the same metadata URL keeps the last good /api/dash answer (read again by
    the new script, no request), so polls go on while /api/dash is down; a reload that
    changes the URL fetches at once, and without an answer the polls fail with the reason."""
    sim = start_sim(ctx)
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=["rplant"])
    eng = harness.start_engine_dirs(
        ctx, ["--dry-run", "--accounts", ctx.accounts(PLAYERS, zpool=False)], settings(sim),
        pools_dir, scripts_dir)
    wait_polls(eng, 0, 1, "the first poll of every account")
    sim.fault("rplant-dash", "status", code=503)  # from now on /api/dash is down
    script = pools_dir + "/rplant.lua"
    source = harness.read_text(script)

    since = eng.count()
    harness.save_file(script, source + "\n-- edited: same metadata URL\n")
    eng.wait_for(lambda e: e["event"] == "script_reloaded", timeout=30, what="the reload",
                 since=since)
    wait_polls(eng, eng.count(), 2, "two polls of every account after the reload")
    check(int(sim.stats()["rplant-dash"]["requests"]) == 1,
          "the reload asked /api/dash again although its URL did not change")
    check(not harness.poll_ends(eng.snapshot()[since:], "rplant", harness.POLL_FAILURE_EVENTS),
          "polls failed after a reload that kept the metadata URL")

    since = eng.count()
    harness.save_file(script, harness.replaced(source, '"/api/dash")', '"/api/dash?v=2")'))
    eng.wait_for(lambda e: e["event"] == "pool_metadata_failed", timeout=30,
                 what="the new URL fetched at once (and failing)", since=since)

    def refused(evs):
        counts = harness.polls_per_account(evs[since:], "rplant", ["pool_poll_rejected"])
        return len(counts) == PLAYERS
    eng.wait_until(refused, timeout=60, what="a refused poll of every account")
    check(int(sim.stats()["rplant-dash"]["requests"]) >= 2, "the new URL was not fetched")
    rc = eng.stop()
    eng.expect_clean_exit(rc)


harness.main(globals())
