#!/usr/bin/env bash
# Issue 12: database faults under payouts and values PostgreSQL refuses (see db_faults.py).
exec python3 tests/integration/db_faults.py "$1"
