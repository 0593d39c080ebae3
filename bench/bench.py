#!/usr/bin/env python3
"""The m2p-engine benchmark (driven by bench/run.sh; see that file and docs/performance.md).

One run:
  1. starts the pool simulator (tests/sim/m2p-sim, one MHD thread) pinned to the server CPU;
  2. for each account count N, R times: wrk (the ceiling: a plain HTTP client sending the
     engine's exact request over the same C keep-alive connections, cycling through the same N
     wallets) and then `m2p-engine --once` polling N accounts with cpu-pool concurrency C, both
     pinned to the client CPU, so the server side is identical and each client has one core.
     After each engine run, build/bench/http_bench sends the same requests through the
     engine's HTTP layer alone (engine/http.c, no Lua), same CPU, same C;
  3. runs build/bench/script_bench (script_poll alone, JIT off vs on);
  4. prints the tables (markdown) and writes every raw number to OUT_DIR/results.json.

Measures (per process: CPU from wait4()'s rusage, the numbers /usr/bin/time -v prints; memory
and phases from /proc while it runs):
  polls/s      N / (single_cycle_complete - engine_started), from the engine's own log
               timestamps: the polling phase, after the accounts file and scripts are loaded.
               `whole run` divides N by the process' wall time instead (start-up included).
  CPU s/1000   user+system CPU of the process per 1000 polls (wrk: per 1000 requests). The
               polling-phase figure samples /proc/PID/stat at the two log lines.
  peak RSS     VmHWM of the process (its high-water RSS, start-up included), read every 50 ms
               and at its last log line. Not ru_maxrss: Linux carries the RSS of the process
               that exec()ed into it over (here the forked Python harness, ~20 MiB).
  RSS/account  peak RSS / N; `marginal` = (peak RSS - peak RSS of the same engine polling 1
               account) / N.
  sleeps       voluntary context switches of the simulator per request: how often a request
               found the server's thread asleep and had to wake it.
The engine logs at LOG_LEVEL=info: in --once mode against a healthy simulator that is exactly
three lines per run (engine_started, pool_schedule, single_cycle_complete; a first poll never
awards), checked below, so logging costs nothing and the summary line proves every poll
succeeded.

The machine may be shared: before every measured phase the harness waits (up to
--quiet-wait seconds) for a 1-second window in which no CPU is more than --quiet-busy % busy
(and loses at most half that to steal), and the report prints what it found (`other load`).
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")
# The engine polls through the shipped pools/ directory, cpu-pool alone: CPU_POOL_CONCURRENCY
# is the C connections wrk gets too, and there is no per_second cap. rplant and zpool are
# disabled: they would poll the same wallets at their real hosts (only loopback traffic here).
POOLS = os.path.join(ROOT, "pools")


def pool_env(connections):
    return {"CPU_POOL_CONCURRENCY": str(connections), "CPU_POOL_PER_SECOND": "0",
            "RPLANT_ENABLED": "false", "ZPOOL_ENABLED": "false"}


ACCOUNTS_FORMAT = 2  # bump when wallet() or the file layout changes (cached files are reused)

# ------------------------------------------------------------------------------ accounts

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def wallet(i):
    """A checksum-valid ADVC address (base58check, version 23), distinct per i: the pool scripts
    refuse any other wallet before a request. Same as wallet() in bench/wrk-wallets.lua and
    bench/http_bench.c: payload = the first 20 bytes of SHA-256("m2p-bench-<i>") (so wallets
    differ from the first characters on, like real ones), then version 23 + payload + the first
    4 bytes of SHA-256(SHA-256(version + payload)), in base58."""
    raw = bytes([23]) + hashlib.sha256(b"m2p-bench-%d" % i).digest()[:20]
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, digit = divmod(n, 58)
        out = BASE58[digit] + out
    return out  # the version byte is not 0, so there are no leading '1's


def accounts_file(out_dir, n):
    path = os.path.join(out_dir, f"accounts-{n}.v{ACCOUNTS_FORMAT}.json")
    if os.path.exists(path):
        return path
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("[\n")
        chunk = []
        for i in range(1, n + 1):
            chunk.append('{"player_id":%d,"username":"player%d","wallet":"%s"}%s\n' %
                         (i, i, wallet(i), "," if i < n else ""))
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
        f.write("]\n")
    os.replace(tmp, path)
    return path


def check_wallet_twins():
    """wrk-wallets.lua must produce the wallets of the accounts file."""
    luajit = shutil.which("luajit")
    if not luajit:
        return "skipped (no luajit)"
    for i in (1, 2, 99999, 1000000, 3000000):
        got = subprocess.run([luajit, os.path.join(HERE, "wrk-wallets.lua"), "--print", str(i)],
                             capture_output=True, text=True, check=True).stdout.strip()
        if got != wallet(i):
            sys.exit(f"bench: wrk-wallets.lua and bench.py disagree on wallet({i}): "
                     f"{got} != {wallet(i)}")
    return "ok"

# ---------------------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid):
    """user+system CPU of a live (or zombie) process, all threads; None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def voluntary_switches(pid):
    """Voluntary context switches of all threads of a process: how often it went to sleep."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            total += proc_status_kib(f"{pid}/task/{tid}", "voluntary_ctxt_switches") or 0
    except OSError:
        pass
    return total


def cpu_times():
    """Per-CPU jiffies from /proc/stat: {cpuN: (busy, idle, steal)}."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not re.match(r"cpu\d+ ", line):
                continue
            name, *v = line.split()
            v = [int(x) for x in v]
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            out[name] = (user + nice + system + irq + softirq, idle + iowait, steal)
    return out


