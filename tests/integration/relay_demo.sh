#!/usr/bin/env bash
# Issue 9: the demo starts the Socket.IO relay when Node.js is there, prints its page's URL and
# stops it with everything else; without Node.js it runs without it (see relay_demo.py).
exec python3 tests/integration/relay_demo.py "$1"
