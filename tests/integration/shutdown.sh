#!/usr/bin/env bash
# Issue 3: SIGTERM during a busy cycle exits cleanly (see shutdown.py).
exec python3 tests/integration/shutdown.py "$1"
