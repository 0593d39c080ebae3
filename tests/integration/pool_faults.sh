#!/usr/bin/env bash
# Issue 12: pool faults (timeouts, trickle, resets, huge and endless bodies, gzip bomb, huge headers,
# hostile JSON, another wallet, redirects, absurd Retry-After) against both HTTP clients.
exec python3 tests/integration/pool_faults.py "$1"
