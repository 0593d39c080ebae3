#!/usr/bin/env bash
# Issue 3: per-pool limits hold, measured at the simulator (see pool_limits.py).
exec python3 tests/integration/pool_limits.py "$1"
