"""Issue 3, item 7: --once and --probe against the simulator, and invalid configuration.

- `--once` exits 0 when every pool answers, non-zero when a pool fails entirely (500s, or
  timeouts), and 0 when a pool only fails for some accounts;
- `--probe POOL WALLET` prints the URL, the status and the observation (whose numbers match
  the simulator's ledger), and fails on a failing pool;
- an invalid setting exits 78 naming the variable, in every mode, from the environment or
  from the .env file, before any request is sent.
"""

import json
import os

import harness
from harness import check

PLAYERS = 10
EX_CONFIG = 78


def once(ctx, sim, extra=None, players=PLAYERS):
    settings = dict(sim.pool_env(), ZPOOL_PER_SECOND=100, LOG_LEVEL="debug")
    settings.update(extra or {})
    return ctx.run_engine(["--once", "--accounts", ctx.accounts(players)], settings, timeout=60)


def summary(events):
    done = [e for e in events if e["event"] == "single_cycle_complete"]
    check(len(done) == 1, "expected one single_cycle_complete event, got %d" % len(done))
    return done[0]["metrics"]


def test_once_all_pools_answer(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    rc, events, out, err = once(ctx, sim)
    check(rc == 0, "--once exited with %d although every pool answered\n%s" % (rc, err[-3000:]))
    m = summary(events)
    check(m["polls_total"] == 3 * PLAYERS and m["polls_successful"] == 3 * PLAYERS,
          "expected %d successful polls: %s" % (3 * PLAYERS, m))
    for pool in ("cpu-pool", "rplant", "zpool"):
        n = int(sim.requests(pool)["total"])
        check(n == PLAYERS, "%s: %d requests for %d accounts in one cycle" % (pool, n, PLAYERS))
    awards = [e for e in events if e["event"] == "mining_reward_detected"]
    check(not awards, "a single cycle is a baseline, yet it awarded: %s" % awards[:2])


def test_once_fails_when_a_pool_fails_entirely(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    sim.fault("zpool", "status", code=500)
    rc, events, out, err = once(ctx, sim)
    check(rc != 0, "--once exited 0 although every zpool request failed")
    m = summary(events)
    check(m["pools"]["zpool"]["successes"] == 0 and m["pools"]["zpool"]["failures"] == PLAYERS,
          "zpool: %s" % m["pools"]["zpool"])
    for pool in ("cpu-pool", "rplant"):
        check(m["pools"][pool]["successes"] == PLAYERS, "%s: %s" % (pool, m["pools"][pool]))


def test_once_fails_when_a_pool_times_out_entirely(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    sim.fault("rplant", "timeout")
    rc, events, out, err = once(ctx, sim, {"POOL_REQUEST_TIMEOUT": 0.5})
    check(rc != 0, "--once exited 0 although every rplant request timed out")
    timeouts = [e for e in events if e["event"] == "pool_poll_timeout" and e["pool"] == "rplant"]
    check(len(timeouts) == PLAYERS, "expected %d rplant timeouts, got %d" % (PLAYERS, len(timeouts)))


def test_once_partial_failure_is_not_entire(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    sim.fault("cpu-pool", "status", code=500, rate=0.5)
    rc, events, out, err = once(ctx, sim, players=20)
    m = summary(events)
    cpu = m["pools"]["cpu-pool"]
    check(0 < cpu["failures"] < 20, "the fault rate should fail some cpu-pool polls: %s" % cpu)
    check(rc == 0, "--once exited %d although cpu-pool answered %d of 20 accounts"
          % (rc, cpu["successes"]))


def test_once_with_no_accounts_exits(ctx):
    # Nothing to poll: the cycle is over before the event loop starts, and must still end.
    sim = ctx.start_sim()
    rc, events, out, err = once(ctx, sim, players=0)
    check(rc == 0, "--once with no accounts exited %d\n%s" % (rc, err[-2000:]))
    check(summary(events)["polls_total"] == 0, "no account, yet polls were counted")


def probe(ctx, sim, pool, wallet, extra=None):
    settings = dict(sim.pool_env())
    settings.update(extra or {})
    return ctx.run_engine(["--probe", pool, wallet], settings, timeout=30)


def test_probe_prints_url_status_and_observation(ctx):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10")
    sim.advance(45)
    cases = [("cpu-pool", harness.advc_wallet(1), "/api/worker_stats?" + harness.advc_wallet(1)),
             ("rplant", harness.advc_wallet(1), "/api/walletEx/advc/" + harness.advc_wallet(1)),
             ("zpool", harness.btc_wallet(1), "/api/walletEx?address=" + harness.btc_wallet(1))]
    for pool, wallet, path in cases:
        rc, events, out, err = probe(ctx, sim, pool, wallet)
        check(rc == 0, "--probe %s exited %d\n%s%s" % (pool, rc, out, err))
        lines = out.splitlines()
        check("url: %s%s" % (sim.base, path) in lines,
              "--probe %s: no line 'url: %s%s' in:\n%s" % (pool, sim.base, path, out))
        check(any(l.startswith("status: 200") for l in lines),
              "--probe %s: no 'status: 200' line in:\n%s" % (pool, out))
        obs_lines = [l for l in lines if l.startswith("observation: ")]
        check(len(obs_lines) == 1, "--probe %s: no observation line in:\n%s" % (pool, out))
        obs = json.loads(obs_lines[0][len("observation: "):])
        ledger = sim.ledger(pool, wallet)
        if pool == "zpool":
            txs = sorted(p["tx"] for p in obs.get("payouts", []))
            check(txs == sorted(p["tx"] for p in ledger["payouts"]),
                  "--probe zpool: payouts %s differ from the ledger" % txs)
            check(abs(obs["paid24h"] - float(ledger["paid24h"])) < 1e-9,
                  "--probe zpool: paid24h %s, ledger %s" % (obs["paid24h"], ledger["paid24h"]))
        else:
            check(abs(obs["paid"] - float(ledger["paid"])) < 1e-9,
                  "--probe %s: paid %s, the ledger says %s" % (pool, obs["paid"], ledger["paid"]))
            check(any(l.split()[:1] == ["paid"] and l.endswith("ADVC") for l in lines),
                  "--probe %s: no conversion line for paid in:\n%s" % (pool, out))
        check(any("second identical poll: no award" in l for l in lines),
              "--probe %s: the second identical poll should award nothing:\n%s" % (pool, out))


def test_probe_reports_a_failing_pool(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    sim.fault("zpool", "status", code=503)
    rc, events, out, err = probe(ctx, sim, "zpool", harness.btc_wallet(1))
    check(rc != 0, "--probe exited 0 on an HTTP 503:\n%s" % out)
    check("status: 503" in out, "--probe does not show the 503:\n%s" % out)
    check("no observation" in out, "--probe does not say there is no observation:\n%s" % out)

    rc, events, out, err = probe(ctx, sim, "cpu-pool", harness.advc_wallet(1),
                                 {"CPU_POOL_URL": "http://127.0.0.1:1/api/worker_stats"})
    check(rc != 0, "--probe exited 0 although nothing listens on port 1:\n%s" % out)
    check("request failed" in out, "--probe does not report the failed request:\n%s%s"
          % (out, err))


def test_invalid_configuration_exits_78(ctx):
    sim = ctx.start_sim("--payout-interval", "3")
    accounts = ctx.accounts(3)
    modes = [["--once", "--accounts", accounts], ["--dry-run", "--accounts", accounts],
             ["--probe", "cpu-pool", harness.advc_wallet(1)]]
    bad = [{"POLL_INTERVAL_SECONDS": "0"}, {"LOG_LEVEL": "loud"},
           {"POLL_INTERVAL_SECONDS": "1.5"}, {"POOL_REQUEST_TIMEOUT": "fast"},
           {"POLL_INTERVAL_SECONDS": "0", "LOG_LEVEL": "loud"}]
    for mode in modes:
        for settings in bad:
            env = dict(sim.pool_env(), ZPOOL_PER_SECOND=100)
            env.update(settings)
            rc, events, out, err = ctx.run_engine(mode, env, timeout=30)
            what = "%s with %s" % (mode[0], settings)
            check(rc == EX_CONFIG, "%s exited %d, expected %d\n%s%s"
                  % (what, rc, EX_CONFIG, out[-1000:], err[-1000:]))
            for name, value in settings.items():
                check(name in err, "%s: the message does not name %s:\n%s" % (what, name, err))
    stats = sim.stats()
    sent = sum(int(stats[p]["requests"]) for p in ("cpu-pool", "rplant", "zpool"))
    check(sent == 0, "%d requests reached the pools although the configuration was invalid"
          % sent)

    # The same from a .env file (the environment does not set it).
    env_file = os.path.join(ctx.tmp, "bad.env")
    with open(env_file, "w") as f:
        f.write("# invalid on purpose\nPOLL_INTERVAL_SECONDS=0\n")
    rc, events, out, err = ctx.run_engine(["--once", "--accounts", accounts, "--env-file", env_file],
                                          dict(sim.pool_env()), timeout=30)
    check(rc == EX_CONFIG, "a bad .env value exited %d, expected %d\n%s" % (rc, EX_CONFIG, err))
    check("POLL_INTERVAL_SECONDS" in err, "the .env error does not name the variable:\n%s" % err)


harness.main(globals())
