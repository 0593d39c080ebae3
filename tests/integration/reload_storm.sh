#!/usr/bin/env bash
# Issue 5: 100 saves in a second (and 30 SIGHUPs) are a few reloads, with no crash, no leak
# and polling going on (see reload_storm.py).
exec python3 tests/integration/reload_storm.py "$1"
