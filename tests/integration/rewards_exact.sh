#!/usr/bin/env bash
# Issue 3: awards equal the simulator ledger to 1e-8 (see rewards_exact.py).
exec python3 tests/integration/rewards_exact.py "$1"
