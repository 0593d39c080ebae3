#!/usr/bin/env bash
# The test command: installs what is missing, builds a normal and a sanitizer (ASan+UBSan)
# build, and runs every test (C unit tests, busted specs, fixtures, integration) in both.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/install-deps.sh test

jobs=$(nproc 2>/dev/null || echo 2)
status=0
for variant in build build-asan; do
  flags=()
  [ "$variant" = build-asan ] && flags=(-DM2P_SANITIZE=ON)
  echo "== $variant: configure and build" >&2
  cmake -S . -B "$variant" "${flags[@]}" >/dev/null
  cmake --build "$variant" -j "$jobs" >/dev/null
  echo "== $variant: tests" >&2
  # Twice as many tests as cores: most of a test is waiting for poll intervals and servers.
  (cd "$variant" && ctest --output-on-failure -j "$((jobs * 2))" --timeout 600) || status=1
done
exit $status
