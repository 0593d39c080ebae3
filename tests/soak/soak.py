#!/usr/bin/env python3
"""The soak run (issue 12): engine + pool simulator + PostgreSQL + a webhook receiver + the
Socket.IO server for M minutes with N accounts (N/3 players x 3 pools), faults of every kind
injected at random, and at the end every total exact.

    python3 tests/soak/soak.py BUILD --minutes 30 --accounts 10000 --seed 1 --plot soak.png

What happens (docs/reliability.md, "The soak run"):
- The simulator runs on a manual clock that this script moves with real time (one step a
  second), so that the end state is fixed: when the run stops, the clock stops, and the
  simulator's ledger is exactly what the engine must have awarded.
- Every account's first poll is its baseline (the clock is still at 0: nothing paid yet).
- Faults from a schedule drawn with --seed: pool faults (HTTP 429/500/503, timeouts,
  latency, empty/HTML/truncated/huge bodies, error objects, another miner's data, amounts as
  strings, rplant's old coin units), pg_terminate_backend on the engine's connections, two
  PostgreSQL restarts (-m fast, -m immediate), webhook and Socket.IO outages, SIGHUP, and
  SIGKILL followed by a new engine.
- The end: faults cleared, receivers up, clock stopped; the script waits until the engine
  has polled every account twice since (so one whole poll started after the last payout),
  then checks: every player's total_ap and total_advc_mined equal the ledger to 1e-8, every
  account's mining_events add up to its ledger (zpool: the keys are exactly the payouts' tx
  ids), no duplicate key, every award delivered to each sink (by event_id), and the RSS of
  the longest engine lifetime did not grow after warm-up: the median of its last third is
  at most (1 + --rss-tolerance) times the median of its middle third.
- Samples (every --sample seconds): RSS of the engine (/proc/PID/status VmRSS, per
  lifetime), polls/s and awards/s; written as TSV next to the PNG (gnuplot) with a summary
  JSON (--summary).

tests/integration/soak_short.py runs a short form in the suite.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import notify_support as ns  # noqa: E402
import pgserver  # noqa: E402
from harness import check, fail  # noqa: E402

TOKEN = "soak-sio-token-8c2e41"
SECRET = "soak-whsec-1f7a93"

# (kind, extra parameters, pools it may hit). wrong_miner is not injected on zpool: its
# format names no wallet, so another wallet's data cannot be told apart there (m2p-sim's
# README) and would be a real, undetectable pool error rather than a fault to survive.
POOL_FAULTS = (
    ("status", {"code": 503}, pgserver.POOLS),
    ("status", {"code": 500}, pgserver.POOLS),
    ("status", {"code": 429, "retry_after": 2}, pgserver.POOLS),
    ("timeout", {}, pgserver.POOLS),
    ("latency", {"ms": 1500}, pgserver.POOLS),
    ("empty", {}, pgserver.POOLS),
    ("html", {}, pgserver.POOLS),
    ("truncated", {}, pgserver.POOLS),
    ("huge", {}, pgserver.POOLS),
    ("error_object", {}, pgserver.POOLS),
    ("string_amounts", {}, pgserver.POOLS),
    ("wrong_miner", {}, ("cpu-pool", "rplant")),
    ("coins", {}, ("rplant",)),
)


class SoakEngine(harness.Engine):
    """An engine whose per-poll lines are counted instead of kept: pool_poll_success (debug)
    and mining_reward_detected come by the hundred thousand in a long run."""

    COUNTED = ("pool_poll_success", "mining_reward_detected")

    def __init__(self, *args, **kw):
        self.polls = {}         # (player_id, pool) -> successful polls
        self.counted = {name: 0 for name in self.COUNTED}
        super().__init__(*args, **kw)

    def _take(self, line):
        name = None
        for n in self.COUNTED:
            if ('"%s"' % n) in line:
                name = n
        if name is None:
            return super()._take(line)
        try:
            event = json.loads(line)
        except ValueError:
            return super()._take(line)
        if event.get("event") != name:
            return super()._take(line)
        with self._cond:
            self.counted[name] += 1
            if name == "pool_poll_success":
                key = (event.get("player_id"), event.get("pool"))
                self.polls[key] = self.polls.get(key, 0) + 1

    def poll_counts(self):
        with self._cond:
            return dict(self.polls)

    def totals(self):
        with self._cond:
            return dict(self.counted)

    def rss_kib(self):
        """VmRSS of the live process, or None once it has gone."""
        try:
            return harness.rss_kib(self.proc.pid)
        except (OSError, ValueError):
            return None


# ======================================================================== the schedule


def schedule(rng, seconds, short):
    """[(second, action, detail)] for a run of `seconds`: the fixed events (two DB restarts,
    kills placed so that one lifetime spans most of the run, notifier outages) and random
    pool faults, terminations and SIGHUPs in between."""
    fixed = [(0.35, "db_restart", "fast"), (0.70, "db_restart", "immediate"),
             (0.25, "sio_outage", 0.06), (0.55, "webhook_outage", 0.06)]
    fixed += [(0.15, "kill", None), (0.30, "kill", None)] if not short else [(0.2, "kill", None)]
    if not short:
        fixed.append((0.92, "kill", None))
    events = [(int(f * seconds), what, detail) for f, what, detail in fixed]
    # random ones: a pool fault every ~15 s (long) / ~4 s (short), terminations and SIGHUPs
    # every ~3 minutes (long) / twice (short); none in the last 5 % (the run settles)
    # The kinds come in shuffled rounds, so that even a short run injects every kind.
    gap = 2.5 if short else 15.0
    t = rng.uniform(1, gap)
    kinds = []
    while t < 0.95 * seconds:
        if not kinds:
            kinds = list(range(len(POOL_FAULTS)))
            rng.shuffle(kinds)
        events.append((int(t), "pool_fault", kinds.pop()))
        t += rng.uniform(0.5 * gap, 1.5 * gap)
    n_rare = 2 if short else max(2, seconds // 180)
    for _ in range(n_rare):
        events.append((int(rng.uniform(0.05, 0.9) * seconds), "terminate", None))
        events.append((int(rng.uniform(0.05, 0.9) * seconds), "sighup", None))
    return sorted(events, key=lambda e: (e[0], e[1]))


# ======================================================================== the run


class Soak:
    def __init__(self, ctx, opts):
        self.ctx, self.opts = ctx, opts
        self.rng = random.Random(opts.seed)
        self.seconds = int(opts.minutes * 60)
        self.faults = {}          # kind -> number injected
        self.samples = []         # (t, lifetime, rss_kib, polls/s, awards/s)
        self.lifetimes = []       # [(start t, end t or None)]
        self.engines = []
        self.clears = []          # (t, pool) when a pool fault ends
        self.outage_ends = []     # (t, what)
        self.started = None

    def log(self, msg):
        t = 0.0 if self.started is None else time.monotonic() - self.started
        print("soak %7.1f s: %s" % (t, msg))
        sys.stdout.flush()

    def count(self, kind):
        self.faults[kind] = self.faults.get(kind, 0) + 1

    # ---- setup

    def setup(self):
        o = self.opts
        self.pg = pgserver.PgServer()
        self.gdb = pgserver.GameDb.create(self.pg, "soak")
        pgserver.migrate(self.ctx, self.gdb)
        self.players = harness.make_players(self.player_count())
        self.gdb.add_players(self.players)
        self.accounts = pgserver.accounts_of(self.players)
        self.sim = self.ctx.start_sim("--clock", "manual", "--payout-interval",
                                      str(o.payout_interval), "--seed", str(o.seed), "--quiet")
        self.webhook = ns.WebhookReceiver(SECRET)
        # Copies of pools/ and scripts/ taken now: the engine reloads a script that changes,
        # and a long run must not follow edits made in the checkout meanwhile.
        self.script_dirs = harness.live_dirs(self.ctx)
        self.sio = ns.SioServer(self.ctx, TOKEN)
        per_second = self.per_second()
        self.settings = pgserver.engine_settings(
            self.sim, self.gdb, ENGINE_ID="soak", POLL_INTERVAL_SECONDS=o.poll_interval,
            CPU_POOL_PER_SECOND=per_second, RPLANT_PER_SECOND=per_second,
            CPU_POOL_CONCURRENCY=16, RPLANT_CONCURRENCY=16,
            ZPOOL_PER_SECOND=min(100, per_second), POOL_REQUEST_TIMEOUT=5,
            WEBHOOK_URLS=self.webhook.url, WEBHOOK_SECRET=SECRET, NOTIFY_TIMEOUT=5,
            SOCKETIO_URL=self.sio.url, SOCKETIO_AUTH=json.dumps({"token": TOKEN}))

    def player_count(self):
        """--accounts counts (player, pool) pairs, as the engine does: each player has a
        wallet on each of the three pools."""
        return -(-self.opts.accounts // len(pgserver.POOLS))

    def per_second(self):
        """Requests per second to cpu-pool and rplant (zpool: at most 100, its cap), so that
        a cycle over every account takes about 50 s (and 2 s for a short run's few)."""
        return max(50, self.player_count() // 50)

    def effective_interval(self):
        """The longest time between two polls of one account (zpool's, when it is capped)."""
        n = len(self.players)
        return max(self.opts.poll_interval, n / self.per_second(), n / min(100, self.per_second()))

    def start_engine(self, t):
        name = "engine-%d" % len(self.engines)
        pools, scripts = self.script_dirs
        eng = SoakEngine(self.ctx, ["--pools", pools, "--scripts", scripts],
                         self.ctx.engine_env(self.settings), name)
        self.ctx.engines.append(eng)
        self.engines.append(eng)
        self.lifetimes.append([t, None])
        return eng

    @property
    def eng(self):
        return self.engines[-1]

    def wait_polled(self, since, n, what, timeout):
        """Every account has n successful polls by the current engine after `since` (its
        poll_counts() then); on a timeout, says which are missing and why that may be."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.eng.poll_counts()
            missing = [a for a in self.accounts
                       if counts.get(a, 0) - since.get(a, 0) < n]
            if not missing:
                return
            if self.eng.proc.poll() is not None:
                fail("the engine exited (status %s) while waiting for %s: %s"
                     % (self.eng.proc.returncode, what, self.eng.stderr_text()[-2000:]))
            if time.monotonic() > deadline:
                fail("timed out after %d s waiting for %s: %d of %d accounts lack %d polls "
                     "(by pool: %s), e.g. %s%s" % (
                         timeout, what, len(missing), len(self.accounts), n,
                         {p: sum(1 for a in missing if a[1] == p) for p in pgserver.POOLS},
                         missing[:5], self.diagnosis()))
            time.sleep(0.5)

    def diagnosis(self):
        """What the engine and the simulator say now: for a failed wait or check."""
        parts = []
        try:
            st = self.sim.stats()
            parts.append("simulator: %s" % {p: (st[p]["requests"], st[p]["by_status"],
                                                 st[p]["held"]) for p in pgserver.POOLS})
            parts.append("faults still set: %s" % self.sim.get("/_sim/fault", pool="all"))
        except harness.TestFailure as e:
            parts.append("simulator: %s" % e)
        m = harness.last_metrics(self.eng)
        if m:
            parts.append("engine metrics: %s" % json.dumps(m)[:1500])
        fails = [e["_raw"][:300] for e in self.eng.snapshot()[-400:]
                 if e["event"] in harness.POLL_FAILURE_EVENTS][-5:]
        parts.append("last poll failures: %s" % fails)
        return "\n  " + "\n  ".join(parts)

    # ---- faults

    def pool_fault(self, t, index):
        kind, params, pools = POOL_FAULTS[index]
        pool = self.rng.choice(pools)
        rate = round(self.rng.uniform(0.1, 0.6), 2)
        self.sim.fault(pool, kind, rate=rate, **params)
        label = kind if kind != "status" else "status_%d" % params["code"]
        self.count("pool_" + label)
        # a fault kind stays until the pool's faults are cleared, 3..12 s later
        self.clears.append((t + self.rng.randint(3, 12), pool))

    def terminate_backends(self):
        rows = self.pg.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = 'soak' AND pid <> pg_backend_pid()")
        self.count("pg_terminate_backend")
        self.log("pg_terminate_backend: %d connections" % len(rows))

    def kill(self, t):
        old = self.eng
        old.send_signal(signal.SIGKILL)
        old.wait_exit(30)
        self.lifetimes[-1][1] = t
        self.count("sigkill")
        self.start_engine(t)
        self.log("SIGKILL, engine %d started" % (len(self.engines) - 1))

    def act(self, t, what, detail):
        if what == "pool_fault":
            self.pool_fault(t, detail)
        elif what == "terminate":
            self.terminate_backends()
        elif what == "sighup":
            # Not before engine_started: until then SIGHUP's default action (exit) holds.
            self.eng.wait_for(lambda e: e["event"] == "engine_started", 60, "engine_started")
            self.eng.send_signal(signal.SIGHUP)
            self.count("sighup")
        elif what == "kill":
            self.kill(t)
        elif what == "db_restart":
            self.pg.restart(detail)
            self.count("db_restart_" + detail)
            self.log("PostgreSQL restarted (-m %s)" % detail)
        elif what == "sio_outage":
            self.sio.stop()
            self.count("socketio_outage")
            self.outage_ends.append((t + max(5, int(detail * self.seconds)), "sio"))
            self.log("Socket.IO server down")
        elif what == "webhook_outage":
            with self.webhook.lock:
                self.webhook.statuses = [503] * 1000000
            self.count("webhook_outage")
            self.outage_ends.append((t + max(5, int(detail * self.seconds)), "webhook"))
            self.log("webhook answers 503")

    def end_outages(self, t, every=False):
        for end, pool in [c for c in self.clears if every or c[0] <= t]:
            self.sim.clear_faults(pool)
            self.clears.remove((end, pool))
        for end, what in [o for o in self.outage_ends if every or o[0] <= t]:
            if what == "sio":
                self.sio.start()
                self.log("Socket.IO server back")
            else:
                with self.webhook.lock:
                    self.webhook.statuses = []
                self.log("webhook answers 200 again")
            self.outage_ends.remove((end, what))

    # ---- samples

    def sample(self, t, last):
        rss = self.eng.rss_kib()
        polls = self.counted("pool_poll_success")
        awards = self.counted("mining_reward_detected")
        dt = max(1e-3, t - last[0])
        row = (round(t, 1), len(self.engines) - 1, rss, round((polls - last[1]) / dt, 2),
               round((awards - last[2]) / dt, 2))
        self.samples.append(row)
        return (t, polls, awards)

    def counted(self, name):
        """How many `name` lines every engine of the run has logged."""
        return sum(e.totals()[name] for e in self.engines)

    # ---- phases

    def baseline(self):
        self.log("%d accounts: waiting for every baseline (clock at 0)" % len(self.accounts))
        self.wait_polled({}, 1, "every account's baseline poll",
                         timeout=int(120 + 3 * self.effective_interval()))
        stored = len(self.gdb.accounts())
        check(stored == len(self.accounts), "%d of %d baselines stored in m2p_accounts"
              % (stored, len(self.accounts)))

    def run(self):
        self.setup()
        self.started = time.monotonic()
        self.start_engine(0.0)
        self.eng.wait_for(lambda e: e["event"] == "socketio_connected", 60,
                          "socketio_connected")
        self.baseline()
        events = schedule(self.rng, self.seconds, self.opts.short)
        self.log("baselines done; %d scheduled actions over %d s" % (len(events), self.seconds))
        t0 = time.monotonic()
        self.run_start = t0 - self.started
        clock = 0.0
        last = self.sample(0.0, (0.0, self.counted("pool_poll_success"),
                                 self.counted("mining_reward_detected")))
        next_sample = self.opts.sample
        while True:
            t = time.monotonic() - t0
            if t >= self.seconds:
                break
            if t - clock >= 1.0 or not events:
                self.sim.advance(round(t - clock, 3))
                clock = t
            while events and events[0][0] <= t:
                _, what, detail = events.pop(0)
                self.act(t, what, detail)
            self.end_outages(t)
            if t >= next_sample:
                last = self.sample(t, last)
                next_sample += self.opts.sample
            check(self.eng.proc.poll() is None, "the engine exited (status %s): %s"
                  % (self.eng.proc.returncode, self.eng.stderr_text()[-2000:]))
            time.sleep(0.2)
        self.sim.advance(round(self.seconds - clock, 3))
        self.end_outages(self.seconds, every=True)
        self.sim.clear_faults()
        self.lifetimes[-1][1] = self.seconds
        self.log("clock stopped at %d s of payouts; faults %s" % (self.seconds, self.faults))
        try:
            return self.finish()
        except harness.TestFailure as e:
            self.outputs({"failed": str(e)[:4000]})  # the figures of a failed run too
            raise

    # ---- the end

    def ledgers(self):
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = {a: pool.submit(self.sim.ledger, a[1], pgserver.wallet_of(
                self.players[a[0] - 1], a[1])) for a in self.accounts}
            return {a: f.result() for a, f in futures.items()}

    def finish(self):
        eff = self.effective_interval()
        self.wait_polled(self.eng.poll_counts(), 2, "two polls of every account after the "
                         "last payout", timeout=int(4 * eff + 120))
        self.log("every account polled twice since the last payout")
        end = self.ledgers()
        base = {a: {"paid": "0", "count": 0, "currency": end[a]["currency"]} for a in end}
        per_account = pgserver.expected_advc(base, end)
        expected = pgserver.expected_player_totals(per_account)
        diff = pgserver.totals_diff(self.gdb, expected)
        if diff:
            fail("%d players' totals differ from the ledger after every account was polled "
                 "twice since the last payout (id: (stored advc, ap), (expected)): %s%s"
                 % (len(diff), sorted(diff.items())[:6], self.diagnosis()))
        pgserver.check_accounts_exact(self.gdb, per_account, base, end)
        problems = self.gdb.integrity_problems()
        check(not problems, "integrity: %s" % problems)
        self.log("totals and mining_events exact")
        self.check_notifications()
        return self.report(per_account)

    def check_notifications(self):
        def settled():
            check(self.eng.proc.poll() is None, "the engine exited while notifying")
            return self.gdb.value("SELECT count(*) FROM mining_events WHERE NOT notified") == "0"
        harness.wait_until(settled, 300, "every award notified to both sinks", interval=1)
        self.log("every award notified")
        ids = {r[0] for r in self.gdb.sql("SELECT id::text FROM mining_events")}
        expired = self.gdb.value("SELECT count(*) FROM m2p_deliveries WHERE expired_at IS NOT"
                                 " NULL")
        check(expired == "0", "%s deliveries expired" % expired)
        hook = {}
        for ev, _, ok, status, _ in self.webhook.all_requests():
            if ok and 200 <= status < 300:
                hook[ev] = hook.get(ev, 0) + 1
        sio = {}
        for _, ev in self.sio.events():
            sio[ev["event_id"]] = sio.get(ev["event_id"], 0) + 1
        for name, got in (("webhook", hook), ("socketio", sio)):
            check(set(got) == ids, "%s: %d awards never delivered (e.g. %s), %d unknown ids "
                  "delivered" % (name, len(ids - set(got)), sorted(ids - set(got))[:5],
                                 len(set(got) - ids)))
        check(not self.webhook.failures, "bad signatures: %s" % self.webhook.failures[:3])
        self.notified = {"awards": len(ids),
                         "webhook_repeats": sum(n - 1 for n in hook.values()),
                         "socketio_repeats": sum(n - 1 for n in sio.values())}

    def rss_verdict(self):
        """The longest lifetime's samples: warm-up = its first third; level = median of the
        middle third; the last third's median must be within the tolerance of it."""
        spans = [(end - start, i) for i, (start, end) in enumerate(self.lifetimes)]
        _, life = max(spans)
        rss = [s[2] for s in self.samples if s[1] == life and s[2] is not None]
        if len(rss) < 6:
            return {"lifetime": life, "samples": len(rss), "verdict": "too few samples"}
        third = len(rss) // 3
        level = statistics.median(rss[third:2 * third])
        last = statistics.median(rss[2 * third:])
        growth = (last - level) / level
        return {"lifetime": life, "samples": len(rss), "first_kib": rss[0],
                "post_warmup_median_kib": level, "last_third_median_kib": last,
                "end_kib": rss[-1], "growth": round(growth, 4),
                "tolerance": self.opts.rss_tolerance,
                "verdict": "ok" if growth <= self.opts.rss_tolerance else "grew"}

    def state_sizes(self):
        return {pool: {"accounts": int(n), "state_bytes": int(b), "max_bytes": int(m)}
                for pool, n, b, m in self.gdb.sql(
                    "SELECT pool_name, count(*), sum(pg_column_size(state)),"
                    " max(pg_column_size(state)) FROM m2p_accounts GROUP BY 1")}

    def outputs(self, summary):
        """Prints the summary, writes it (--summary) and the plot (--plot)."""
        summary.setdefault("faults", dict(sorted(self.faults.items())))
        summary.setdefault("engine_lifetimes", [[round(a, 1), round(b or 0, 1)]
                                                for a, b in self.lifetimes])
        summary.setdefault("rss", self.rss_verdict())
        print(json.dumps(summary, indent=1))
        if self.opts.summary:
            with open(self.opts.summary, "w") as f:
                json.dump(summary, f, indent=1)
        if self.opts.plot:
            plot(self.samples, self.lifetimes, self.opts.plot)

    def report(self, per_account):
        rss = self.rss_verdict()
        summary = {
            "minutes": self.opts.minutes, "accounts": len(self.accounts),
            "players": len(self.players), "seed": self.opts.seed,
            "payout_interval": self.opts.payout_interval,
            "awards": int(self.gdb.value("SELECT count(*) FROM mining_events")),
            "advc_awarded": str(sum(per_account.values(), Decimal(0))),
            "polls": self.counted("pool_poll_success"),
            "faults": dict(sorted(self.faults.items())),
            "engine_lifetimes": [[round(a, 1), round(b, 1)] for a, b in self.lifetimes],
            "notifications": self.notified, "rss": rss, "state_sizes": self.state_sizes(),
        }
        self.summary = summary
        self.outputs(summary)
        check(rss["verdict"] != "grew", "RSS grew after warm-up: %s" % rss)
        return summary


# ======================================================================== the plot


def plot(samples, lifetimes, png):
    """samples as TSV next to the PNG, and the PNG by gnuplot (tests/install-deps.sh soak)."""
    tsv = os.path.splitext(png)[0] + ".tsv"
    with open(tsv, "w") as f:
        f.write("# t_s\tlifetime\trss_mib\tpolls_per_s\tawards_per_s\n")
        previous = 0
        for t, life, rss, polls, awards in samples:
            if life != previous:
                f.write("\n")  # gnuplot: a new line for each engine lifetime
                previous = life
            f.write("%s\t%d\t%s\t%s\t%s\n" % (t, life, "NaN" if rss is None
                                               else round(rss / 1024, 2), polls, awards))
    gp = shutil.which("gnuplot")
    if gp is None:
        print("soak: gnuplot is missing (tests/install-deps.sh soak): samples in %s, no PNG"
              % tsv)
        return
    kills = "".join("set arrow from %s, graph 0 to %s, graph 1 nohead dt 2 lc rgb 'gray'\n"
                    % (start, start) for start, _ in lifetimes[1:])
    script = """set terminal pngcairo size 1100,520 font ',10'
set output '%s'
set title 'm2p-engine soak run: RSS per engine lifetime (dashed: SIGKILL + new engine)'
set xlabel 'seconds since the baselines'
set ylabel 'RSS (MiB)'
set y2label 'per second'
set ytics nomirror
set y2tics
set key outside bottom center horizontal
set grid
%s
plot '%s' using 1:3 with linespoints pt 7 ps 0.4 lw 2 title 'RSS (MiB)', \\
     '' using 1:4 axes x1y2 with lines lw 1 title 'successful polls/s', \\
     '' using 1:5 axes x1y2 with lines lw 1 title 'awards/s'
""" % (png, kills, tsv)
    r = subprocess.run([gp], input=script, text=True, capture_output=True)
    if r.returncode != 0:
        terminal = "png" if "pngcairo" in r.stderr else None
        if terminal:
            r = subprocess.run([gp], input=script.replace("pngcairo", "png"), text=True,
                               capture_output=True)
    check(r.returncode == 0, "gnuplot failed: %s" % r.stderr[-1000:])


# ======================================================================== command line


def options(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("build", help="build directory (m2p-engine, tests/sim/m2p-sim)")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--accounts", type=int, default=10000,
                   help="accounts: (player, pool) pairs, a third of it players")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", help="PNG to write (gnuplot), with the samples as .tsv")
    p.add_argument("--summary", help="JSON file for the figures")
    p.add_argument("--payout-interval", type=float, default=None,
                   help="seconds between two payouts of one wallet (default: players / 8, "
                        "so each pool pays about 8 wallets a second)")
    p.add_argument("--poll-interval", type=int, default=None,
                   help="POLL_INTERVAL_SECONDS (default 60, 2 in --short)")
    p.add_argument("--sample", type=float, default=None,
                   help="seconds between RSS samples (default 30, 2 in --short)")
    p.add_argument("--rss-tolerance", type=float, default=0.10)
    p.add_argument("--short", action="store_true", help="the suite's form: one kill")
    o = p.parse_args(argv)
    return defaults(o)


def defaults(o):
    if o.payout_interval is None:
        o.payout_interval = max(2.0, -(-o.accounts // len(pgserver.POOLS)) / 8.0)
    if o.poll_interval is None:
        o.poll_interval = 2 if o.short else 60
    if o.sample is None:
        o.sample = 2.0 if o.short else 30.0
    return o


def run(ctx, opts):
    return Soak(ctx, opts).run()


def main(argv):
    opts = options(argv)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, harness._on_signal)
    ctx = harness.Context(opts.build, "soak")
    ok = False
    try:
        run(ctx, opts)
        ok = True
    except harness.TestFailure as e:
        print("FAIL soak: %s" % e)
    finally:
        ctx.close(failed=not ok)
        harness._kill_all()
    print("soak: %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
