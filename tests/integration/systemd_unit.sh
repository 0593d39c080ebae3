#!/usr/bin/env bash
# Issue 10: examples/m2p-engine.service passes systemd-analyze verify; the engine speaks the
# sd_notify protocol: READY=1, WATCHDOG=1, STOPPING=1 (see systemd_unit.py).
exec python3 tests/integration/systemd_unit.py "$1"
