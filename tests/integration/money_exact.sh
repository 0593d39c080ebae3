#!/usr/bin/env bash
# Issue 12: money exact to 1e-8, or held as exact_range (see money_exact.py).
exec python3 tests/integration/money_exact.py "$1"
