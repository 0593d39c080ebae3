#!/usr/bin/env bash
# Issue 12: receivers down, slow or answering garbage lose no award (see notify_faults.py).
exec python3 tests/integration/notify_faults.py "$1"
