#!/usr/bin/env bash
# Issue 10: examples/alerts.yml is valid for Prometheus (promtool check rules) and every m2p_
# metric it uses is one the engine exports (engine/admin/metrics_text.c).
set -euo pipefail
command -v promtool >/dev/null || { echo "promtool is missing: run tests/install-deps.sh test" >&2; exit 1; }
promtool check rules examples/alerts.yml
status=0
for name in $(grep -o 'm2p_[a-z_]*' examples/alerts.yml | sort -u); do
  family=$(echo "$name" | sed -E 's/_(bucket|sum|count)$//') # a histogram's series
  if ! grep -q "\"$name\|\"$family\"" engine/admin/metrics_text.c; then
    echo "examples/alerts.yml uses $name, which the engine does not export" >&2
    status=1
  fi
done
exit $status
