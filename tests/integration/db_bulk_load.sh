#!/usr/bin/env bash
# Issue 11: a restart reads account states in pages; wallet claims hold (see db_bulk_load.py).
exec python3 tests/integration/db_bulk_load.py "$1"
