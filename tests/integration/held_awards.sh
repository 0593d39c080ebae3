#!/usr/bin/env bash
# Issue 8: suspicious awards are held for review, released or rejected once (see held_awards.py).
exec python3 tests/integration/held_awards.py "$1"
