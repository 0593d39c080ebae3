#!/usr/bin/env bash
# Issue 10: `cpack -G DEB` makes a Debian package whose control data, files, unit and
# maintainer scripts are right, and whose extracted engine runs (see debian_package.py).
exec python3 tests/integration/debian_package.py "$1"
