#!/usr/bin/env bash
# Issue 12: TLS verification of pool requests is on by default, off only with <POOL>_TLS_VERIFY=false.
exec python3 tests/integration/tls_verify.py "$1"
