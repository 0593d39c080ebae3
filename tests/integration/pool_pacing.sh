#!/usr/bin/env bash
# Issue 8: a pool polled more slowly than its max_interval is never silent (see pool_pacing.py).
exec python3 tests/integration/pool_pacing.py "$1"
