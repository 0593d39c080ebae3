#!/usr/bin/env python3
"""Instructions per poll, user space, counted by valgrind's callgrind: the issue 11 targets.

Counting instructions instead of timing makes the figure stable on a shared, noisy machine.
Each figure is the DIFFERENCE of two runs divided by the difference of their polls, so that
start-up (LuaJIT, the scripts, the accounts file, every wallet check) and shutdown cancel out:

  first poll         m2p-engine --once over LARGE accounts minus over SMALL accounts
                     (default 12,000 - 2,000): every poll is an account's first observation.
  steady-state poll  the service (no --once) over STEADY accounts, POLL_INTERVAL_SECONDS=1,
                     stopped with SIGTERM after about N + P1 polls and, in a second run, after
                     about N + P2 polls: the polls between are each account's second, third...
                     observation of an unchanged pool (the simulator runs with a manual clock,
                     so nothing is paid and no poll awards). Under valgrind the engine cannot
                     keep up with a 1 s interval, so it polls back to back, as --once does.
                     The poll counts are exact (engine_stopped's polls_total), whenever the
                     signal lands.

Both run `m2p-engine --accounts` through the shipped pools/ with cpu-pool alone (bench.py's
pool_env; no database: the database's share is bench/db_bench.py's) against `m2p-sim
--threads 1` on loopback, with C connections, the engine pinned to the client CPU. Then the same differences per component (inclusive, the entry points of bench/profile.py).

    python3 bench/instructions.py [--build-dir build] [--small 2000] [--large 12000]
        [--steady-accounts 2000] [--steady-polls 2000,6000] [--connections 64]
        [--target 150000] [--no-first] [--no-steady] [--keep]

About 3 minutes on the reference machine (docs/performance.md). Needs valgrind.
"""
import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (accounts files, pinning)

# bench/profile.py by path: "profile" is also a module of the standard library.
_spec = importlib.util.spec_from_file_location("m2p_profile", os.path.join(HERE, "profile.py"))
profile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(profile)

# Entry points outside script_poll/script_request_build/libcurl that the "rest" row leaves in:
# the poller, the scheduler, libev and the engine's HTTP glue.
TOP_LEVEL = ["engine/script/script_calls.c:script_poll",
             "engine/script/script_calls.c:script_poll_checked_wallet",
             "engine/script/script_calls.c:script_request_build",
             "engine/script/script_calls.c:script_request_build_checked_wallet",
             "curl_multi_socket_action", "curl_easy_init", "curl_easy_setopt",
             "curl_easy_cleanup", "curl_easy_reset"]


