#!/usr/bin/env python3
"""Notification latency: from an award's commit to the game's receivers, on loopback.

A benchmark, not a test (nothing here fails on a slow machine). Two parts, one command:

  --transport-only   The reference alone: a bare `socket.io-client` from npm, forced to HTTP
                     long-polling (transports ["polling"]) and to WebSocket (["websocket"]),
                     emitting `mining_reward` with an ack at --rate emits/s for --seconds per
                     transport to the official `socket.io` server, the two taking turns in
                     blocks of --block seconds (same server, same run).
  (default)          The whole path: a throw-away PostgreSQL (tests/integration/pgserver.py),
                     the pool simulator paying --players wallets every --payout-interval s
                     (about players / payout-interval awards/s), m2p-engine polling them every
                     --poll-interval s with SOCKETIO_URL, WEBHOOK_URLS and PG_NOTIFY_CHANNEL
                     pointing at this benchmark's receivers, and the bare client of
                     --transport-only emitting at the same time to the same Socket.IO server.

Latency of an engine event = its arrival at the receiver - its commit. The commit time is the
arrival of the award's NOTIFY on a LISTENing connection (bench/notify_latency.c, libpq):
PostgreSQL delivers a NOTIFY at commit, so this is commit + one loopback hop. As a cross-check
the table also shows arrival - the event's "timestamp" field (the award transaction's now(),
i.e. its start, to the millisecond). All receive and commit times are CLOCK_MONOTONIC in
every process (Node's process.hrtime, Python's time.monotonic_ns, the C listener).

Processes: bench/notify_latency.js receiver (the socket.io 4.8 server from
examples/socketio-relay/node_modules, acking every event, and a node:http webhook receiver
answering 200), bench/notify_latency.js client (the bare clients), the listener, the
simulator, PostgreSQL and the engine: separate processes, so no receiver shares an event loop
with a sender.

Usage:
  python3 bench/notify_latency.py --transport-only [--seconds 60] [--rate 100] [--block 5]
  python3 bench/notify_latency.py [--build build] [--seconds 60] [--players 200]
                                  [--payout-interval 2] [--poll-interval 1]
Needs node, `npm ci` in examples/socketio-relay, and for the full run a built engine and
simulator (`cmake --build BUILD`), PostgreSQL 15 and libpq's headers (cc, pkg-config).
"""
import argparse
import calendar
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
NODE_SCRIPT = os.path.join(HERE, "notify_latency.js")
MODULES = os.path.join(ROOT, "examples", "socketio-relay", "node_modules")
CHANNEL = "m2p_bench_latency"
TICK = os.sysconf("SC_CLK_TCK")

_children = []


# ============================================================================ processes


