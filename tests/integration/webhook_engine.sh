#!/usr/bin/env bash
# Issue 9: a webhook URL answering 410 Gone stops, the others go on (see webhook_engine.py).
exec python3 tests/integration/webhook_engine.py "$1"
