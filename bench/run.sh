#!/usr/bin/env bash
# The m2p-engine benchmark, in one command (a benchmark, not a test: CTest never runs it).
#
#   bench/run.sh [options passed to bench/bench.py]
#
# Builds what it needs in build/ (the default RelWithDebInfo build: -O2 -g), then
# bench/bench.py, in one run:
#   - starts the pool simulator (tests/sim/m2p-sim --threads 1) pinned to CPU 0;
#   - measures wrk (-t1 -c C) against it as the ceiling: the engine's exact request, cycling
#     through the same N wallets as the engine's accounts file (bench/wrk-wallets.lua);
#   - runs `m2p-engine --once` polling N accounts (N = 10k, 100k, 1M) through
#     the shipped pools/cpu-pool.lua (CPU_POOL_CONCURRENCY=C, CPU_POOL_PER_SECOND=0; rplant
#     and zpool disabled) against it;
#     wrk and the engine each get CPU 1, and both use the same C (default 64) connections;
#   - runs build/bench/http_bench (the engine's HTTP layer alone, no Lua) the same way, and
#     build/bench/script_bench (script_poll alone, JIT off vs on);
#   - prints polls/s, CPU s per 1000 polls, peak RSS and RSS per account beside the wrk
#     numbers as ratios (markdown tables, ready for docs/performance.md), and writes the raw
#     numbers to $TMPDIR/m2p-bench/results.json.
#
# Why this layout on a 2-CPU machine: the engine is one event-loop thread and wrk -t1 is one
# thread, so each client gets one whole CPU and the simulator (one MHD thread) the other;
# pinning keeps the client and the server from taking turns on the same CPU, which would
# measure the scheduler instead. Nothing else should be running: the report prints the
# background load and the hypervisor steal time of each run.
#
# Options (bench/bench.py --help): --sizes 10000,100000,1000000 --connections 64
#   --wrk-seconds 10 --repeat 3 --repeat-large 1 --sim-cpu 0 --client-cpu 1 --out-dir DIR
#   --quiet-busy 10 --quiet-wait 20 (wait for an idle machine before each phase)
# About 7 minutes on the reference machine (docs/performance.md); the 1M accounts file is
# generated once (94 MB, in $TMPDIR/m2p-bench) and reused.
#
# Then bench/instructions.py: instructions per poll under valgrind's callgrind (a first poll and
# a steady-state poll, each the difference of two runs, with the split by component), about
# 3 more minutes. Instructions, unlike time, are stable on a shared machine.
#   bench/run.sh --instructions-only [options passed to bench/instructions.py]
#       only that part (its options: bench/instructions.py --help, e.g. --no-steady)
#   bench/run.sh --no-instructions [options passed to bench/bench.py]
#       only the timed part, as before
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
cd "$ROOT"

mode=all
case "${1:-}" in
  --instructions-only) mode=instructions; shift ;;
  --no-instructions) mode=timed; shift ;;
esac
tools="taskset python3 cmake"
[ "$mode" = instructions ] || tools="wrk $tools"
[ "$mode" = timed ] || tools="valgrind $tools"
for tool in $tools; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "bench: $tool is missing (tests/install-deps.sh installs what the project needs)" >&2
    exit 1
  }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs 2 CPUs (one for the simulator, one for the client)" >&2
  exit 1
fi

targets="m2p-engine m2p-sim"
[ "$mode" = instructions ] || targets="$targets script_bench http_bench"
build_log=$(mktemp "${TMPDIR:-/tmp}/m2p-bench-build.XXXXXX")
if ! { [ -f "$BUILD_DIR/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD_DIR"; } \
     >"$build_log" 2>&1 ||
   ! cmake --build "$BUILD_DIR" -j"$(nproc)" \
       --target $targets >>"$build_log" 2>&1; then
  cat "$build_log" >&2
  echo "bench: the build failed" >&2
  rm -f "$build_log"
  exit 1
fi
rm -f "$build_log"

if [ "$mode" = instructions ]; then
  exec python3 "$ROOT/bench/instructions.py" --build-dir "$BUILD_DIR" "$@"
fi
python3 "$ROOT/bench/bench.py" --build-dir "$BUILD_DIR" --command "bench/run.sh${*:+ $*}" "$@"
if [ "$mode" = all ]; then
  echo
  python3 "$ROOT/bench/instructions.py" --build-dir "$BUILD_DIR"
fi
