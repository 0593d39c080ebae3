#!/usr/bin/env python3
"""Where the engine's CPU goes per poll, two ways, each over `m2p-engine --once` against the
simulator laid out like bench/run.sh (simulator on CPU 0, engine on CPU 1, concurrency C):

1. Time, kernel included: perf with DWARF call graphs (100k accounts). Every sample goes to
   the bucket of the innermost frame of its call chain that names a bucket below (so malloc
   called from the JSON encoder counts as JSON encoding, a send() made inside libcurl as the
   kernel's send). Samples whose chain perf could not unwind past libc are grouped by what
   the libc function does.
2. Instructions, user space only, exact call graph: valgrind --tool=callgrind (10k accounts),
   inclusive instructions per poll of the engine's entry points into each component.

    python3 bench/profile.py [--accounts 100000] [--callgrind-accounts 10000] [--connections 64]
                             [--no-perf] [--no-callgrind] [--keep]

Needs perf (linux-perf) and/or valgrind, and the default RelWithDebInfo build (symbols;
libcurl and LuaJIT are stripped, so their internals count under the nearest named caller).
Not part of bench/run.sh: the profilers' overhead would distort the benchmark's numbers.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (accounts files, simulator, pinning)

# (bucket, symbols): a sample goes to the bucket of the innermost frame naming one of these.
BUCKETS = [
    ("script_poll: JSON encode of observation + state (cJSON tree, printf/scanf of numbers)",
     {"script_json_encode_fn"}),
    ("script_poll: JSON decode of the response body (cJSON parse, then Lua tables)",
     {"script_json_push_text"}),
    ("script_poll: JSON decode of the previous state", {"script_json_decode_fn"}),
    ("script_poll: Lua (pipeline, cpu-pool parse, rewards), tables, GC",
     {"script_poll", "script_poll_checked_wallet", "poll_entry", "script_run_protected"}),
    ("script_request_build (Lua)", {"script_request_build", "script_request_build_checked_wallet",
                                    "request_entry"}),
    ("libcurl: easy handle from the pool + setopt per request (transfer_new)",
     {"transfer_new", "transfer_acquire", "curl_easy_init", "curl_easy_setopt",
      "configure_request"}),
    ("libcurl: easy handle back to the pool or cleanup (transfer_recycle, transfer_free)",
     {"transfer_recycle", "transfer_free", "curl_easy_cleanup"}),
    ("kernel: send() of the request (loopback TCP, waking the server)",
     {"__libc_send", "__send", "send", "__libc_sendto", "sendto", "__GI___send"}),
    ("kernel: recv() of the response", {"__libc_recv", "__recv", "recv", "recvfrom"}),
    ("kernel: poll() liveness checks by libcurl", {"__poll", "poll", "__GI___poll"}),
    ("kernel: epoll (libev) and epoll_ctl", {"epoll_wait", "epoll_ctl", "epoll_poll",
                                             "__GI_epoll_wait", "__GI_epoll_ctl"}),
    ("libcurl: multi/HTTP state machine, request formatting, header parsing (rest)",
     {"curl_multi_socket_action", "curl_multi_add_handle", "curl_multi_remove_handle",
      "curl_multi_info_read", "on_header", "on_body"}),
    ("start-up: accounts file, scripts", {"players_load_file", "use_players_file",
                                          "script_runtime_new", "settings_load_scripts"}),
    ("exit: teardown", {"poller_free", "player_list_free", "http_client_free"}),
    ("poller, scheduler, libev, rest of the engine", {"ev_run", "main"}),
]


LIBC_LEAF = [
    ("libc malloc/free, caller not unwound", ("malloc", "free", "calloc", "realloc", "tcache",
                                              "unlink_chunk", "consolidate", "_int_")),
    ("libc number formatting/parsing (printf, scanf, strtod), caller not unwound",
     ("printf", "scanf", "strtod", "hack_digit", "mpn", "str_to_mpn", "round_and_return",
      "localeconv")),
    ("libc string/memory functions, caller not unwound", ("str", "mem")),
]


def classify(frames):
    for sym in frames:  # leaf first
        sym = sym.replace(" (inlined)", "")
        for name, syms in BUCKETS:
            if sym in syms:
                return name
    if frames:
        leaf = frames[0]
        for name, words in LIBC_LEAF:
            if any(w in leaf for w in words):
                return name
    return "other (dynamic loader, unresolved)"


# callgrind: (label, function name as callgrind_annotate prints it)
CALLGRIND_ENTRIES = [
    ("everything after start-up (ev_run)", "ev_run"),
    ("script_poll", "engine/script/script_calls.c:script_poll"),
    ("script_poll (wallet checked by the poller)",
     "engine/script/script_calls.c:script_poll_checked_wallet"),
    ("script_poll > JSON encode of observation + state",
     "engine/script/script_json.c:script_json_encode_fn"),
    ("script_poll > JSON encode > cJSON_PrintUnformatted", "cJSON_PrintUnformatted"),
    ("script_poll > JSON encode > sprintf (cJSON numbers)", "__sprintf_chk"),
    ("script_poll > JSON encode > sscanf (cJSON round-trip check)", "__isoc99_sscanf"),
    ("script_poll > JSON decode of the response body",
     "engine/script/script_json.c:script_json_push_text"),
    ("script_poll > JSON decode of the response body (script_json_set_response)",
     "engine/script/script_json.c:script_json_set_response"),
    ("script_poll > JSON decode > cJSON_Parse", "cJSON_ParseWithLengthOpts"),
    ("script_poll > JSON decode of the previous state",
     "engine/script/script_json.c:script_json_decode_fn"),
    ("script_request_build", "engine/script/script_calls.c:script_request_build"),
    ("script_request_build (wallet checked by the poller)",
     "engine/script/script_calls.c:script_request_build_checked_wallet"),
    ("libcurl: curl_multi_socket_action", "curl_multi_socket_action"),
    ("libcurl: curl_multi_socket_action > curl_mvaprintf", "curl_mvaprintf"),
    ("libcurl: curl_easy_init (per request)", "curl_easy_init"),
    ("libcurl: curl_easy_setopt (per request)", "curl_easy_setopt"),
    ("libcurl: curl_easy_cleanup (per request)", "curl_easy_cleanup"),
    ("libcurl: curl_easy_reset (per request)", "curl_easy_reset"),
    ("scheduler_next", "engine/poll/scheduler.c:scheduler_next"),
    ("start-up: players_load_file", "engine/store/players.c:players_load_file"),
]


def callgrind_inclusive(path):
    """(total instructions, {CALLGRIND_ENTRIES key: inclusive instructions}) of one callgrind
    profile, read through callgrind_annotate. A key that never ran is absent."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    total = None
    incl = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = n
            continue
        func = re.sub(r" \[.*\]$", "", name)
        for _, key in CALLGRIND_ENTRIES:
            short = key.split(":")[-1]
            if key == func or func.endswith(":" + short) or func == "???:" + short or \
                    func.endswith("/" + key):
                incl.setdefault(key, n)
    return total, incl


