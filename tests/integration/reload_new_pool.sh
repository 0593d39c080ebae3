#!/usr/bin/env bash
# Issue 5: a pool script dropped into pools/ is polled within an interval; deleting it stops
# its requests (see reload_new_pool.py).
exec python3 tests/integration/reload_new_pool.py "$1"
