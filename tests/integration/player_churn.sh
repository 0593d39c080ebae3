#!/usr/bin/env bash
# Issue 12: the poller's tables and RSS stay flat under player churn (see player_churn.py).
exec python3 tests/integration/player_churn.py "$1"
