#!/usr/bin/env bash
# Issue 9: the outbox's claim, lease, order and expiry rules in PostgreSQL (see outbox_claims.py).
exec python3 tests/integration/outbox_claims.py "$1"
