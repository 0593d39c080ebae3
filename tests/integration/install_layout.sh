#!/usr/bin/env bash
# Issue 10: cmake --install into a temporary prefix; the installed engine runs from / (see
# install_layout.py).
exec python3 tests/integration/install_layout.py "$1"
