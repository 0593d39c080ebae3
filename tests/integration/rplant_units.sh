#!/usr/bin/env bash
# Issue 8: rplant's atomic units, div2 from /api/dash, awards equal to the ledger (see rplant_units.py).
exec python3 tests/integration/rplant_units.py "$1"
