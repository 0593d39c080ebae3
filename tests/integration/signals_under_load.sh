#!/usr/bin/env bash
# Issue 12: SIGHUP and SIGTERM under load lose and double nothing (see signals_under_load.py).
exec python3 tests/integration/signals_under_load.py "$1"
