#!/usr/bin/env bash
# Issue 4: the database password never appears in the engine's output (see db_password.py).
exec python3 tests/integration/db_password.py "$1"
