#!/usr/bin/env bash
# Issue 4: PostgreSQL restarted under a running engine, totals still exact (see db_restart.py).
exec python3 tests/integration/db_restart.py "$1"
