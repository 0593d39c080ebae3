#!/usr/bin/env bash
# Issue 5: --script-test --watch re-runs the fixtures on every save; --probe --record writes
# a fixture that --script-test passes (see script_test_watch.py).
exec python3 tests/integration/script_test_watch.py "$1"