def cpu_usage(before, after):
    """{cpuN: {"busy": %, "steal": %}} between two cpu_times() snapshots."""
    out = {}
    for name in sorted(after):
        b = [a - c for a, c in zip(after[name], before[name])]
        total = sum(b) or 1
        out[name] = {"busy": round(100.0 * b[0] / total, 1),
                     "steal": round(100.0 * b[2] / total, 1)}
    return out


def background_load(seconds=1.0):
    """Busy % of each CPU while none of our processes work: other tenants of the machine."""
    a = cpu_times()
    time.sleep(seconds)
    return cpu_usage(a, cpu_times())


def wait_for_quiet(args):
    """Waits for a 1 s window in which no CPU is more than args.quiet_busy % busy and none
    loses more than args.quiet_busy / 2 % to the hypervisor (steal), bounded by
    args.quiet_wait seconds. Returns the busiest CPU's busy and steal % in the last window."""
    t0 = time.time()
    while True:
        load = background_load()
        busiest = max(v["busy"] for v in load.values())
        steal = max(v["steal"] for v in load.values())
        if ((busiest <= args.quiet_busy and steal <= args.quiet_busy / 2)
                or time.time() - t0 >= args.quiet_wait):
            return {"busiest": busiest, "steal": steal, "waited": round(time.time() - t0, 1)}
        time.sleep(1.0)


class HighWater:
    """Samples VmHWM of a process every `period` s until stop(); max() is the peak seen."""

    def __init__(self, pid, period=0.05):
        self.pid, self.period, self.peak = pid, period, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def read(self):
        v = proc_status_kib(self.pid, "VmHWM")
        if v:
            self.peak = max(self.peak, v)
        return v

    def run(self):
        while not self.done.is_set():
            self.read()
            self.done.wait(self.period)

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peak

# ------------------------------------------------------------------------------- running


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv


def wait_rusage(proc):
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ru


