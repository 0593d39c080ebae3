#!/usr/bin/env bash
# Issue 10: LOG_FORMAT=auto (text at a terminal, JSON otherwise) and LOG_LEVEL/LOG_FORMAT at
# reload (see log_format.py).
exec python3 tests/integration/log_format.py "$1"
