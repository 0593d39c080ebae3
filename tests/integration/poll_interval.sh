#!/usr/bin/env bash
# Issue 3: every account polled once per interval (see poll_interval.py).
exec python3 tests/integration/poll_interval.py "$1"
