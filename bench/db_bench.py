#!/usr/bin/env python3
"""The database in the loop: polls per second and PostgreSQL statements per poll.

Starts a throw-away PostgreSQL (tests/integration/pgserver.py) and the pool simulator with a
manual clock (no payouts: every observation after the first is unchanged), seeds N players,
and measures, in one run and beside each other:

  A. --once --accounts FILE      no database: the reference
  B. --once with the database    first cycle: every account loaded and baselined (a commit each)
  C. --once with the database    the same accounts again: loaded, unchanged
  D. the service, several intervals: steady state, where unchanged polls are batched

Prints a markdown table. A benchmark, not a test: nothing here can fail on a slow machine.
Usage: [M2P_BUILD=build-x] python3 bench/db_bench.py [--players N] [--interval S] [--cycles K]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from pgserver import PgServer  # noqa: E402
from bench import POOLS, pool_env, wallet  # noqa: E402  (wallet: checksum-valid, distinct per i)

# M2P_BUILD: the build directory to measure (default build/).
BUILD = os.path.join(ROOT, os.environ.get("M2P_BUILD", "build"))
ENGINE = os.path.join(BUILD, "m2p-engine")
SIM = os.path.join(BUILD, "tests", "sim", "m2p-sim")


def start_sim():
    sim = subprocess.Popen([SIM, "--port", "0", "--clock", "manual", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = sim.stdout.readline().decode()
    return sim, "http://127.0.0.1:%s" % line.strip().rsplit(":", 1)[1]


def run_engine(args, env, seconds=None, sample=None, sample_at=0, sample_end=None):
    """Runs the engine; returns its JSON log records and the wall time. With `seconds`, the
    service runs that long and is stopped with SIGTERM; `sample` is called `sample_at`
    seconds in, `sample_end` just before the stop."""
    started = time.monotonic()
    proc = subprocess.Popen([ENGINE, "--env-file", ""] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if seconds:
        if sample:
            time.sleep(sample_at)
            sample()
        time.sleep(seconds - sample_at)
        if sample_end:
            sample_end()
        proc.terminate()
    out, _ = proc.communicate(timeout=600)
    records = [json.loads(l) for l in out.decode().splitlines() if l.startswith("{")]
    return records, time.monotonic() - started


def pg_cpu_seconds(pg):
    """CPU seconds PostgreSQL has used so far: the postmaster with the children it reaped
    (cutime, cstime) plus its live children (backends, checkpointer, walwriter, ...)."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        master = int(f.readline())
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # fields[0] is the state (stat field 3): ppid is field 4, utime..cstime 14..17.
        if int(pid) == master:
            total += sum(int(x) for x in fields[11:15])
        elif int(fields[1]) == master:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def stamp(record):
    t = time.strptime(record["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) + int(record["timestamp"][20:23]) / 1000.0


def once_row(name, records, n):
    start = next(r for r in records if r["event"] == "engine_started")
    end = next(r for r in records if r["event"] == "single_cycle_complete")
    polls = end["metrics"]["polls_successful"]
    seconds = max(stamp(end) - stamp(start), 1e-3)
    statements = end.get("database_statements")
    per_poll = "%.3f" % (statements / polls) if statements is not None else "-"
    return "| %s | %d | %.0f | %s |" % (name, polls, polls / seconds, per_poll), polls / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--players", type=int, default=10000)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--cycles", type=int, default=5)
    o = ap.parse_args()
    work = tempfile.mkdtemp(prefix="m2p-dbbench-")
    accounts = os.path.join(work, "players.json")
    with open(accounts, "w") as f:
        json.dump([{"player_id": i, "username": "p%d" % i, "wallet": wallet(i)}
                   for i in range(1, o.players + 1)], f)
    sim, base = start_sim()
    pg = PgServer()
    try:
        pg.createdb("bench")
        env = dict(os.environ, CPU_POOL_URL=base + "/api/worker_stats", LOG_LEVEL="info",
                   LOG_FORMAT="json", DATABASE_URL=pg.conninfo("bench"),
                   POLL_INTERVAL_SECONDS=str(o.interval), **pool_env(64))
        subprocess.run([ENGINE, "--migrate", "--env-file", ""], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        # The same checksum-valid wallets as the accounts file (base58: safe in a literal);
        # the pool scripts refuse any other before a request.
        wallets = ",".join("'%s'" % wallet(i) for i in range(1, o.players + 1))
        pg.script("INSERT INTO players (username, email, wallet_address, verified, active) "
                  "SELECT 'p' || g, 'p' || g || '@example.com', w, true, true "
                  "FROM unnest(ARRAY[%s]) WITH ORDINALITY AS t(w, g) ORDER BY g;" % wallets,
                  db="bench")
        pools = ["--pools", POOLS]
        no_db = dict(env)
        no_db.pop("DATABASE_URL")
        rows = []
        rec, _ = run_engine(["--once", "--accounts", accounts] + pools, no_db)
        row, reference = once_row("A. no database (--accounts)", rec, o.players)
        rows.append(row)
        rec, _ = run_engine(["--once"] + pools, env)
        row, first = once_row("B. database, first cycle (load + baseline commit)", rec, o.players)
        rows.append(row)
        rec, _ = run_engine(["--once"] + pools, env)
        row, again = once_row("C. database, unchanged (load + batched touch)", rec, o.players)
        rows.append(row)
        # PostgreSQL's CPU in the steady state: sampled after the first interval (start-up
        # loads every account) and just before the service is stopped.
        cpu = {}
        rec, _ = run_engine(pools, env, seconds=o.interval * o.cycles + 2,
                            sample=lambda: cpu.setdefault("t1", (time.monotonic(), pg_cpu_seconds(pg))),
                            sample_at=o.interval + 1,
                            sample_end=lambda: cpu.setdefault("t2", (time.monotonic(), pg_cpu_seconds(pg))))
        cycles = [r for r in rec if r["event"] == "polling_cycle_complete"]
        a, b = cycles[1], cycles[-1]  # skip the first interval: start-up loads every account
        polls = b["metrics"]["polls_total"] - a["metrics"]["polls_total"]
        statements = b["database_statements"] - a["database_statements"]
        seconds = o.interval * (len(cycles) - 2)
        rows.append("| D. database, service, steady state (%d s) | %d | %.0f (scheduled) | %.4f |"
                    % (seconds, polls, polls / max(seconds, 1), statements / max(polls, 1)))
        window = cpu["t2"][0] - cpu["t1"][0]
        steady_polls = polls / max(seconds, 1) * window  # the scheduled rate over the window
        pg_us = 1e6 * (cpu["t2"][1] - cpu["t1"][1]) / max(steady_polls, 1)
        print("%d accounts (cpu-pool only), pools/ with CPU_POOL_CONCURRENCY=64, CPU_POOL_PER_SECOND=0, POLL_INTERVAL_SECONDS=%d"
              % (o.players, o.interval))
        print()
        print("| run | polls | polls/s | statements per poll |")
        print("| --- | ---: | ---: | ---: |")
        for r in rows:
            print(r)
        print()
        print("with the database in the loop: first cycle %.0f%%, unchanged cycle %.0f%% of the "
              "no-database rate measured in the same run" % (100 * first / reference,
                                                             100 * again / reference))
        print("PostgreSQL CPU per steady-state poll (D, /proc/<postgres pids>/stat over %.1f s): "
              "%.1f us" % (window, pg_us))
    finally:
        pg.close()
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
