#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, build-fuzz/) and fuzzes one of them.
#
#   tests/fuzz/run.sh TARGET SECONDS [--merge] [libFuzzer options...]
#   e.g. tests/fuzz/run.sh fuzz_json 300
#
# TARGET is a tests/fuzz/fuzz_*.c name. The run starts from tests/fuzz/corpus/TARGET and
# regressions/TARGET; what it adds goes to build-fuzz/corpus/TARGET (not the tree), crashes
# and hangs to build-fuzz/artifacts/TARGET/. --merge afterwards adds to tests/fuzz/corpus/TARGET
# only the inputs that reach new coverage (libFuzzer -merge=1). The environment is cleared
# (env -i) so that no variable of the caller's overrides what fuzz_config's .env says.
# Needs: clang-14 libclang-rt-14-dev (apt-get install), not needed by the normal suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?usage: tests/fuzz/run.sh TARGET SECONDS [--merge] [libFuzzer options...]}
seconds=${2:?usage: tests/fuzz/run.sh TARGET SECONDS [--merge] [libFuzzer options...]}
shift 2
merge=0
if [[ ${1:-} == --merge ]]; then
    merge=1
    shift
fi
[[ -f tests/fuzz/$target.c ]] || { echo "run.sh: no tests/fuzz/$target.c" >&2; exit 2; }
command -v clang-14 >/dev/null || { echo "run.sh: clang-14 missing (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

build=build-fuzz
CC=clang-14 cmake -S . -B "$build" -DM2P_FUZZ=ON >/dev/null
cmake --build "$build" -j2 --target "$target" >/dev/null
bin=$build/tests/fuzz/$target
work=$build/corpus/$target
artifacts=$build/artifacts/$target
mkdir -p "$work" "$artifacts" "tests/fuzz/regressions/$target"

# fuzz_pool keeps one script runtime for every input (fuzz_pool.c says why leaks are checked by
# the replay instead).
extra=()
[[ $target == fuzz_pool ]] && extra=(-detect_leaks=0)
# -timeout: an input that runs for 10 s is a hang (the script budget stops a poll far sooner).
env -i PATH="$PATH" ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${extra[@]}" "$@" "$work" "tests/fuzz/corpus/$target" \
    "tests/fuzz/regressions/$target"

if ((merge)); then
    env -i PATH="$PATH" "$bin" -merge=1 "tests/fuzz/corpus/$target" "$work"
fi
