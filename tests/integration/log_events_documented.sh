#!/usr/bin/env bash
# Every log event the engine and its scripts emit is named in the docs (docs/operations.md's
# Logs table, or the page of its topic). $1 (the build dir) is not needed.
exec python3 tests/integration/log_events_documented.py
