#!/usr/bin/env bash
# Issue 9: awards reach the official socket.io server, through outages and SIGKILLs
# (see notify_socketio.py).
exec python3 tests/integration/notify_socketio.py "$1"
