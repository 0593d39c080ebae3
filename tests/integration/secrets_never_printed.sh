#!/usr/bin/env bash
# Issue 12: no secret in any output, whatever path prints a value (see secrets_never_printed.py).
exec python3 tests/integration/secrets_never_printed.py "$1"
