#!/usr/bin/env bash
# Issue 9: the real engine's awards reach each player's room once through the Socket.IO relay
# example, acked (see relay_engine.py).
exec python3 tests/integration/relay_engine.py "$1"
