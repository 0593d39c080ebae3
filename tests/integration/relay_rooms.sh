#!/usr/bin/env bash
# Issue 9: the Socket.IO relay example relays each reward to its player's room only, acks it,
# and refuses a wrong engine token (see relay_rooms.py).
exec python3 tests/integration/relay_rooms.py "$1"
