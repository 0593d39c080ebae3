#!/usr/bin/env bash
# Issue 8: a wallet belongs to one player per pool, refusals are said once, a wallet change
# never loses an award (see wallet_identity.py).
exec python3 tests/integration/wallet_identity.py "$1"
