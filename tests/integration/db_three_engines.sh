#!/usr/bin/env bash
# Issue 4: three engines on one database share the accounts and take over a dead one's
# (see db_three_engines.py).
exec python3 tests/integration/db_three_engines.py "$1"
