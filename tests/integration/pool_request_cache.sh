#!/usr/bin/env bash
# Issue 11: an account's request is built once per wallet and script generation, and a pool
# can opt out (see pool_request_cache.py).
exec python3 tests/integration/pool_request_cache.py "$1"
