#!/usr/bin/env bash
# Issue 4: SIGKILLed engines lose and duplicate nothing (see db_crash_safety.py).
exec python3 tests/integration/db_crash_safety.py "$1"
