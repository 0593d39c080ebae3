#!/usr/bin/env bash
# Issue 12: hostile pool scripts installed into a running engine are refused or contained,
# with the error logged, while the other pools keep polling (see hostile_scripts.py).
exec python3 tests/integration/hostile_scripts.py "$1"
