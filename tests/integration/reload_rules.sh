#!/usr/bin/env bash
# Issue 5: an edited rewards.lua applies from the next payout; earlier awards, their
# rules_generation and polling are untouched (see reload_rules.py).
exec python3 tests/integration/reload_rules.py "$1"