def run_callgrind(args, sim):
    accounts = bench.accounts_file(args.out_dir, args.callgrind_accounts)
    out = os.path.join(args.out_dir, "engine.callgrind")
    env = dict(os.environ, CPU_POOL_URL=sim.url, LOG_LEVEL="warning",
               **bench.pool_env(args.connections))
    argv = bench.pinned(args.client_cpu, [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", args.engine, "--once",
        "--env-file", "", "--accounts", accounts, "--pools", bench.POOLS,
        "--scripts", os.path.join(bench.ROOT, "scripts")])
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    total, incl = callgrind_inclusive(out)
    if not args.keep:
        os.unlink(out)
    n = args.callgrind_accounts
    print(f"callgrind, m2p-engine --once, {n} accounts, C = {args.connections}: "
          f"{total / n:,.0f} instructions/poll in total (start-up included)")
    print()
    print("| where (inclusive) | instructions/poll | share of ev_run |")
    print("|---|---:|---:|")
    loop = incl.get("ev_run") or total
    for label, key in CALLGRIND_ENTRIES:
        if key in incl:
            print(f"| {label} | {incl[key] / n:,.0f} | {100.0 * incl[key] / loop:.1f}% |")
        else:
            print(f"| {label} | 0 | 0.0% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=100000)
    ap.add_argument("--callgrind-accounts", type=int, default=10000)
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--freq", type=int, default=499)
    ap.add_argument("--build-dir", default=os.path.join(bench.ROOT, "build"))
    ap.add_argument("--sim-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--out-dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                       "m2p-bench"))
    ap.add_argument("--keep", action="store_true", help="keep the profiles in OUT_DIR")
    args = ap.parse_args()
    args.engine = os.path.join(args.build_dir, "m2p-engine")
    if not args.no_perf and not shutil.which("perf"):
        sys.exit("profile: perf is missing (--no-perf to skip it)")
    if not args.no_callgrind and not shutil.which("valgrind"):
        sys.exit("profile: valgrind is missing (--no-callgrind to skip it)")
    os.makedirs(args.out_dir, exist_ok=True)
    os.sched_setaffinity(0, {args.sim_cpu})
    sim = bench.Sim(os.path.join(args.build_dir, "tests", "sim", "m2p-sim"), args.sim_cpu, 1,
                    args.out_dir)
    try:
        if not args.no_perf:
            run_perf(args, sim)
        if not args.no_callgrind:
            if not args.no_perf:
                print()
            run_callgrind(args, sim)
    finally:
        sim.stop()


def run_perf(args, sim):
    accounts = bench.accounts_file(args.out_dir, args.accounts)
    data = os.path.join(args.out_dir, "engine.perf.data")
    env = dict(os.environ, CPU_POOL_URL=sim.url, LOG_LEVEL="warning",
               **bench.pool_env(args.connections))
    argv = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq),
            "--call-graph", "dwarf,16384", "-o", data, "--"] + bench.pinned(
                args.client_cpu, [args.engine, "--once", "--env-file", "", "--accounts", accounts,
                                  "--pools", bench.POOLS,
                                  "--scripts", os.path.join(bench.ROOT, "scripts")])
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryFile("w+") as tmp:
        subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym"], stdout=tmp,
                       stderr=subprocess.DEVNULL, check=True)
        tmp.seek(0)
        counts, total, frames, comm = {}, 0, [], None
        for line in tmp:
            line = line.rstrip("\n")
            if not line.strip():
                if comm is not None:
                    b = classify(frames)
                    counts[b] = counts.get(b, 0) + 1
                    total += 1
                frames, comm = [], None
            elif not line.startswith("\t"):
                comm = line.strip()
            else:
                m = re.match(r"\s*[0-9a-f]+ (.*)", line)
                if m:
                    frames.append(m.group(1))
        if comm is not None:
            b = classify(frames)
            counts[b] = counts.get(b, 0) + 1
            total += 1
    if not args.keep:
        os.unlink(data)
    cpu_s = total / args.freq
    print(f"perf, m2p-engine --once, {args.accounts} accounts, C = {args.connections}: "
          f"{total} samples at {args.freq} Hz = {cpu_s:.1f} CPU s = "
          f"{1e6 * cpu_s / args.accounts:.1f} us/poll")
    print()
    print("| where | share | us/poll |")
    print("|---|---:|---:|")
    for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        if n < total / 2000:
            continue  # below 0.05 %
        print(f"| {name} | {100.0 * n / total:.1f}% | "
              f"{1e6 * cpu_s * n / total / args.accounts:.1f} |")


if __name__ == "__main__":
    main()
