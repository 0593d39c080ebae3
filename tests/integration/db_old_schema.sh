#!/usr/bin/env bash
# Issue 4: the old service's database is migrated in place; version checks (see
# db_old_schema.py).
exec python3 tests/integration/db_old_schema.py "$1"
