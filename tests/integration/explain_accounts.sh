#!/usr/bin/env bash
# Issue 10: "why was I not rewarded?": GET /accounts?player=ID and m2p-engine --explain.
exec python3 tests/integration/explain_accounts.py "$1"
