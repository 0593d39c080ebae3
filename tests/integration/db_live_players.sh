#!/usr/bin/env bash
# Issue 4: inserted, deactivated and re-walleted players take effect without restart
# (see db_live_players.py).
exec python3 tests/integration/db_live_players.py "$1"
