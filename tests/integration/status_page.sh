#!/usr/bin/env bash
# Issue 10: the live status page (GET /) in headless Chromium against a running engine;
# screenshots in BUILD/artifacts/.
exec python3 tests/integration/status_page.py "$1"
