#!/usr/bin/env bash
# Issue 11: unchanged polls are touched in a batch, never committed one by one (see unchanged_polls.py).
exec python3 tests/integration/unchanged_polls.py "$1"
