#!/usr/bin/env bash
# Installs the Debian packages m2p-engine needs.
#   tests/install-deps.sh run    to build the engine and run it (examples/demo.sh): compilers,
#                                the libraries, the pool simulator's libmicrohttpd, PostgreSQL
#   tests/install-deps.sh test   all of that, and what only the tests use (tests/run.sh):
#                                busted, python3, wrk, curl, Node.js and npm, and the npm
#                                packages of examples/socketio-relay (npm ci)
#   tests/install-deps.sh soak   all of `test`, and gnuplot for the long soak run's plot
#                                (tests/soak/soak.py --plot; the suite's short soak needs none)
# Idempotent: prints nothing and changes nothing when every package is present.
set -euo pipefail

run_packages=(
  build-essential cmake pkg-config
  libluajit-5.1-dev libcurl4-openssl-dev libpq-dev libcjson-dev libyajl-dev libev-dev libssl-dev
  libmicrohttpd-dev libsystemd-dev libhttp-parser-dev zlib1g-dev
  postgresql
)
# systemd: systemd-analyze verify/security on examples/m2p-engine.service (systemd_unit.py)
# prometheus: promtool check metrics on a live /metrics (admin_endpoint.py)
# dpkg-dev: dpkg-shlibdeps for cpack's Depends (debian_package.py; build-essential pulls it
# in too, but the test needs it by name)
# file: CPack's DEB generator runs it on every installed file to find what dpkg-shlibdeps must
#   read (a bare Debian has no file: cpack then stops with "file utility is not available")
# chromium, fonts-dejavu-core: the status page rendered headless, with readable text in its
# screenshot (status_page.py)
# valgrind: memcheck of a polling run (memcheck_poll.py)
test_packages=(luajit lua-busted wrk curl systemd prometheus dpkg-dev file chromium fonts-dejavu-core
  valgrind)

case "${1:-}" in
  run) packages=("${run_packages[@]}") ;;
  test) packages=("${run_packages[@]}" "${test_packages[@]}") ;;
  soak) packages=("${run_packages[@]}" "${test_packages[@]}" gnuplot-nox) ;;
  *)
    echo "usage: $0 run|test|soak" >&2
    exit 2
    ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
mode="$1"
[ "$mode" = soak ] && mode=test  # from here on, soak needs what test needs
if [ "$mode" = test ]; then
  # Node.js may come from another package set whose nodejs bundles npm (and conflicts with
  # Debian's npm package): ask for the commands, not for package names.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]} (a few minutes on a bare machine)" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done" >&2
fi
# The tests run the real socket.io server and client from npm: npm ci from the committed lock
# when examples/socketio-relay/node_modules is missing or stale (quiet otherwise).
if [ "$mode" = test ]; then
  "$(dirname "$0")/../examples/socketio-relay/install.sh"
fi
