#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts the local pool simulator with payouts
# every few seconds, and runs the engine against it so rewards arrive within a minute.
# Ctrl-C stops everything it started. DEMO_SECONDS=N stops by itself after N seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

work=.work/demo
mkdir -p "$work"
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

build/tests/sim/m2p-sim --port 0 --payout-interval 8 --quiet >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sim.out")
[ -n "$port" ] || { echo "demo: the simulator did not start" >&2; cat "$work/sim.err" >&2; exit 1; }

cat >"$work/players.json" <<'JSON'
[
  {"player_id": 1, "username": "alice", "wallet": "AXb7Kc2R9mQwE4tYuP3sLdF6gH8jN1vZq5",
   "wallets": {"zpool": "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"}},
  {"player_id": 2, "username": "bob", "wallet": "AQw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0Xc1",
   "wallets": {"zpool": "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"}},
  {"player_id": 3, "username": "carol", "wallet": "AMn8Bv6Cx4Za2Sd0Fg9Hj7Kl5Qw3Er1Ty9"}
]
JSON

echo "demo: simulator on 127.0.0.1:$port; the engine logs rewards below (Ctrl-C to stop)" >&2
export CPU_POOL_URL="http://127.0.0.1:$port/api/worker_stats"
export RPLANT_URL="http://127.0.0.1:$port/api/walletEx/advc"
export ZPOOL_URL="http://127.0.0.1:$port/api/walletEx"
export ZPOOL_PER_SECOND=20 POLL_INTERVAL_SECONDS=5 LOG_FORMAT=text
engine=(build/m2p-engine --dry-run --accounts "$work/players.json" --env-file "")
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout -s INT "$DEMO_SECONDS" "${engine[@]}" || [ $? -eq 124 ]
else
  "${engine[@]}"
fi
