#!/usr/bin/env bash
# Issue 8: answers that only look like the pool's (redirects off the host, NUL in JSON strings).
exec python3 tests/integration/hostile_answers.py "$1"
