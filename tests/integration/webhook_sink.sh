#!/usr/bin/env bash
# Issue 9: the webhook sink against real Python and Node receivers (see webhook_sink.py).
exec python3 tests/integration/webhook_sink.py "$1"
