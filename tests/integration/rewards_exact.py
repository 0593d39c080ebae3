"""Issue 3, item 5: payouts scheduled in the simulator are awarded with the exact ADVC and AP.

The simulator runs on its manual clock, so what a pool reports changes only when the test
advances it. A --dry-run engine polls continuously while the clock is advanced in steps;
after each step the test waits for two successful polls of every account logged after the
step (the second one started after the first had ended, so after the step: an account is
never polled twice at once).

Then, per (player, pool):
- the first observation was taken at T0 (the clock did not move before every account had
  been polled) and is the baseline: nothing awarded for what was paid before it;
- the last observation was taken at T_end (the clock did not move during the last polls);
- so the awarded ADVC must equal, to 1e-8, ledger(T_end) - ledger(T0): the growth of the
  cumulative `paid` for cpu-pool and rplant, and for zpool the payouts k in (n(T0), n(T_end)]
  x BTC_TO_ADVC_RATE, one award per tx id, keys tx:<wallet id>:<id> (the wallet id is the first
  16 hex digits of the wallet's SHA-256, scripts/rewards.lua);
- and every award's AP is its ADVC x AP_PER_ADVC, rounded to 8 decimals.

Half of cpu-pool's and half of rplant's answers carry amounts as strings (rplant's always in
atomic units, divided by 10^div2 from the simulator's /api/dash): both are valid, and must not
change a single satoshi of the result.
"""

import hashlib
from decimal import Decimal

import harness
from harness import check

PLAYERS = 10
POOLS = ("cpu-pool", "rplant", "zpool")
PAYOUT_INTERVAL = 10          # simulated seconds between two payouts of one wallet
T0 = 5                        # about half of the wallets have been paid once at the baseline
STEPS = (3, 7, 12, 25, 0.5, 9, 31)
BTC_TO_ADVC = Decimal(1000000)
AP_PER_ADVC = Decimal(100)
Q = Decimal("0.00000001")


def wallet_of(player_id, pool):
    return harness.btc_wallet(player_id) if pool == "zpool" else harness.advc_wallet(player_id)


def ledgers(sim):
    return {(pid, pool): sim.ledger(pool, wallet_of(pid, pool))
            for pid in range(1, PLAYERS + 1) for pool in POOLS}


def wait_polls(eng, since, n, what):
    """Waits until every account has n successful polls logged after event index `since`."""
    def done(evs):
        for pool in POOLS:
            counts = harness.polls_per_account(evs[since:], pool, ["pool_poll_success"])
            if len(counts) < PLAYERS or min(counts.values()) < n:
                return False
        return True
    eng.wait_until(done, timeout=40, what=what)


def dec(raw_line, field):
    """A number from the engine's JSON log line, read as an exact decimal."""
    import json
    return Decimal(str(json.loads(raw_line, parse_float=Decimal)[field]))


def test_awards_match_the_ledger(ctx):
    run_and_compare(ctx, STEPS, faults=[])


def test_awards_match_the_ledger_despite_failed_polls(ctx):
    """Failed polls (HTTP 500, another miner's data, truncated JSON, HTML) change nothing:
    the next good poll picks up where the last one left off, with nothing lost or doubled.
    After the baseline and after every clock step, the next 9-12 requests to each pool fail
    (3 of each kind, in that order): one or two failed polls per account, then good ones.

    zpool gets no wrong_miner fault: YiiMP's walletEx answer does not name the wallet, so
    another wallet's answer is indistinguishable from this one's (docs/pools.md)."""
    faults = []
    for pool in POOLS:
        faults += [(pool, "status", dict(code=500, count=3)),
                   (pool, "truncated", dict(count=3)),
                   (pool, "html", dict(count=3))]
        if pool != "zpool":
            faults.append((pool, "wrong_miner", dict(count=3)))
    run_and_compare(ctx, (7, 25, 12), faults, expect_failures=True)


