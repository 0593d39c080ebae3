#!/usr/bin/env bash
# Issue 9: awards reach Socket.IO, webhooks and NOTIFY, none lost (see notify_delivery.py).
exec python3 tests/integration/notify_delivery.py "$1"
