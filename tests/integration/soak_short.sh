#!/usr/bin/env bash
# Issue 12: the short soak run (engine, simulator, PostgreSQL, both notifiers, every fault; see soak_short.py).
exec python3 tests/integration/soak_short.py "$1"
