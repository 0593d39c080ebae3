"""Issue 5: the pool author's loop.

- test_watch_reruns_on_change: `m2p-engine --script-test --watch` over copies of a few
  fixtures, pools/ and scripts/ runs them, then again on every save: a fixture whose
  expectation is changed to a wrong value FAILs (with the difference), fixing it passes again;
  a change to a pool script or to the rules re-runs them too (a broken parse FAILs that pool's
  fixtures, an AP formula that disagrees with the expectations FAILs them), and restoring the
  file passes again. Each save is one run.
- test_probe_record_replays: `--probe POOL WALLET --record FILE` against the simulator, for
  each of the three pools, writes a fixture holding the response, the URL and the settings
  the scripts read; the observation it expects is what the simulator's ledger says; and
  `--script-test FILE`, with no pool URL in the environment, passes it. A probe that gets an
  error object records the error as the expectation, and that fixture passes too.
"""

import json
import os
import re
import shutil
import time
from decimal import Decimal

import harness
from harness import check

FIXTURES = {"cpu-pool": ("01-first-observation.json", "02-payout-after-baseline.json",
                         "03-no-change.json", "11-wrong-miner.json"),
            "rplant": ("02-payout-after-baseline.json",)}
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


class Watcher:
    def __init__(self, proc):
        self.proc = proc
        self.last_end = -1

    def next_run(self, what, timeout=60):
        """Waits for the summary line of the next run; returns (passed, failed, lines)."""
        start = self.last_end + 1
        i = self.proc.wait_line(lambda l: SUMMARY.match(l) is not None, timeout, what,
                                since=start)
        self.last_end = i
        with self.proc._cond:
            lines = self.proc.lines[start:i + 1]
        m = SUMMARY.match(lines[-1])
        return int(m.group(1)), int(m.group(2)), lines

    def no_more_runs(self, settle=1.0):
        """No other run followed (one save = one run)."""
        time.sleep(settle)
        with self.proc._cond:
            extra = [l for l in self.proc.lines[self.last_end + 1:] if SUMMARY.match(l)]
        check(not extra, "one save started several runs: %s" % extra)


def verdicts(lines):
    """{fixture file name: 'ok' | 'FAIL'} and the detail lines under FAILs."""
    out, details = {}, []
    for l in lines:
        m = re.match(r"^(ok|FAIL)\s+(\S+): ", l)
        if m:
            out[m.group(2)] = m.group(1)
        elif l.startswith("     "):
            details.append(l.strip())
    return out, details


def test_watch_reruns_on_change(ctx):
    pools_dir, scripts_dir = harness.live_dirs(ctx)
    fixtures = os.path.join(ctx.tmp, "fixtures")
    for pool, names in FIXTURES.items():
        os.makedirs(os.path.join(fixtures, pool))
        for name in names:
            shutil.copy(os.path.join(harness.REPO, "tests", "fixtures", pool, name),
                        os.path.join(fixtures, pool))
    total = sum(len(v) for v in FIXTURES.values())
    argv = [ctx.engine_bin, "--script-test", "--watch", "--pools", pools_dir,
            "--scripts", scripts_dir, fixtures]
    proc = harness.LineProcess(ctx, argv, ctx.engine_env(), "watch")
    try:
        w = Watcher(proc)
        run_watch(ctx, w, proc, fixtures, pools_dir, scripts_dir, total)
    finally:
        proc.stop(timeout=10)


def run_watch(ctx, w, proc, fixtures, pools_dir, scripts_dir, total):
    passed, failed, lines = w.next_run("the first run")
    check((passed, failed) == (total, 0), "first run: %d passed, %d failed:\n%s"
          % (passed, failed, "\n".join(lines)))
    proc.wait_line(lambda l: l.startswith("-- watching"), 30, "the watching line")

    # a wrong expectation
    target = os.path.join(fixtures, "cpu-pool", "02-payout-after-baseline.json")
    good = harness.read_text(target)
    doc = json.loads(good)
    doc["steps"][1]["expect"]["reward"]["advc"] = 1.26
    harness.save_file(target, json.dumps(doc, indent=2))
    passed, failed, lines = w.next_run("the run after the wrong expectation")
    v, details = verdicts(lines)
    check((passed, failed) == (total - 1, 1) and v.get(target) == "FAIL",
          "after the wrong expectation: %d passed, %d failed:\n%s"
          % (passed, failed, "\n".join(lines)))
    check(any("1.26" in d and "1.25" in d for d in details),
          "the FAIL should show the difference (1.26 expected, 1.25 got):\n%s" % "\n".join(lines))
    check(any("change detected" in l for l in lines), "no '-- change detected' line:\n%s"
          % "\n".join(lines))
    w.no_more_runs()

    # fixed (saved the way editors that rename do)
    harness.save_file(target, good, how="rename")
    passed, failed, lines = w.next_run("the run after the fix")
    check((passed, failed) == (total, 0), "after the fix: %d passed, %d failed:\n%s"
          % (passed, failed, "\n".join(lines)))
    w.no_more_runs()

    # a pool script change: cpu-pool's parse refuses everything
    pool_path = os.path.join(pools_dir, "cpu-pool.lua")
    pool_src = harness.read_text(pool_path)
    harness.save_file(pool_path, harness.replaced(
        pool_src, "function pool.parse(response)\n",
        "function pool.parse(response)\n  do return nil, \"refused by the test\" end\n"))
    passed, failed, lines = w.next_run("the run after the pool script change")
    v, _ = verdicts(lines)
    cpu = [f for f in v if "/cpu-pool/" in f]
    # 11-wrong-miner expects an error anyway, so it may still pass
    check(failed >= len(cpu) - 1 and failed >= 2 and
          all(v[f] == "ok" for f in v if "/rplant/" in f),
          "after breaking cpu-pool's parse: %d passed, %d failed:\n%s"
          % (passed, failed, "\n".join(lines)))
    harness.save_file(pool_path, pool_src)
    passed, failed, lines = w.next_run("the run after restoring the pool script")
    check((passed, failed) == (total, 0), "after restoring cpu-pool.lua: %d passed, %d failed:"
          "\n%s" % (passed, failed, "\n".join(lines)))

    # a rules change: 150 AP per ADVC disagrees with the fixtures' 100
    rules_path = os.path.join(scripts_dir, "rewards.lua")
    rules_src = harness.read_text(rules_path)
    harness.save_file(rules_path, harness.replaced(
        rules_src, 'm2p.env_number("AP_PER_ADVC", 100, 0, 1e12)',
        'm2p.env_number("AP_PER_ADVC", 150, 0, 1e12)'), how="rename")
    passed, failed, lines = w.next_run("the run after the rules change")
    v, details = verdicts(lines)
    check(v.get(target) == "FAIL" and any("ap" in d and "187.5" in d for d in details),
          "after changing the AP formula, %s should FAIL on ap (125 expected, 187.5 got):\n%s"
          % (target, "\n".join(lines)))
    harness.save_file(rules_path, rules_src)
    passed, failed, lines = w.next_run("the run after restoring the rules")
    check((passed, failed) == (total, 0), "after restoring rewards.lua: %d passed, %d failed:"
          "\n%s" % (passed, failed, "\n".join(lines)))
    w.no_more_runs()
    check(proc.proc.poll() is None, "the watcher exited")


