#!/usr/bin/env bash
# Issue 5: a broken pool script is reported with file:line and the pool keeps polling with
# its old version until the fix reloads (see reload_broken_pool.py).
exec python3 tests/integration/reload_broken_pool.py "$1"
