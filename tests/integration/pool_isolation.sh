#!/usr/bin/env bash
# Issue 3: a failing pool does not delay the others (see pool_isolation.py).
exec python3 tests/integration/pool_isolation.py "$1"