class Sim:
    """m2p-sim --threads 1 with a manual clock: no payouts, every observation unchanged."""

    def __init__(self, binary, cpu, out_dir):
        self.err = open(os.path.join(out_dir, "sim-instructions.err"), "w")
        self.proc = subprocess.Popen(
            bench.pinned(cpu, [binary, "--port", "0", "--quiet", "--threads", "1",
                               "--clock", "manual"]),
            stdout=subprocess.PIPE, stderr=self.err, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            sys.exit(f"instructions: the simulator did not start: {line!r}")
        self.url = f"http://127.0.0.1:{m.group(1)}/api/worker_stats"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


def engine_env(args, sim, interval=None):
    env = dict(os.environ, CPU_POOL_URL=sim.url, LOG_LEVEL="info", LOG_FORMAT="json",
               ADMIN_LISTEN="off", **bench.pool_env(args.connections))  # cpu-pool alone
    if interval:
        env["POLL_INTERVAL_SECONDS"] = str(interval)
    return env


def callgrind_argv(args, out, n, once):
    return bench.pinned(args.client_cpu, [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", args.engine,
        "--env-file", "", "--accounts", bench.accounts_file(args.out_dir, n),
        "--pools", bench.POOLS, "--scripts", os.path.join(bench.ROOT, "scripts")] +
        (["--once"] if once else []))


def profile_of(args, out):
    total, incl = profile.callgrind_inclusive(out)
    if not args.keep:
        os.unlink(out)
    return {"total": total, "incl": incl}


def run_once(args, sim, n):
    """One --once run under callgrind: its profile and its successful polls."""
    out = os.path.join(args.out_dir, f"once-{n}.callgrind")
    proc = subprocess.run(callgrind_argv(args, out, n, True), env=engine_env(args, sim),
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    done = [r for r in records(proc.stdout) if r.get("event") == "single_cycle_complete"]
    if proc.returncode != 0 or not done:
        sys.exit(f"instructions: m2p-engine --once over {n} accounts failed "
                 f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}")
    ok = done[-1].get("metrics", {}).get("polls_successful", 0)
    if ok != n:
        sys.exit(f"instructions: only {ok} of {n} polls succeeded: the figure would be wrong")
    return dict(profile_of(args, out), polls=ok)


def records(text):
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                pass


def run_service(args, sim, n, polls):
    """The service under callgrind, stopped once polls_total >= polls (polling_cycle_complete
    says so every second); the exact count is the one engine_stopped reports."""
    out = os.path.join(args.out_dir, f"service-{n}-{polls}.callgrind")
    proc = subprocess.Popen(callgrind_argv(args, out, n, False), env=engine_env(args, sim, 1),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines = []

    def reader():
        signalled = False
        for line in proc.stdout:
            lines.append(line)
            rec = next(records(line), {})
            if not signalled and rec.get("event") == "polling_cycle_complete" and \
                    rec.get("metrics", {}).get("polls_total", 0) >= polls:
                proc.send_signal(signal.SIGTERM)  # valgrind passes it on to the engine
                signalled = True

    t = threading.Thread(target=reader)
    t.start()
    try:
        proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        sys.exit(f"instructions: the service over {n} accounts did not reach {polls} polls in "
                 f"{args.timeout} s")
    t.join()
    stopped = [r for r in records("".join(lines)) if r.get("event") == "engine_stopped"]
    if not stopped:
        sys.exit(f"instructions: the service did not stop cleanly:\n{''.join(lines[-20:])}")
    m = stopped[-1].get("metrics", {})
    if m.get("polls_successful") != m.get("polls_total") or m.get("rewards_detected"):
        sys.exit(f"instructions: polls failed or awarded (not an unchanged steady state): {m}")
    return dict(profile_of(args, out), polls=m["polls_total"])


def difference(small, large):
    polls = large["polls"] - small["polls"]
    per = {key: (large["incl"].get(key, 0) - small["incl"].get(key, 0)) / polls
           for _, key in profile.CALLGRIND_ENTRIES}
    return {"polls": polls, "total": (large["total"] - small["total"]) / polls, "per": per}


def print_breakdown(title, d):
    print(f"{title}:")
    print()
    print("| where (inclusive) | instructions/poll | share |")
    print("|---|---:|---:|")
    total = d["total"]
    for label, key in profile.CALLGRIND_ENTRIES:
        if key == "engine/store/players.c:players_load_file":
            continue  # start-up: cancelled by the difference
        v = d["per"].get(key, 0)
        print(f"| {label} | {v:,.0f} | {100.0 * v / total:.1f}% |")
    loop = d["per"].get("ev_run", 0)
    rest = loop - sum(d["per"].get(k, 0) for k in TOP_LEVEL)
    print(f"| ev_run minus the above top-level parts: poller, scheduler, libev, HTTP glue | "
          f"{rest:,.0f} | {100.0 * rest / total:.1f}% |")
    print(f"| outside ev_run (per-poll work before the loop, e.g. scheduling) | "
          f"{total - loop:,.0f} | {100.0 * (total - loop) / total:.1f}% |")
    print(f"| **all user space** | **{total:,.0f}** | 100.0% |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(bench.ROOT, "build"))
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=12000)
    ap.add_argument("--steady-accounts", type=int, default=2000)
    ap.add_argument("--steady-polls", default="2000,6000",
                    help="polls after the first cycle at which the two service runs stop")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--target", type=int, default=150000)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--sim-cpu", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per valgrind run")
    ap.add_argument("--no-first", action="store_true")
    ap.add_argument("--no-steady", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the profiles in OUT_DIR")
    ap.add_argument("--out-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                       "m2p-bench"))
    args = ap.parse_args()
    args.engine = os.path.join(args.build_dir, "m2p-engine")
    steady = [int(x) for x in args.steady_polls.split(",")]
    if len(steady) != 2 or not 0 < steady[0] < steady[1]:
        sys.exit("instructions: --steady-polls wants two increasing counts, e.g. 2000,6000")
    if not 0 < args.small < args.large:
        sys.exit("instructions: --small must be below --large")
    for tool in ("valgrind", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.exit(f"instructions: {tool} is missing (Debian: valgrind)")
    os.makedirs(args.out_dir, exist_ok=True)
    sim = Sim(os.path.join(args.build_dir, "tests", "sim", "m2p-sim"), args.sim_cpu,
              args.out_dir)
    results = {}
    try:
        if not args.no_first:
            results["first"] = difference(run_once(args, sim, args.small),
                                          run_once(args, sim, args.large))
        if not args.no_steady:
            n = args.steady_accounts
            results["steady"] = difference(run_service(args, sim, n, n + steady[0]),
                                           run_service(args, sim, n, n + steady[1]))
    finally:
        sim.stop()
    report(args, results)


def report(args, results):
    print(f"Instructions per poll (callgrind, user space; `bench/instructions.py`), "
          f"m2p-engine --accounts against m2p-sim --threads 1, C = {args.connections}, "
          f"build {os.path.relpath(args.build_dir, bench.ROOT)}:")
    print()
    print("| poll | how (difference of two runs) | polls counted | instructions/poll | of which "
          "in the event loop (ev_run) | target | verdict |")
    print("|---|---|---:|---:|---:|---:|---|")
    how = {"first": f"--once {args.large:,} minus {args.small:,} accounts",
           "steady": f"service, {args.steady_accounts:,} accounts, stopped after "
                     f"{args.steady_accounts + int(args.steady_polls.split(',')[1]):,} minus "
                     f"{args.steady_accounts + int(args.steady_polls.split(',')[0]):,} polls"}
    names = {"first": "first poll", "steady": "steady-state poll (unchanged)"}
    for kind, d in results.items():
        verdict = "met" if d["total"] <= args.target else "missed"
        print(f"| {names[kind]} | {how[kind]} | {d['polls']:,} | **{d['total']:,.0f}** | "
              f"{d['per'].get('ev_run', 0):,.0f} | <= {args.target:,} | **{verdict}** |")
    print()
    if "first" in results:
        print("The first poll's figure includes what each account costs before the loop "
              "(activation, its wallet check): the `--once` difference of the issue counts it.")
        print()
    for kind, d in results.items():
        print_breakdown(f"Where the instructions of a {names[kind]} go", d)
    with open(os.path.join(args.out_dir, "instructions.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"Raw numbers: {os.path.join(args.out_dir, 'instructions.json')}")


if __name__ == "__main__":
    main()
