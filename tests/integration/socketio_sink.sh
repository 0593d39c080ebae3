#!/usr/bin/env bash
# Issue 9: the Socket.IO sink against the real socket.io server (see socketio_sink.py).
exec python3 tests/integration/socketio_sink.py "$1"