def run_and_compare(ctx, steps, faults, expect_failures=False):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", str(PAYOUT_INTERVAL),
                        "--seed", "3")
    sim.advance(T0)
    for pool, kind, params in faults:
        sim.fault(pool, kind, **params)
    # Added after the faults: rules apply in the order they were added.
    sim.fault("cpu-pool", "string_amounts", rate=0.5)
    sim.fault("rplant", "string_amounts", rate=0.5)
    at_t0 = ledgers(sim)
    check(any(int(l["count"]) > 0 for l in at_t0.values())
          and any(int(l["count"]) == 0 for l in at_t0.values()),
          "T0 should find some wallets already paid and some not (seed/interval changed?)")

    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(PLAYERS)], settings)
    wait_polls(eng, 0, 1, "the baseline poll of every account at T0")
    for i, step in enumerate(steps):
        sim.advance(step)
        # Counted from here, the second poll of an account started after the first one
        # ended, so after the advance: it saw the new clock.
        since = eng.count()
        for pool, kind, params in faults:
            sim.fault(pool, kind, **params)
        wait_polls(eng, since, 2, "two polls of every account after clock step %d" % (i + 1))
    at_end = ledgers(sim)
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    events = eng.snapshot()

    failures = harness.poll_ends(events, names=harness.POLL_FAILURE_EVENTS)
    if expect_failures:
        kinds = {(e["event"], e.get("status")) for e in failures}
        harness.note("%d failed polls: %s" % (len(failures), sorted(kinds, key=str)))
        check(("pool_poll_http_error", 500) in kinds and ("pool_poll_rejected", 200) in kinds,
              "the injected faults did not all show: %s" % kinds)
    else:
        check(not failures, "polls failed: %s" % failures[:3])
    decreased = eng.named("paid_counter_decreased") + eng.named("reward_counter_changed")
    check(not decreased, "unexpected re-baselining: %s" % decreased[:3])
    served = sim.stats()
    check(int(served["cpu-pool"]["by_fault"].get("string_amounts", 0)) > 0
          and int(served["rplant"]["by_fault"].get("string_amounts", 0)) > 0,
          "the amount-format variations were not served: %s" % served)

    awards = {}
    for e in eng.named("mining_reward_detected"):
        awards.setdefault((e["player_id"], e["pool"]), []).append(e)

    total = Decimal(0)
    for pid in range(1, PLAYERS + 1):
        for pool in POOLS:
            got = awards.get((pid, pool), [])
            first, last = at_t0[(pid, pool)], at_end[(pid, pool)]
            keys = [e["key"] for e in got]
            check(len(keys) == len(set(keys)),
                  "player %d %s: an award key was used twice: %s" % (pid, pool, keys))
            for e in got:
                check(e["username"] == "player%d" % pid,
                      "award for player %d has username %r" % (pid, e["username"]))
                advc = dec(e["_raw"], "advc_amount").quantize(Q)
                ap = dec(e["_raw"], "ap_awarded")
                check(advc > 0, "non-positive award: %s" % e["_raw"])
                check(abs(ap - (advc * AP_PER_ADVC).quantize(Q)) < Q / 2,
                      "AP is not ADVC x %s: %s" % (AP_PER_ADVC, e["_raw"]))
            awarded = sum((dec(e["_raw"], "advc_amount").quantize(Q) for e in got), Decimal(0))
            if pool == "zpool":
                n0 = int(first["count"])
                new = [p for p in last["payouts"] if int(p["k"]) > n0]
                check(not last["truncated"], "ledger truncated")
                expected = sum((Decimal(p["amount"]) for p in new), Decimal(0)) * BTC_TO_ADVC
                wallet_id = hashlib.sha256(wallet_of(pid, pool).encode()).hexdigest()[:16]
                prefix = "tx:%s:" % wallet_id
                want_keys = sorted(prefix + p["tx"] for p in new)
                check(sorted(keys) == want_keys,
                      "player %d zpool: awarded keys %s, expected the new payouts' tx ids %s"
                      % (pid, sorted(keys), want_keys))
                for p in new:
                    e = [a for a in got if a["key"] == prefix + p["tx"]][0]
                    one = dec(e["_raw"], "advc_amount").quantize(Q)
                    check(one == Decimal(p["amount"]) * BTC_TO_ADVC,
                          "player %d zpool tx %s: awarded %s ADVC for %s BTC"
                          % (pid, p["tx"][:12], one, p["amount"]))
            else:
                expected = Decimal(last["paid"]) - Decimal(first["paid"])
            harness.note("player %d %-8s: paid %s -> %s, %d awards, %s ADVC"
                         % (pid, pool, first.get("paid"), last.get("paid"), len(got), awarded))
            check(awarded == expected.quantize(Q),
                  "player %d %s: awarded %s ADVC in %d awards, the ledger says %s "
                  "(T0 %s, end %s)" % (pid, pool, awarded, len(got), expected,
                                       first["paid"], last["paid"]))
            total += awarded
    check(total > 0, "nothing was awarded at all")
    extra = set(awards) - {(pid, pool) for pid in range(1, PLAYERS + 1) for pool in POOLS}
    check(not extra, "awards for unknown accounts: %s" % extra)


harness.main(globals())
