#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a private PostgreSQL under .work/pg (a
# Unix socket, no system service, no password), seeds demo players, starts the local pool
# simulator with payouts every few seconds, and runs the engine against both, so rewards
# arrive in the database within a minute. Ctrl-C stops everything it started.
# DEMO_SECONDS=N stops by itself after N seconds. DATABASE_URL=... uses that database instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tests/install-deps.sh
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

work=$root/.work/demo
pgdir=$root/.work/pg
mkdir -p "$work"
sim_pid=""
pg_started=""
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

# PostgreSQL refuses to run as root: as root, run it as the postgres system user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null
  [ -n "$pg_started" ] && as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null 2>&1
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_private_postgres() {
  local port=5433
  if [ ! -f "$pgdir/data/PG_VERSION" ]; then
    mkdir -p "$pgdir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
    as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust >"$work/initdb.log"
  fi
  as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories=$pgdir -p $port" start >/dev/null
  pg_started=1
  psql -h "$pgdir" -p "$port" -U postgres -qAtc "SELECT 1 FROM pg_database WHERE datname = 'm2p'" \
    | grep -q 1 || psql -h "$pgdir" -p "$port" -U postgres -qc "CREATE DATABASE m2p"
  export DATABASE_URL="host=$pgdir port=$port user=postgres dbname=m2p"
}

[ -n "${DATABASE_URL:-}" ] || start_private_postgres
build/m2p-engine --migrate --env-file ""
psql "$DATABASE_URL" -q >/dev/null <<'SQL'
INSERT INTO players (username, email, wallet_address, verified, active) VALUES
  ('alice', 'alice@example.com', 'AXb7Kc2R9mQwE4tYuP3sLdF6gH8jN1vZq5', true, true),
  ('bob', 'bob@example.com', 'AQw3Er5Ty7Ui9Op1As2Df4Gh6Jk8Lz0Xc1', true, true),
  ('carol', 'carol@example.com', 'AMn8Bv6Cx4Za2Sd0Fg9Hj7Kl5Qw3Er1Ty9', true, true)
ON CONFLICT (username) DO NOTHING;
INSERT INTO m2p_player_wallets (player_id, pool_name, wallet)
  SELECT id, 'zpool', w FROM players JOIN (VALUES
    ('alice', 'bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh'),
    ('bob', 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'),
    ('carol', 'bc1q9d4ywgfnd8h43da5tpcxcn6ajv590cg6d3tg6a')) AS v(name, w) ON username = name
ON CONFLICT DO NOTHING;
SQL

build/tests/sim/m2p-sim --port 0 --payout-interval 8 --quiet >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
for _ in $(seq 50); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$work/sim.out")
[ -n "$port" ] || { echo "demo: the simulator did not start" >&2; cat "$work/sim.err" >&2; exit 1; }

echo "demo: simulator on 127.0.0.1:$port, database: $DATABASE_URL" >&2
echo "demo: rewards are logged below and stored in mining_events; try:" >&2
echo "  psql \"$DATABASE_URL\" -c 'SELECT username, total_ap, total_advc_mined FROM players'" >&2
export CPU_POOL_URL="http://127.0.0.1:$port/api/worker_stats"
export RPLANT_URL="http://127.0.0.1:$port/api/walletEx/advc"
export ZPOOL_URL="http://127.0.0.1:$port/api/walletEx"
export ZPOOL_PER_SECOND=20 POLL_INTERVAL_SECONDS=5 LOG_FORMAT=text
engine=(build/m2p-engine --env-file "")
if [ -n "${DEMO_SECONDS:-}" ]; then
  timeout -s INT "$DEMO_SECONDS" "${engine[@]}" || [ $? -eq 124 ]
  psql "$DATABASE_URL" -c 'SELECT username, total_ap, total_advc_mined FROM players ORDER BY id'
else
  "${engine[@]}"
fi
