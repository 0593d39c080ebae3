#!/usr/bin/env bash
# Installs the relay's npm packages exactly as the committed package-lock.json names them
# (npm ci), when node_modules is missing or was installed from another package.json or lock.
# Quiet and offline when it is up to date. Used by tests/install-deps.sh test and the demo.
set -euo pipefail
cd "$(dirname "$0")"

for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null 2>&1 ||
    { echo "socketio-relay: $tool is missing (tests/install-deps.sh test installs Node.js)" >&2
      exit 1; }
done

# npm ci deletes node_modules first, so a stamp inside it exists only after a complete install
# of these very files.
stamp=node_modules/.m2p-installed
want=$(cat package.json package-lock.json | sha256sum | cut -d ' ' -f 1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
    [ -f node_modules/socket.io/package.json ] && [ -f node_modules/socket.io-client/package.json ]
then
  exit 0
fi

echo "socketio-relay: npm ci in examples/socketio-relay (the Socket.IO packages, once)" >&2
if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
  echo "socketio-relay: npm ci failed (is the npm registry reachable?)" >&2
  exit 1
fi
echo "$want" >"$stamp"
