#!/usr/bin/env bash
# Issue 4: payouts become mining_events and players' totals exactly, against a real
# PostgreSQL; baselines and decreases (see db_end_to_end.py).
exec python3 tests/integration/db_end_to_end.py "$1"
