#!/usr/bin/env bash
# Issue 10: the admin HTTP endpoint: /metrics (promtool), /healthz, /readyz, /status, /reload.
exec python3 tests/integration/admin_endpoint.py "$1"