# ----------------------------------------------------------------------- probe --record


def probe(ctx, sim, pool, wallet, record, env=None):
    settings = dict(sim.pool_env(), **(env or {}))
    return ctx.run_engine(["--probe", pool, wallet, "--record", record], settings)


def script_test(ctx, path):
    return ctx.run_engine(["--script-test", path], {})


def test_probe_record_replays(ctx):
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "3")
    sim.advance(45)
    for pool, wallet in (("cpu-pool", harness.advc_wallet(1)),
                         ("rplant", harness.advc_wallet(2)),
                         ("zpool", harness.btc_wallet(3))):
        record = os.path.join(ctx.tmp, "%s-live.json" % pool)
        rc, _, out, err = probe(ctx, sim, pool, wallet, record)
        check(rc == 0, "--probe %s exited %s:\n%s%s" % (pool, rc, out, err))
        check("recorded: " in out, "--probe --record printed no 'recorded:' line:\n%s" % out)
        with open(record) as f:
            doc = json.load(f, parse_float=Decimal)
        check(doc.get("pool") == pool and doc.get("wallet") == wallet,
              "recorded pool/wallet: %s/%s" % (doc.get("pool"), doc.get("wallet")))
        url_var = {"cpu-pool": "CPU_POOL_URL", "rplant": "RPLANT_URL", "zpool": "ZPOOL_URL"}[pool]
        check(doc.get("env", {}).get(url_var) == sim.pool_env()[url_var],
              "the fixture should keep %s (the setting the script read): %s"
              % (url_var, doc.get("env")))
        step = doc["steps"][0]
        url = step["expect"]["request"]["url"]
        check(url.startswith(sim.base) and wallet in url, "recorded request url: %s" % url)
        ledger = sim.ledger(pool, wallet)
        obs = step["expect"].get("observation", {})
        check(int(ledger["count"]) > 0, "the simulator paid nothing yet")
        if pool == "zpool":
            check(Decimal(str(obs.get("paid24h"))) == Decimal(ledger["paid24h"]),
                  "recorded paid24h %s, ledger %s" % (obs.get("paid24h"), ledger["paid24h"]))
            check(len(obs.get("payouts", [])) == int(ledger["count"]),
                  "recorded %d payouts, ledger %s" % (len(obs.get("payouts", [])),
                                                      ledger["count"]))
        else:
            check(Decimal(str(obs.get("paid"))) == Decimal(ledger["paid"]),
                  "recorded paid %s, ledger %s" % (obs.get("paid"), ledger["paid"]))
        # replays with no pool URL in the environment
        rc, _, out, err = script_test(ctx, record)
        check(rc == 0 and "1 passed, 0 failed" in out,
              "--script-test %s (exit %s):\n%s%s" % (record, rc, out, err))

    # an answer the script refuses is recorded as the expected error
    sim.fault("cpu-pool", "error_object", count=1)
    record = os.path.join(ctx.tmp, "cpu-pool-error.json")
    rc, _, out, err = probe(ctx, sim, "cpu-pool", harness.advc_wallet(4), record)
    check(rc != 0, "--probe of an error object exited 0:\n%s" % out)
    with open(record) as f:
        doc = json.load(f)
    expect = doc["steps"][0]["expect"]
    check(isinstance(expect.get("error"), str) and "Invalid wallet address" in expect["error"],
          "the recorded expectation should be the error: %s" % expect)
    rc, _, out, err = script_test(ctx, record)
    check(rc == 0 and "1 passed, 0 failed" in out,
          "--script-test %s (exit %s):\n%s%s" % (record, rc, out, err))


harness.main(globals())