class Lines:
    """A child process whose stdout lines are collected (JSON decoded when they are JSON)."""

    def __init__(self, name, argv, env=None, stdin=subprocess.DEVNULL, stderr_dir=None):
        self.name = name
        self.stderr_path = os.path.join(stderr_dir, name + ".stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env, cwd=stderr_dir)
        _children.append(self.proc)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.lines)

    def wait_line(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            i = 0
            while True:
                while i < len(self.lines):
                    if predicate(self.lines[i]):
                        return self.lines[i]
                    i += 1
                if self.eof or time.monotonic() > deadline:
                    sys.exit("notify_latency: %s: no %s (%s); stderr: %s"
                             % (self.name, what, "exited" if self.eof else "timed out",
                                self.stderr_tail()))
                self.cond.wait(0.2)

    def stderr_tail(self, n=8):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def cpu_seconds(self):
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode


def json_lines(lines):
    out = []
    for line in lines:
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def node_env():
    env = dict(os.environ)
    env["NODE_PATH"] = MODULES
    return env


def start_receiver(work):
    rec = Lines("receiver", ["node", NODE_SCRIPT, "receiver"], env=node_env(), stderr_dir=work)
    ports = {}
    for what in ("socketio", "webhook"):
        line = rec.wait_line(lambda l, w=what: ('"listening":"%s"' % w) in l, 30,
                             "listening line for " + what)
        ports[what] = json.loads(line)["port"]
    return rec, ports


def start_client(work, port, args):
    return Lines("client", ["node", NODE_SCRIPT, "client",
                            "--url", "http://127.0.0.1:%d" % port,
                            "--rate", str(args.rate), "--seconds", str(args.seconds),
                            "--block", str(args.block),
                            "--transports", "polling,websocket"],
                 env=node_env(), stderr_dir=work)


# ============================================================================ statistics


def percentile(sorted_values, p):
    """Nearest rank: the smallest value with at least p % of the values at or below it."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[k - 1]


def summary(values_ms):
    v = sorted(values_ms)
    return {"n": len(v), "p50": percentile(v, 50), "p90": percentile(v, 90),
            "p99": percentile(v, 99), "max": v[-1] if v else None}


def fmt_ms(x):
    return "-" if x is None else "%.1f" % x


def table(rows):
    """rows: [(label, count text, summary)] -> markdown lines."""
    out = ["| path | events | p50 ms | p90 ms | p99 ms | max ms |",
           "|---|---:|---:|---:|---:|---:|"]
    for label, count, s in rows:
        out.append("| %s | %s | %s | %s | %s | %s |" % (label, count, fmt_ms(s["p50"]),
                                                       fmt_ms(s["p90"]), fmt_ms(s["p99"]),
                                                       fmt_ms(s["max"])))
    return out


def bare_rows(client_lines, receipts):
    """Rows for the bare client: emit -> server receipt and emit -> ack, per transport."""
    emits = [r for r in json_lines(client_lines) if "c" in r]
    rows = []
    for transport in ("polling", "websocket"):
        mine = [r for r in emits if r["c"] == transport]
        acked = [r for r in mine if r.get("ack")]
        to_server = [(int(receipts[r["id"]]) - int(r["send"])) / 1e6
                     for r in mine if r["id"] in receipts]
        to_ack = [(int(r["ack"]) - int(r["send"])) / 1e6 for r in acked]
        rows.append(("bare socket.io-client, %s: emit -> server receipt" % transport,
                     "%d / %d" % (len(to_server), len(mine)), summary(to_server)))
        rows.append(("bare socket.io-client, %s: emit -> ack" % transport,
                     "%d / %d" % (len(to_ack), len(mine)), summary(to_ack)))
    return rows


def receipts_of(receiver_lines, kind):
    """{event_id: first receipt record} of one receiver ("sio" or "wh")."""
    out = {}
    for r in json_lines(receiver_lines):
        if r.get("r") == kind and r.get("id") is not None and r["id"] not in out:
            out[r["id"]] = r
    return out


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return ("Machine: %s, %d CPUs, Linux %s; node %s, socket.io %s / socket.io-client %s; "
            "load average before: %s" % (cpu, os.cpu_count(), platform.release(), node,
                                         package_version("socket.io"),
                                         package_version("socket.io-client"),
                                         " ".join("%.2f" % x for x in os.getloadavg())))


def package_version(name):
    try:
        with open(os.path.join(MODULES, name, "package.json")) as f:
            return json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        return "?"


# ============================================================================ part A


def transport_only(args, work):
    print(machine_line())
    rec, ports = start_receiver(work)
    try:
        cli = start_client(work, ports["socketio"], args)
        cli.wait_line(lambda l: l.startswith('{"done"'), args.seconds * 2 + 60,
                      "end of the emits")
        cli.stop()
        time.sleep(0.3)  # the receiver flushes its lines every 100 ms
        receipts = {i: r["mono"] for i, r in receipts_of(rec.snapshot(), "sio").items()}
    finally:
        rec.stop()
    print()
    print("%d emits/s per transport, %d s each, alternating blocks of %g s; "
          "`python3 bench/notify_latency.py --transport-only --seconds %d --rate %d --block %g`"
          % (args.rate, args.seconds, args.block, args.seconds, args.rate, args.block))
    print()
    print("\n".join(table(bare_rows(cli.snapshot(), receipts))))


# ============================================================================ part B


def build_listener(work):
    binary = os.path.join(work, "notify_latency_listen")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], capture_output=True,
                           text=True, check=True).stdout.split()
    subprocess.run(["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra",
                    "-Werror", "-o", binary, os.path.join(HERE, "notify_latency.c")] + flags,
                   check=True)
    return binary


def wall_ms(ts):
    """'2026-12-01T22:39:39.840Z' -> ms since the epoch."""
    base, _, frac = ts.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000.0 + (float("0." + frac) * 1000.0 if frac else 0.0)


def setup_database(args, work, engine):
    import harness
    from pgserver import GameDb, PgServer
    # track_functions: calls and time per function (m2p_commit_poll, m2p_claim_deliveries,
    # m2p_see_outbox, ...), for "where the time goes".
    pg = PgServer(settings={"track_functions": "all"})
    gdb = GameDb.create(pg, "bench")
    env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": gdb.conninfo()}
    subprocess.run([engine, "--migrate", "--env-file", ""], env=env, check=True, cwd=work,
                   stdout=subprocess.DEVNULL)
    gdb.add_players(harness.make_players(args.players, zpool=False))
    return pg, gdb


def start_sim(args, work):
    sim = Lines("sim", [os.path.join(args.build, "tests", "sim", "m2p-sim"), "--port", "0",
                        "--quiet", "--payout-interval", str(args.payout_interval)],
                stderr_dir=work)
    line = sim.wait_line(lambda l: l.startswith("listening on 127.0.0.1:"), 30, "port")
    return sim, "http://127.0.0.1:%s" % line.rsplit(":", 1)[1]


def engine_settings(args, gdb, sim_base, ports):
    return {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": gdb.conninfo(),
        "CPU_POOL_URL": sim_base + "/api/worker_stats",
        "POLL_INTERVAL_SECONDS": str(args.poll_interval),
        # the shipped pools/, cpu-pool alone (bench.py's pool_env): loopback traffic only
        "CPU_POOL_CONCURRENCY": "64",
        "CPU_POOL_PER_SECOND": "0",
        "RPLANT_ENABLED": "false",
        "ZPOOL_ENABLED": "false",
        "MAX_AWARD_ADVC": "0",
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "json",
        "SOCKETIO_URL": "http://127.0.0.1:%d" % ports["socketio"],
        "SOCKETIO_AUTH": '{"token":"bench"}',
        "WEBHOOK_URLS": "http://127.0.0.1:%d/m2p" % ports["webhook"],
        "WEBHOOK_SECRET": "bench-secret",
        "PG_NOTIFY_CHANNEL": CHANNEL,
        "ENGINE_ID": "bench",
    }


def end_to_end(args, work):
    engine = os.path.join(args.build, "m2p-engine")
    for binary in (engine, os.path.join(args.build, "tests", "sim", "m2p-sim")):
        if not os.access(binary, os.X_OK):
            sys.exit("notify_latency: %s is missing: cmake --build %s" % (binary, args.build))
    print(machine_line())
    listener_bin = build_listener(work)
    pg, gdb = setup_database(args, work, engine)
    procs = []
    try:
        sim, sim_base = start_sim(args, work)
        procs.append(sim)
        rec, ports = start_receiver(work)
        procs.append(rec)
        lis = Lines("listener", [listener_bin, gdb.conninfo(), CHANNEL],
                    stdin=subprocess.PIPE, stderr_dir=work)
        procs.append(lis)
        lis.wait_line(lambda l: l == "listening", 30, "LISTEN")
        eng = Lines("engine", [engine, "--env-file", "", "--pools", os.path.join(ROOT, "pools"),
                               "--scripts", os.path.join(ROOT, "scripts")],
                    env=engine_settings(args, gdb, sim_base, ports), stderr_dir=work)
        procs.append(eng)
        eng.wait_line(lambda l: '"engine_started"' in l, 60, "engine_started")
        time.sleep(args.warmup)
        cli = start_client(work, ports["socketio"], args)
        procs.append(cli)
        cli.wait_line(lambda l: l.startswith('{"ready"'), 30, "bare clients connected")
        gdb.sql("SELECT pg_stat_reset()")
        t0 = time.monotonic_ns()
        cpu0 = {p.name: p.cpu_seconds() for p in (eng, sim, rec, cli)}
        cpu0["postgres"] = postgres_cpu_seconds(pg)
        load0 = os.getloadavg()
        cli.wait_line(lambda l: l.startswith('{"done"'), args.seconds * 2 + 60,
                      "end of the bare emits")
        # The bare client's window is 2 x --seconds (the transports take turns); the engine's
        # window is the same span.
        t1 = time.monotonic_ns()
        cpu1 = {p.name: p.cpu_seconds() for p in (eng, sim, rec, cli)}
        cpu1["postgres"] = postgres_cpu_seconds(pg)
        time.sleep(args.drain)
        eng_rc = eng.stop(60)
        t_exit = time.monotonic_ns()
        stages = delivery_times(gdb)
        time.sleep(0.5)  # backends flush their function statistics when they exit
        functions = (function_stats(gdb), (t_exit - t0) / 1e9)
    finally:
        for p in reversed(procs):
            if p.name != "engine":
                p.stop()
            elif p.proc.poll() is None:
                p.stop(60)
        pg.close()

    report(args, t0, t1, lis, rec, cli, eng, eng_rc, cpu0, cpu1, load0, stages, functions)


def postgres_cpu_seconds(pg):
    """user+system CPU of the postmaster's children (backends, autovacuum, ...), so far."""
    try:
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
    except (OSError, ValueError):
        return None
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if postmaster in (int(fields[1]), int(pid)):
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def function_stats(gdb):
    """[(function, calls, total ms, self ms)] since the window started (pg_stat_reset)."""
    return [(name, int(calls), float(total), float(own)) for name, calls, total, own in gdb.sql(
        "SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions"
        " ORDER BY total_time DESC")]


def delivery_times(gdb):
    """{"socketio"|"webhook": {event_id: (claimed, delivered)}}: when the delivering claim's
    statement started (m2p_deliveries.last_attempt) and when the sink's answer was recorded
    (delivered_at), in ns since the epoch (PostgreSQL's now(), microseconds)."""
    out = {"socketio": {}, "webhook": {}}
    for sink, event_id, claimed, delivered in gdb.sql(
            "SELECT d.sink, o.mining_event_id::text,"
            " (extract(epoch FROM d.last_attempt) * 1e6)::bigint::text,"
            " (extract(epoch FROM d.delivered_at) * 1e6)::bigint::text"
            " FROM m2p_deliveries d JOIN m2p_outbox o ON o.id = d.outbox_id"):
        kind = "webhook" if sink.startswith("webhook") else "socketio"
        out[kind][event_id] = (int(claimed) * 1000 if claimed else None,
                               int(delivered) * 1000 if delivered else None)
    return out


def stage_rows(label, kind, stages, in_window, got, wall_offset_ns):
    """Where the time goes for one sink: commit -> claim statement -> receipt -> recorded."""
    to_claim, claim_to_receipt, receipt_to_done = [], [], []
    for event_id, commit in in_window.items():
        claimed, delivered = stages.get(kind, {}).get(event_id, (None, None))
        r = got.get(event_id)
        if claimed is None or r is None:
            continue
        commit_wall = commit + wall_offset_ns
        receipt_wall = int(r["mono"]) + wall_offset_ns
        to_claim.append((claimed - commit_wall) / 1e6)
        claim_to_receipt.append((receipt_wall - claimed) / 1e6)
        if delivered is not None:
            receipt_to_done.append((delivered - receipt_wall) / 1e6)
    return [(label + ": commit -> claim statement starts", "%d" % len(to_claim),
             summary(to_claim)),
            (label + ": claim statement starts -> receipt", "%d" % len(claim_to_receipt),
             summary(claim_to_receipt)),
            (label + ": receipt -> delivery recorded", "%d" % len(receipt_to_done),
             summary(receipt_to_done))]


SLICE = 30  # seconds per slice of the drift line


def slice_line(label, values, fmt):
    return "| %s | %s |" % (label, " | ".join("-" if v is None else fmt % v for v in values))


def report(args, t0, t1, lis, rec, cli, eng, eng_rc, cpu0, cpu1, load0, stages, functions):
    commits = {}
    for line in lis.snapshot():
        ns, _, payload = line.partition("\t")
        if not payload:
            continue
        try:
            event = json.loads(payload)
            event_id = str(event["event_id"]) if isinstance(event, dict) else str(event)
        except ValueError:
            event_id = payload.strip()
        commits.setdefault(event_id, int(ns))
    in_window = {i: ns for i, ns in commits.items() if t0 <= ns <= t1}
    seconds = (t1 - t0) / 1e9
    sio = receipts_of(rec.snapshot(), "sio")
    wh = receipts_of(rec.snapshot(), "wh")
    receipts = {i: r["mono"] for i, r in sio.items()}

    rows = []
    for label, got in (("engine -> Socket.IO server (acked by it)", sio),
                       ("engine -> webhook receiver", wh)):
        if in_window:
            lat = [(int(got[i]["mono"]) - c) / 1e6 for i, c in in_window.items() if i in got]
            rows.append((label + ": commit (NOTIFY) -> receipt",
                         "%d / %d" % (len(lat), len(in_window)), summary(lat)))
        # Cross-check on the event's own timestamp (transaction start, ms, wall clock).
        mine = [r for i, r in got.items() if not i.startswith("bare-") and r.get("ts")
                and (i in in_window if in_window else t0 <= int(r["mono"]) <= t1)]
        lat_ts = [r["wall"] - wall_ms(r["ts"]) for r in mine]
        rows.append((label + ": \"timestamp\" -> receipt", "%d" % len(lat_ts), summary(lat_ts)))
    rows += bare_rows(cli.snapshot(), receipts)
    # Wall clock = monotonic + offset (PostgreSQL's now() is wall clock, the rest monotonic).
    wall_offset_ns = time.time_ns() - time.monotonic_ns()
    breakdown = []
    if in_window:
        breakdown += stage_rows("Socket.IO", "socketio", stages, in_window, sio, wall_offset_ns)
        breakdown += stage_rows("webhook", "webhook", stages, in_window, wh, wall_offset_ns)
    transports = {}
    for i, r in sio.items():
        if i in in_window or (not in_window and not i.startswith("bare-")):
            transports[r.get("tr")] = transports.get(r.get("tr"), 0) + 1

    events = json_lines(eng.snapshot())
    problems = {}
    for e in events:
        if e.get("level") in ("warning", "error") or e.get("event", "").startswith("notif"):
            problems[e.get("event")] = problems.get(e.get("event"), 0) + 1
    print()
    print("`python3 bench/notify_latency.py --build %s --seconds %d --players %d "
          "--payout-interval %g --poll-interval %d`: %d accounts paid every %g s, polled every "
          "%d s; bare client %d emits/s per transport in blocks of %g s during the same window"
          % (args.build, args.seconds, args.players, args.payout_interval, args.poll_interval,
             args.players, args.payout_interval, args.poll_interval, args.rate, args.block))
    print()
    print("window %.1f s: %d awards committed (%.1f awards/s) by the NOTIFYs; load average "
          "%s at its start" % (seconds, len(in_window), len(in_window) / seconds,
                               " ".join("%.2f" % x for x in load0)))
    cpu = ", ".join("%s %.0f%%" % (k, 100.0 * (cpu1[k] - cpu0[k]) / seconds)
                    for k in cpu0 if cpu0[k] is not None and cpu1[k] is not None)
    print("CPU in the window (of one core): %s; engine exit status %s" % (cpu, eng_rc))
    if problems:
        print("engine warnings/errors/notification lines: %s" % json.dumps(problems))
    print("engine's Socket.IO events in the window by Engine.IO transport: %s"
          % json.dumps(transports))
    print()
    print("\n".join(table(rows)))
    if breakdown:
        print()
        print("Where the engine's time goes (PostgreSQL's now() of the claim and of the "
              "recorded delivery, m2p_deliveries.last_attempt / delivered_at):")
        print()
        print("\n".join(table(breakdown)))
    if in_window and seconds >= 60:
        print()
        print("p99 ms by %d s slice of the window (commit -> receipt; does it drift as the "
              "outbox grows?):" % SLICE)
        print()
        starts = range(0, int(seconds) // SLICE * SLICE, SLICE)
        print(slice_line("slice start, s", starts, "%d"))
        print("|---|" + "---:|" * len(starts))
        for label, got in (("Socket.IO", sio), ("webhook", wh)):
            per = [[] for _ in range(int(seconds) // SLICE + 1)]
            for i, c in in_window.items():
                if i in got:
                    per[(c - t0) // (SLICE * 10**9)].append((int(got[i]["mono"]) - c) / 1e6)
            print(slice_line(label, [summary(v)["p99"] for v in per[:int(seconds) // SLICE]],
                             "%.1f"))
    functions, span = functions
    if functions:
        print()
        print("PostgreSQL functions from the window's start to the engine's exit, %.1f s "
              "(pg_stat_user_functions; total includes the functions each one calls):" % span)
        print()
        print("| function | calls | calls/s | mean ms (total) | mean ms (self) |"
              " total ms per s |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, calls, total, own in functions:
            print("| %s | %d | %.1f | %.2f | %.2f | %.0f |"
                  % (name, calls, calls / span, total / max(calls, 1),
                     own / max(calls, 1), total / span))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--transport-only", action="store_true",
                    help="only the bare socket.io-client, polling vs websocket")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=60, help="emitting time per transport")
    ap.add_argument("--rate", type=int, default=100, help="bare client emits/s")
    ap.add_argument("--block", type=float, default=5, help="seconds per turn of a transport")
    ap.add_argument("--players", type=int, default=200)
    ap.add_argument("--payout-interval", type=float, default=2.0)
    ap.add_argument("--poll-interval", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=8.0,
                    help="seconds after engine_started before measuring (baselines first)")
    ap.add_argument("--drain", type=float, default=5.0,
                    help="seconds after the window for late deliveries to arrive")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    if not shutil.which("node"):
        sys.exit("notify_latency: node is not installed")
    if not os.path.isdir(os.path.join(MODULES, "socket.io-client")):
        sys.exit("notify_latency: run `npm ci` in examples/socketio-relay first")
    work = tempfile.mkdtemp(prefix="m2p-notify-latency-")
    try:
        if args.transport_only:
            transport_only(args, work)
        else:
            end_to_end(args, work)
    finally:
        for p in _children:
            if p.poll() is None:
                p.kill()
        if os.environ.get("M2P_KEEP_TMP"):
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
