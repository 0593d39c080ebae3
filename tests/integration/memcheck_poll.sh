#!/usr/bin/env bash
# Issue 12: valgrind memcheck of a polling run with SIGHUP and SIGTERM (see memcheck_poll.py).
exec python3 tests/integration/memcheck_poll.py "$1"
