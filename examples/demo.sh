#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts a private PostgreSQL under .work/pg (a
# Unix socket, no system service, no password), seeds demo players, starts the local pool
# simulator with payouts every few seconds, and runs the engine against both, so rewards
# arrive in the database within a minute. When Node.js is installed it also starts the game's
# side of the notifications, the Socket.IO relay (examples/socketio-relay), and prints the
# URL of its page, where a player's rewards appear as they are awarded. Ctrl-C (or any other
# way the script ends) stops everything it started; a run that was killed outright is cleaned
# up by the next one.
#
#   DEMO_SECONDS=N     stop by itself after N seconds and print the players' totals
#   DATABASE_URL=...   use that database instead of the private PostgreSQL
#   DEMO_WORK=DIR      keep the private PostgreSQL and the logs in DIR (default .work)
#   DEMO_BUILD=DIR     use the engine and simulator already built in DIR: no install, no build
#                      (tests/integration/demo_lifecycle.sh uses it)
#   DEMO_RELAY_PORT=N  the relay's port (default 3000; a free one when that is taken)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd -P)

say() { echo "demo: $*" >&2; }

work=${DEMO_WORK:-$root/.work}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
logs=$work/demo
pgdir=$work/pg
pgport=5433
mkdir -p "$logs"

engine_pid="" sim_pid="" relay_pid="" sleeper_pid="" pg_started=""
pgbin=""

# PostgreSQL refuses to run as root: as root, run it as the postgres system user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# True when the lock file names a live postmaster serving this data directory. The PID alone
# is not enough: after a reboot or in a container it may belong to an unrelated process.
pg_running() {
  local pid
  pid=$(head -n 1 "$pgdir/data/postmaster.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$pgdir/data" ]
}

stop_postgres() {
  as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w -t 30 stop >/dev/null 2>&1 && return 0
  local pid
  pid=$(head -n 1 "$pgdir/data/postmaster.pid" 2>/dev/null)
  if pg_running; then kill -QUIT "$pid" 2>/dev/null; fi
  return 0
}

