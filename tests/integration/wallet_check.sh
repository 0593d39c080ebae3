#!/usr/bin/env bash
# Issue 8: --check-wallets and --check --accounts FILE list the wallets the engine would
# refuse, and why (see wallet_check.py).
exec python3 tests/integration/wallet_check.py "$1"
