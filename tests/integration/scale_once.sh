#!/usr/bin/env bash
# Issue 3: 10,000 accounts in one --once cycle with faults (see scale_once.py).
exec python3 tests/integration/scale_once.py "$1"