stop_child() { # pid: TERM, then wait, so that nothing is left when the script is gone
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# Runs on every exit (normal end, error, Ctrl-C, kill): each step tolerates a process that is
# already gone, and a second Ctrl-C cannot cut it short.
cleanup() {
  set +e
  trap '' INT TERM
  [ -n "$sleeper_pid" ] && stop_child "$sleeper_pid"
  [ -n "$engine_pid" ] && stop_child "$engine_pid"
  [ -n "$relay_pid" ] && stop_child "$relay_pid"
  [ -n "$sim_pid" ] && stop_child "$sim_pid"
  if [ -n "$pg_started" ]; then
    say "stopping the private PostgreSQL"
    stop_postgres
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build=${DEMO_BUILD:-}
if [ -z "$build" ]; then
  build=$root/build
  say "checking the Debian packages (the first run installs them: a few minutes)"
  tests/install-deps.sh run
  say "building into build/ (about a minute the first time; log: $logs/build.log)"
  if ! { cmake -S . -B build && cmake --build build -j "$(nproc 2>/dev/null || echo 2)"; } \
      >"$logs/build.log" 2>&1; then
    tail -n 30 "$logs/build.log" >&2
    say "the build failed (full log: $logs/build.log)"
    exit 1
  fi
fi

# Starts clean over whatever an earlier run left: a server still up (the earlier run was
# killed before it could stop it), a stale lock file or socket lock, a half-made data dir.
start_private_postgres() {
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pgbin" ] || { say "PostgreSQL is not installed (tests/install-deps.sh run)"; exit 1; }
  mkdir -p "$pgdir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$pgdir"
  if pg_running; then
    say "a PostgreSQL left running by an earlier run: stopping it"
    stop_postgres
  fi
  if ! pg_running; then
    rm -f "$pgdir/data/postmaster.pid" "$pgdir/.s.PGSQL.$pgport" "$pgdir/.s.PGSQL.$pgport.lock"
  fi
  if [ -d "$pgdir/data" ] && [ ! -f "$pgdir/data/PG_VERSION" ]; then
    rm -rf "$pgdir/data"
  fi
  if [ ! -f "$pgdir/data/PG_VERSION" ]; then
    say "creating a private PostgreSQL in $pgdir"
    as_pg "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust >"$logs/initdb.log" 2>&1 ||
      { cat "$logs/initdb.log" >&2; exit 1; }
  fi
  say "starting the private PostgreSQL (log: $pgdir/server.log)"
  pg_started=1
  as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories=$pgdir -p $pgport" start >/dev/null ||
    { tail -n 20 "$pgdir/server.log" >&2; exit 1; }
  psql -h "$pgdir" -p "$pgport" -U postgres -qAtc \
    "SELECT 1 FROM pg_database WHERE datname = 'm2p'" | grep -q 1 ||
    psql -h "$pgdir" -p "$pgport" -U postgres -qc "CREATE DATABASE m2p"
  export DATABASE_URL="host=$pgdir port=$pgport user=postgres dbname=m2p"
}

[ -n "${DATABASE_URL:-}" ] || start_private_postgres
say "migrating and seeding the database"
"$build/m2p-engine" --migrate --env-file ""
# Checksum-valid addresses (nobody owns them): ADVC for the ADVC pools, BTC for zpool. An
# earlier run's rows are brought up to date, so a demo database from an older version works.
psql "$DATABASE_URL" -q >/dev/null <<'SQL'
INSERT INTO players (username, email, wallet_address, verified, active) VALUES
  ('alice', 'alice@example.com', 'AK25iob33on4rFbcfU4fXzrTiqf3pwYNQY', true, true),
  ('bob', 'bob@example.com', 'AejsmEoEqtV53MYTdzZgzo255nwQ8YVCQc', true, true),
  ('carol', 'carol@example.com', 'ALUrPLXFsYRCX3KnBiHWRVgdCKcXZuzvm5', true, true)
ON CONFLICT (username) DO UPDATE SET wallet_address = EXCLUDED.wallet_address;
INSERT INTO m2p_player_wallets (player_id, pool_name, wallet)
  SELECT id, 'zpool', w FROM players JOIN (VALUES
    ('alice', 'bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh'),
    ('bob', 'bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq'),
    ('carol', 'bc1qv9jszusnkegl7nnv0lvzlnj7a2m2p8c4eh8ar7')) AS v(name, w) ON username = name
ON CONFLICT (player_id, pool_name) DO UPDATE SET wallet = EXCLUDED.wallet;
SQL

# The Socket.IO relay (examples/socketio-relay) with a fresh engine token, and the engine
# pointed at it. Optional: without Node.js, or when npm ci fails, the demo runs without it.
start_relay() {
  local dir=$root/examples/socketio-relay token try relay_port="" url alice
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "Node.js is not installed: no Socket.IO relay (apt-get install nodejs npm adds it)"
    return 0
  fi
  if [ -z "${DEMO_BUILD:-}" ] && ! "$dir/install.sh" >"$logs/npm.log" 2>&1; then
    say "npm ci failed (log: $logs/npm.log): continuing without the Socket.IO relay"
    return 0
  fi
  if [ ! -f "$dir/node_modules/socket.io/package.json" ]; then
    say "examples/socketio-relay/node_modules is missing: continuing without the relay"
    return 0
  fi
  token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  for try in "${DEMO_RELAY_PORT:-3000}" 0; do
    RELAY_ENGINE_TOKEN=$token PORT=$try HOST=127.0.0.1 node "$dir/server.js" \
      >"$logs/relay.out" 2>&1 &
    relay_pid=$!
    for _ in $(seq 100); do
      # The file may not exist yet (the background shell has not opened it): not an error.
      relay_port=$(sed -n 's|^relay: listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' \
        "$logs/relay.out" 2>/dev/null || true)
      { [ -n "$relay_port" ] || ! kill -0 "$relay_pid" 2>/dev/null; } && break
      sleep 0.1
    done
    [ -n "$relay_port" ] && break
    kill -TERM "$relay_pid" 2>/dev/null || true # exited already (its port was taken), or hung
    wait "$relay_pid" 2>/dev/null || true
    relay_pid=""
  done
  if [ -z "$relay_port" ]; then
    say "the Socket.IO relay did not start (log: $logs/relay.out): continuing without it"
    return 0
  fi
  url="http://127.0.0.1:$relay_port"
  export SOCKETIO_URL=$url SOCKETIO_AUTH="{\"token\":\"$token\"}"
  alice=$(psql "$DATABASE_URL" -qAtc "SELECT id FROM players WHERE username = 'alice'")
  say "Socket.IO relay on $url (log: $logs/relay.out); alice's rewards as they arrive:"
  echo "  $url/?player=$alice" >&2
}

say "starting the pool simulator"
"$build/tests/sim/m2p-sim" --port 0 --payout-interval 8 --quiet >"$logs/sim.out" 2>"$logs/sim.err" &
sim_pid=$!
for _ in $(seq 50); do grep -q listening "$logs/sim.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$logs/sim.out")
[ -n "$port" ] || { say "the simulator did not start"; cat "$logs/sim.err" >&2; exit 1; }

say "simulator on 127.0.0.1:$port, database: $DATABASE_URL"
start_relay
say "rewards are logged below and stored in mining_events; try:"
echo "  psql \"$DATABASE_URL\" -c 'SELECT username, total_ap, total_advc_mined FROM players'" >&2
# The admin endpoint: the status page and GET /accounts (README.md, "5-minute tour"). A port
# that is taken is logged (admin_listen_failed) and the demo runs on without it.
export ADMIN_LISTEN=${ADMIN_LISTEN:-127.0.0.1:9464}
if [ "$ADMIN_LISTEN" != off ]; then
  alice=$(psql "$DATABASE_URL" -qAtc "SELECT id FROM players WHERE username = 'alice'")
  auth=${ADMIN_TOKEN:+ -H \"Authorization: Bearer \$ADMIN_TOKEN\"}
  say "status page: http://$ADMIN_LISTEN/ ; why alice (player $alice) got what she got:"
  echo "  curl -s$auth 'http://$ADMIN_LISTEN/accounts?player=$alice'" >&2
  echo "  DATABASE_URL=\"$DATABASE_URL\" $build/m2p-engine --explain $alice" >&2
fi
export CPU_POOL_URL="http://127.0.0.1:$port/api/worker_stats"
export RPLANT_URL="http://127.0.0.1:$port/api/walletEx/advc"
export ZPOOL_URL="http://127.0.0.1:$port/api/walletEx"
export ZPOOL_PER_SECOND=20 POLL_INTERVAL_SECONDS=5 LOG_FORMAT=text

# The engine runs in the background and the script waits for it, so that a signal to the
# script is handled at once (bash runs a trap only between commands).
"$build/m2p-engine" --env-file "" &
engine_pid=$!
if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS" &
  sleeper_pid=$!
  wait -n "$engine_pid" "$sleeper_pid" || true
  kill -INT "$engine_pid" 2>/dev/null || true
fi
status=0
wait "$engine_pid" || status=$?
engine_pid=""
if [ -n "${DEMO_SECONDS:-}" ]; then
  psql "$DATABASE_URL" -c 'SELECT username, total_ap, total_advc_mined FROM players ORDER BY id'
fi
exit "$status"