class Sim:
    def __init__(self, binary, cpu, threads, out_dir):
        self.err_path = os.path.join(out_dir, "sim.err")
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                pinned(cpu, [binary, "--port", "0", "--quiet", "--threads", str(threads)]),
                stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            sys.exit(f"bench: the simulator did not start: {line!r} {self.stderr()}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}/api/worker_stats"

    def cpu(self):
        return proc_cpu_seconds(self.proc.pid)

    def sleeps(self):
        return voluntary_switches(self.proc.pid)

    def check(self, what):
        """Exits with the simulator's status when it is gone (it must outlive every phase)."""
        if self.proc.poll() is not None:
            sys.exit(f"bench: the simulator exited ({self.proc.returncode}) during {what}: "
                     f"{self.stderr()}")

    def hold_next_request(self, ms):
        """The next cpu-pool request is answered `ms` later (a latency fault, count 1)."""
        url = (f"http://127.0.0.1:{self.port}/_sim/fault?pool=cpu-pool&kind=latency&ms={ms}"
               "&count=1")
        with urllib.request.urlopen(url, timeout=10) as r:
            r.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()[-2000:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_wrk(args, sim, n, seconds):
    quiet = wait_for_quiet(args)
    argv = pinned(args.client_cpu, ["wrk", "-t1", f"-c{args.connections}",
                                    f"-d{int(round(seconds))}s",
                                    "-s", os.path.join(HERE, "wrk-wallets.lua"), sim.url])
    env = dict(os.environ, BENCH_WALLETS=str(n))
    s0, c0, z0 = sim.cpu(), cpu_times(), sim.sleeps()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    hw = HighWater(proc.pid)
    out = proc.stdout.read()  # EOF: wrk is exiting (its VmHWM was sampled while it ran)
    peak = hw.stop()
    ru = wait_rusage(proc)
    s1, c1, z1 = sim.cpu(), cpu_times(), sim.sleeps()
    sim.check(f"wrk with {n} wallets")
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if proc.returncode != 0 or not m:
        sys.exit(f"bench: wrk failed ({proc.returncode}):\n{out}")
    requests = int(m.group(1))
    duration = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    cpu = ru.ru_utime + ru.ru_stime
    return {
        "requests": requests, "seconds": duration, "per_second": requests / duration,
        "cpu_seconds": cpu, "cpu_per_1000": 1000.0 * cpu / requests,
        "peak_rss_kib": peak, "ru_maxrss_kib": ru.ru_maxrss,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "server_cpu_seconds": s1 - s0, "server_busy": (s1 - s0) / duration,
        "server_sleeps_per_request": (z1 - z0) / requests,
        "cpus": cpu_usage(c0, c1), "quiet": quiet,
    }


def log_time(record):
    ts = datetime.strptime(record["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return ts.replace(tzinfo=timezone.utc).timestamp()


def run_engine(args, sim, n, accounts):
    quiet = wait_for_quiet(args)
    argv = pinned(args.client_cpu, [args.engine, "--once", "--env-file", "",
                                    "--accounts", accounts, "--pools", POOLS,
                                    "--scripts", os.path.join(ROOT, "scripts")])
    env = dict(os.environ, CPU_POOL_URL=sim.url, LOG_LEVEL="info", LOG_FORMAT="json",
               **pool_env(args.connections))
    s0, c0 = sim.cpu(), cpu_times()
    t_start = time.time()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    events, lines = {}, []
    hw = HighWater(proc.pid)

    def reader():
        for line in proc.stdout:
            lines.append(line)
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ev = rec.get("event")
            if ev in ("engine_started", "single_cycle_complete"):
                events[ev] = {"t": log_time(rec), "cpu": proc_cpu_seconds(proc.pid),
                              "rss_kib": proc_status_kib(proc.pid, "VmRSS"), "hwm": hw.read(),
                              "sim_cpu": sim.cpu(), "sim_sleeps": sim.sleeps(),
                              "cpus": cpu_times(), "record": rec}

    t = threading.Thread(target=reader)
    t.start()
    t.join()  # stdout closed: the engine is exiting (a zombie still has /proc/PID/stat)
    peak = hw.stop()
    ru = wait_rusage(proc)
    wall = time.time() - t_start
    s1, c1 = sim.cpu(), cpu_times()
    sim.check(f"the engine run with {n} accounts")
    stderr = proc.stderr.read()
    start, done = events.get("engine_started"), events.get("single_cycle_complete")
    if not start or not done:
        sys.exit(f"bench: the engine did not complete a cycle (exit {proc.returncode}):\n"
                 + "".join(lines[-20:]) + stderr)
    metrics = done["record"].get("metrics", {})
    ok = metrics.get("polls_successful", 0)
    polling = done["t"] - start["t"]
    cpu = ru.ru_utime + ru.ru_stime
    poll_cpu = (done["cpu"] - start["cpu"]) if done["cpu"] is not None else None
    result = {
        "accounts": n, "exit": proc.returncode,
        "polls_total": metrics.get("polls_total", 0), "polls_successful": ok,
        "log_lines": len(lines),
        "startup_seconds": start["t"] - t_start, "polling_seconds": polling,
        "wall_seconds": wall,
        "per_second": ok / polling if polling > 0 else 0.0,
        "per_second_whole_run": ok / wall,
        "cpu_seconds": cpu, "cpu_user": ru.ru_utime, "cpu_system": ru.ru_stime,
        "cpu_per_1000_whole_run": 1000.0 * cpu / max(ok, 1),
        "polling_cpu_seconds": poll_cpu,
        "cpu_per_1000": 1000.0 * poll_cpu / max(ok, 1) if poll_cpu is not None else None,
        "client_busy": poll_cpu / polling if poll_cpu is not None and polling > 0 else None,
        "peak_rss_kib": peak, "ru_maxrss_kib": ru.ru_maxrss,
        "rss_after_load_kib": start["rss_kib"], "rss_after_polling_kib": done["rss_kib"],
        "server_cpu_seconds": done["sim_cpu"] - start["sim_cpu"],
        "server_busy": (done["sim_cpu"] - start["sim_cpu"]) / polling if polling > 0 else None,
        "server_sleeps_per_request": (done["sim_sleeps"] - start["sim_sleeps"]) / max(ok, 1),
        "cpus": cpu_usage(start["cpus"], done["cpus"]),
        "cpus_whole_run": cpu_usage(c0, c1),
        "server_cpu_seconds_whole_run": s1 - s0, "quiet": quiet,
    }
    if n and ok != n:
        print(f"bench: WARNING: {n - ok} of {n} polls failed; see {args.out_dir}/engine-{n}.log",
              file=sys.stderr)
    if n and len(lines) > 3:
        print(f"bench: WARNING: the engine logged {len(lines)} lines (expected 3)", file=sys.stderr)
    with open(os.path.join(args.out_dir, f"engine-{n}.log"), "w") as f:
        f.write("".join(lines) + stderr)
    return result


def run_http_bench(args, sim, n):
    """build/bench/http_bench: the engine's HTTP layer alone, same client CPU, same C."""
    quiet = wait_for_quiet(args)
    requests = min(n, args.http_requests)
    argv = pinned(args.client_cpu, [args.http_bench, sim.url, str(requests),
                                    str(args.connections)])
    s0, z0 = sim.cpu(), sim.sleeps()
    out = subprocess.run(argv, capture_output=True, text=True)
    s1, z1 = sim.cpu(), sim.sleeps()
    sim.check(f"http_bench with {n} wallets")
    if out.returncode != 0:
        sys.exit(f"bench: http_bench failed:\n{out.stdout}{out.stderr}")
    r = json.loads(out.stdout)
    r.update({"cpu_per_1000": 1000.0 * r["cpu_seconds"] / r["requests"],
              "server_cpu_seconds": s1 - s0,
              "server_sleeps_per_request": (z1 - z0) / r["requests"], "quiet": quiet})
    return r


def run_script_bench(args):
    if not os.path.exists(args.script_bench):
        return None
    wait_for_quiet(args)
    argv = pinned(args.client_cpu, [args.script_bench, "--json",
                                    "--seconds", str(args.script_seconds),
                                    "--pools", os.path.join(ROOT, "pools"),
                                    "--scripts", os.path.join(ROOT, "scripts")])
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: script_bench failed:\n{out.stdout}{out.stderr}")
    return json.loads(out.stdout)

# ------------------------------------------------------------------------------ reporting


def median_run(runs):
    """The run with the median per_second (all of its numbers, so a row stays consistent)."""
    ordered = sorted(runs, key=lambda r: r["per_second"])
    return ordered[(len(ordered) - 1) // 2]


def fmt_n(n):
    return f"{n // 1000000}M" if n >= 1000000 and n % 1000000 == 0 else (
        f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n))


def mib(kib):
    return kib / 1024.0


def machine_info(args):
    info = {"date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next((l.split(":", 1)[1].strip() for l in f
                                      if l.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            info["ram_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def version(argv, pattern=r"(.*)"):
        try:
            out = subprocess.run(argv, capture_output=True, text=True).stdout + ""
            m = re.search(pattern, out)
            return m.group(1).strip() if m else out.strip()[:60]
        except OSError:
            return "?"

    info["wrk"] = version(["wrk", "--version"], r"wrk (\S+)")
    info["libcurl"] = version(["pkg-config", "--modversion", "libcurl"])
    info["luajit"] = version(["pkg-config", "--modversion", "luajit"])
    info["libmicrohttpd"] = version(["pkg-config", "--modversion", "libmicrohttpd"])
    info["commit"] = version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = version(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    info["tree"] = "modified" if dirty else "clean"
    try:
        cache = open(os.path.join(os.path.dirname(args.engine), "CMakeCache.txt")).read()
        m = re.search(r"CMAKE_BUILD_TYPE:STRING=(.*)", cache)
        info["build_type"] = (m.group(1) if m and m.group(1) else "RelWithDebInfo (default)")
    except OSError:
        info["build_type"] = "?"
    return info


def report(args, info, rows, baseline, script, https):
    C = args.connections
    p = print
    p()
    p(f"## m2p-engine benchmark ({info['date_utc']})")
    p()
    p(f"Machine: {info.get('cpu_model', '?')}, {info['cpus']} CPUs, "
      f"{info.get('ram_gib', '?')} GiB, Linux {info['kernel']}; wrk {info['wrk']}, "
      f"libcurl {info['libcurl']}, LuaJIT {info['luajit']}, "
      f"libmicrohttpd {info['libmicrohttpd']}; commit {info['commit']} "
      f"({info['tree']} tree), build {info['build_type']}.")
    p(f"Layout: simulator (1 MHD thread) on CPU {args.sim_cpu}; wrk -t1 and m2p-engine "
      f"(one event loop) on CPU {args.client_cpu}; C = {C} connections for both; "
      f"median of {args.repeat} run(s) per size (1M: {args.repeat_large}).")
    p(f"Before each measured phase the harness waited (at most {args.quiet_wait:g} s) for a 1 s "
      f"window with every CPU <= {args.quiet_busy:g}% busy and <= {args.quiet_busy / 2:g}% "
      f"steal; `other load %` below is busy+steal of the busiest CPU in the last window before "
      f"the phase (wrk / engine), `steal %` the hypervisor's share during the engine's polling.")
    p()
    p("| accounts | wrk req/s | engine polls/s | ratio | wrk CPU s/1000 | engine CPU s/1000 "
      "| ratio | wrk peak RSS | engine peak RSS | ratio | engine RSS/account |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, w, e in rows:
        p(f"| {fmt_n(n)} | {w['per_second']:,.0f} | {e['per_second']:,.0f} | "
          f"**{e['per_second'] / w['per_second']:.2f}** | {w['cpu_per_1000']:.3f} | "
          f"{e['cpu_per_1000']:.3f} | {e['cpu_per_1000'] / w['cpu_per_1000']:.1f}x | "
          f"{mib(w['peak_rss_kib']):.1f} MiB | {mib(e['peak_rss_kib']):,.1f} MiB | "
          f"{e['peak_rss_kib'] / w['peak_rss_kib']:,.0f}x | "
          f"**{e['peak_rss_kib'] * 1024 / n:,.0f} B** |")
    p()
    p("Targets: polls/s ratio >= 0.50 at 100k accounts; RSS/account <= 1 KiB (1024 B) at 1M.")
    for n, w, e in rows:
        if n == 100000:
            r = e["per_second"] / w["per_second"]
            p(f"  100k throughput: {r:.2f} of wrk -> {'MET' if r >= 0.5 else 'MISSED'}")
        if n == 1000000:
            b = e["peak_rss_kib"] * 1024 / n
            p(f"  1M memory: {b:,.0f} B/account -> {'MET' if b <= 1024 else 'MISSED'}")
    p()
    p("Details (same runs):")
    p()
    p("| accounts | start-up s | polling s | polls/s whole run | engine CPU s/1000 whole run "
      "| client CPU busy | server CPU busy (engine / wrk) | server CPU s/1000 (engine / wrk) "
      "| server sleeps/request (engine / wrk) "
      "| RSS after load | RSS after polling | marginal RSS/account | steal % | other load % |")
    p("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, w, e in rows:
        marginal = (e["peak_rss_kib"] - baseline["peak_rss_kib"]) * 1024 / n
        steal = max(v["steal"] for v in e["cpus"].values())
        p(f"| {fmt_n(n)} | {e['startup_seconds']:.2f} | {e['polling_seconds']:.2f} | "
          f"{e['per_second_whole_run']:,.0f} | {e['cpu_per_1000_whole_run']:.3f} | "
          f"{100 * e['client_busy']:.0f}% | {100 * e['server_busy']:.0f}% / "
          f"{100 * w['server_busy']:.0f}% | "
          f"{1000 * e['server_cpu_seconds'] / n:.3f} / "
          f"{1000 * w['server_cpu_seconds'] / w['requests']:.3f} | "
          f"{e['server_sleeps_per_request']:.2f} / {w['server_sleeps_per_request']:.2f} | "
          f"{mib(e['rss_after_load_kib'] or 0):,.1f} MiB | "
          f"{mib(e['rss_after_polling_kib'] or 0):,.1f} MiB | {marginal:,.0f} B | {steal:.0f} | "
          f"{w['quiet']['busiest']:.0f}+{w['quiet']['steal']:.0f} / "
          f"{e['quiet']['busiest']:.0f}+{e['quiet']['steal']:.0f} |")
    p()
    if https:
        p("The engine's HTTP layer alone (build/bench/http_bench: engine/http.c, libcurl multi on "
          "libev, same C, same server, same client CPU, no scheduler and no Lua; "
          f"at most {args.http_requests:,} requests):")
        p()
        p("| accounts | requests/s | of wrk | CPU s/1000 | server sleeps/request |")
        p("|---:|---:|---:|---:|---:|")
        for (n, w, e), h in zip(rows, https):
            p(f"| {fmt_n(n)} | {h['per_second']:,.0f} | {h['per_second'] / w['per_second']:.2f} | "
              f"{h['cpu_per_1000']:.3f} | {h['server_sleeps_per_request']:.2f} |")
        p()
    p(f"Engine with 1 account (fixed cost): peak RSS {mib(baseline['peak_rss_kib']):.1f} MiB, "
      f"{baseline['cpu_seconds']:.2f} CPU s.")
    if script:
        p()
        p(f"Scripting path alone (build/bench/script_bench, {script['body_bytes']}-byte recorded "
          f"cpu-pool response, {script['seconds']} s per case, CPU {args.client_cpu}):")
        p()
        p("| case | JIT off (engine) | JIT on (unsafe_allow_jit) | JIT on / off |")
        p("|---|---:|---:|---:|")
        for case in script["cases"]:
            p(f"| {case['name']} | {case['off_per_second']:,.0f}/s ({case['off_us']:.1f} us) | "
              f"{case['on_per_second']:,.0f}/s ({case['on_us']:.1f} us) | "
              f"{case['on_per_second'] / case['off_per_second']:.2f}x |")
    p()
    p(f"Command: {args.command}")
    p(f"Raw numbers: {os.path.join(args.out_dir, 'results.json')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--wrk-seconds", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="runs per size below 1M (median kept)")
    ap.add_argument("--repeat-large", type=int, default=1, help="runs per size of 1M or more")
    ap.add_argument("--sim-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--script-seconds", type=float, default=3)
    ap.add_argument("--http-requests", type=int, default=100000,
                    help="requests per http_bench run (at most N)")
    ap.add_argument("--quiet-busy", type=float, default=10,
                    help="a CPU above this %% busy (with nothing of ours working) is noise")
    ap.add_argument("--quiet-wait", type=float, default=20,
                    help="seconds to wait for a quiet window before each phase")
    ap.add_argument("--out-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                       "m2p-bench"))
    ap.add_argument("--command", default=" ".join(sys.argv))
    args = ap.parse_args()
    args.engine = os.path.join(args.build_dir, "m2p-engine")
    args.sim = os.path.join(args.build_dir, "tests", "sim", "m2p-sim")
    args.script_bench = os.path.join(args.build_dir, "bench", "script_bench")
    args.http_bench = os.path.join(args.build_dir, "bench", "http_bench")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for path in (args.engine, args.sim):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is not built")
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is missing (tests/install-deps.sh installs wrk; taskset is "
                     "in util-linux)")
    if max(sizes) > 3000000:
        sys.exit("bench: at most 3,000,000 accounts")
    os.makedirs(args.out_dir, exist_ok=True)

    print(f"bench: wallets twin check: {check_wallet_twins()}", file=sys.stderr)
    for n in sizes:
        t = time.time()
        accounts_file(args.out_dir, n)
        print(f"bench: accounts file for {n}: {time.time() - t:.1f} s", file=sys.stderr)
    # The fixed cost: the same engine polling a single account. (Not 0 accounts: `--once`
    # with no account never exits, see docs/performance.md.)
    single = accounts_file(args.out_dir, 1)

    os.sched_setaffinity(0, {args.sim_cpu})  # this harness sleeps; keep it off the client CPU
    info = machine_info(args)
    sim = Sim(args.sim, args.sim_cpu, 1, args.out_dir)
    results = {"machine": info, "sizes": {}, "args": vars(args)}
    rows, https = [], []
    try:
        run_wrk(args, sim, sizes[0], 2)  # warm-up, not counted
        sim.hold_next_request(500)  # long enough for the VmHWM sampler to see the process
        baseline = run_engine(args, sim, 1, single)
        results["baseline"] = baseline
        for n in sizes:
            repeat = args.repeat_large if n >= 1000000 else args.repeat
            wrks, engines, hs = [], [], []
            for r in range(repeat):
                w = run_wrk(args, sim, n, args.wrk_seconds)
                print(f"bench: N={n} run {r + 1}/{repeat}: wrk {w['per_second']:,.0f} req/s "
                      f"(other load {w['quiet']['busiest']:.0f}%)", file=sys.stderr)
                e = run_engine(args, sim, n, accounts_file(args.out_dir, n))
                print(f"bench: N={n} run {r + 1}/{repeat}: engine {e['per_second']:,.0f} polls/s, "
                      f"peak RSS {mib(e['peak_rss_kib']):,.1f} MiB (other load "
                      f"{e['quiet']['busiest']:.0f}%)", file=sys.stderr)
                wrks.append(w)
                engines.append(e)
                if os.path.exists(args.http_bench):
                    hs.append(run_http_bench(args, sim, n))
            results["sizes"][str(n)] = {"wrk": wrks, "engine": engines, "http_bench": hs}
            rows.append((n, median_run(wrks), median_run(engines)))
            if hs:
                https.append(median_run(hs))
    finally:
        sim.stop()
    script = run_script_bench(args)
    results["script_bench"] = script
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    report(args, info, rows, baseline, script, https if len(https) == len(rows) else None)


if __name__ == "__main__":
    main()
