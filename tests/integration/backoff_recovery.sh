#!/usr/bin/env bash
# Issue 3: backoff and circuit breaking recover (see backoff_recovery.py).
exec python3 tests/integration/backoff_recovery.py "$1"
