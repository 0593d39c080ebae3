#!/usr/bin/env bash
# Issue 3: --once exit status, --probe, invalid configuration (see cli_modes.py).
exec python3 tests/integration/cli_modes.py "$1"
