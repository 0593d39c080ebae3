"""Issue 8: a pool whose data only covers a window (limits.max_interval) is never polled more
slowly than that window in silence.

zpool lists the payouts of the last 24 hours and lets one walletEx request per minute through
per client address: pools/zpool.lua declares max_interval = 72000 s (20 h) and one request
per 65 s, so one egress address serves 1107 accounts. With more, the engine warns at start
(`pool_interval_exceeds_max`) and every polling_cycle_complete says it per pool.

- The shipped zpool.lua, 1108 accounts: the warning, with accounts_per_egress 1107; 1107
  accounts: no warning, `interval_exceeds_max` false.
- A small pool (1 request/s, max_interval 10 s): 11 accounts warn at once; when the script is
  changed to allow 2 requests/s the reload says it again, within max_interval
  (`pool_interval_within_max`).
- `limits.max_interval` is checked when a script loads (a number of seconds, not shorter
  than `limits.interval`).
"""

import os

import harness
from harness import check

PACED_POOL = r'''
return {
  name = "paced",
  currency = "ADVC",
  request = function(wallet)
    return {url = m2p.env("PACED_URL", "http://127.0.0.1:9") .. "/" .. m2p.urlencode(wallet)}
  end,
  parse = function(response) return nil, "never parsed in this test" end,
  limits = {per_second = 1, max_interval = 10},
}
'''


def cycle_with_pool(eng, pool, since=0):
    return eng.wait_for(lambda e: e["event"] == "polling_cycle_complete"
                        and pool in e.get("metrics", {}).get("pools", {}), 30,
                        "a polling_cycle_complete with %s" % pool, since=since)


def run_zpool(ctx, sim, n):
    players = [{"player_id": i, "username": "p%d" % i, "wallets": {"zpool": harness.btc_wallet(i)}}
               for i in range(1, n + 1)]
    accounts = ctx.write_json("zpool-%d.json" % n, players)
    pools = ctx.pools_dir({"zpool.lua": harness.shipped_pool("zpool")})
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1)  # ZPOOL_PER_SECOND: the default
    eng = ctx.start_engine(["--dry-run", "--accounts", accounts], settings, pools_dir=pools)
    cycle = cycle_with_pool(eng, "zpool")
    eng.expect_clean_exit(eng.stop())
    return eng, cycle["metrics"]["pools"]["zpool"]


def test_zpool_over_one_egress_address(ctx):
    sim = ctx.start_sim("--quiet")
    eng, pool = run_zpool(ctx, sim, 1108)
    warnings = eng.named("pool_interval_exceeds_max")
    check(len(warnings) == 1, "expected one pool_interval_exceeds_max at start, got %s"
          % [w["_raw"] for w in warnings])
    w = warnings[0]
    check(w.get("pool") == "zpool" and w.get("accounts") == 1108
          and w.get("accounts_per_egress") == 1107 and w.get("max_interval_seconds") == 72000
          and abs(w.get("effective_interval_seconds", 0) - 1108 * 65) < 1e-6,
          "the warning's fields: %s" % w["_raw"])
    check("docs/operations.md" in w.get("message", ""), "the warning says where to read on: %s"
          % w.get("message"))
    schedule = eng.named("pool_schedule")
    check(schedule and schedule[0].get("interval_exceeds_max") is True
          and schedule[0].get("accounts_per_egress") == 1107,
          "pool_schedule: %s" % (schedule[0]["_raw"] if schedule else None))
    check(pool.get("interval_exceeds_max") is True and pool.get("accounts_per_egress") == 1107
          and pool.get("max_interval_seconds") == 72000 and pool.get("accounts") == 1108,
          "polling_cycle_complete's zpool fields: %s" % pool)

    eng, pool = run_zpool(ctx, sim, 1107)
    check(not eng.named("pool_interval_exceeds_max"), "1107 accounts fit: no warning expected")
    check(pool.get("interval_exceeds_max") is False, "1107 accounts: %s" % pool)


def test_reload_says_it_again(ctx):
    pools_dir, scripts_dir = harness.live_dirs(ctx, pools=[])
    path = os.path.join(pools_dir, "paced.lua")
    harness.save_file(path, PACED_POOL)
    accounts = ctx.accounts(11, zpool=False)
    eng = harness.start_engine_dirs(ctx, ["--dry-run", "--accounts", accounts],
                                    {"POLL_INTERVAL_SECONDS": 1}, pools_dir, scripts_dir)
    w = eng.wait_for(lambda e: e["event"] == "pool_interval_exceeds_max", 30, "the warning")
    check(w.get("accounts") == 11 and w.get("accounts_per_egress") == 10
          and w.get("effective_interval_seconds") == 11 and w.get("max_interval_seconds") == 10,
          "the warning's fields: %s" % w["_raw"])
    first = cycle_with_pool(eng, "paced")
    check(first["metrics"]["pools"]["paced"].get("interval_exceeds_max") is True,
          "cycle summary: %s" % first["metrics"]["pools"]["paced"])
    check(len(eng.named("pool_interval_exceeds_max")) == 1, "warned more than once meanwhile")

    mark = eng.count()
    harness.save_file(path, harness.replaced(PACED_POOL, "per_second = 1,", "per_second = 2,"))
    eng.wait_for(lambda e: e["event"] == "pool_interval_within_max", 30,
                 "pool_interval_within_max after the reload", since=mark)
    after = eng.wait_for(lambda e: e["event"] == "polling_cycle_complete", 30, "a cycle",
                         since=eng.count())
    paced = after["metrics"]["pools"]["paced"]
    check(paced.get("interval_exceeds_max") is False and paced.get("accounts_per_egress") == 20,
          "after the reload: %s" % paced)
    eng.expect_clean_exit(eng.stop())


def test_max_interval_is_checked_at_load(ctx):
    pools = ctx.pools_dir({
        "zero.lua": PACED_POOL.replace('"paced"', '"zero"').replace("max_interval = 10",
                                                                    "max_interval = 0"),
        "text.lua": PACED_POOL.replace('"paced"', '"text"').replace("max_interval = 10",
                                                                    'max_interval = "20h"'),
        "inverted.lua": PACED_POOL.replace('"paced"', '"inverted"').replace(
            "max_interval = 10", "max_interval = 10, interval = 60"),
        "paced.lua": PACED_POOL,
    })
    rc, _, out, err = ctx.run_engine(["--check"], pools_dir=pools)
    text = out + err
    check(rc == 1, "--check with broken limits: status %s\n%s" % (rc, text))
    for name, words in (("zero.lua", "limits.max_interval must be a number in [1, 2592000]"),
                        ("text.lua", "limits.max_interval must be a number"),
                        ("inverted.lua",
                         "limits.interval (60) is longer than limits.max_interval (10)")):
        check(any(name in line and words in line for line in text.splitlines()),
              "expected %r for %s in:\n%s" % (words, name, text))
    check(not any("paced.lua" in line and "limits" in line for line in text.splitlines()),
          "the valid pool was refused:\n%s" % text)


harness.main(globals())
