#!/usr/bin/env bash
# examples/demo.sh as a user meets it (issue 8): rewards reach its database; Ctrl-C stops
# everything it started; a run killed outright (its PostgreSQL left running) and a stale
# postmaster.pid do not stop the next run; the timed run (DEMO_SECONDS) ends by itself.
# Uses the engine of the build under test (DEMO_BUILD) and a private DEMO_WORK directory, so
# it installs and builds nothing and never touches the checkout's .work/.
# Deadlines below only bound a hang; nothing is asserted about how long anything takes.
set -uo pipefail
build=$(cd "${1:?usage: demo_lifecycle.sh BUILD_DIR}" && pwd -P)
cd "$(dirname "$0")/../.." || exit 1

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || ! command -v psql >/dev/null; then
  echo "not ok - PostgreSQL is not installed (tests/install-deps.sh run)"
  echo "0 passed, 1 failed"
  exit 1
fi

work=$(mktemp -d /tmp/m2p-demo-test.XXXXXX)
chmod 755 "$work" # PostgreSQL runs as the postgres user when we are root
pgdata=$work/pg/data
db="host=$work/pg port=5433 user=postgres dbname=m2p"
passed=0 failed=0 demo_pid="" helper_pid=""

ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

# Every process the demo started carries DEMO_WORK in its environment; PostgreSQL rewrites
# its own, but all its processes run in the data directory.
leftovers() {
  local p found=""
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    if [ "$(readlink "$p/cwd" 2>/dev/null)" = "$pgdata" ] ||
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "DEMO_WORK=$work"; then
      found="$found ${p#/proc/}:$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | cut -c1-60)"
    fi
  done
  echo "$found"
}
nothing_left() {
  local left
  left=$(leftovers)
  [ -z "$left" ] || { echo "# still running:$left"; return 1; }
}
postgres_running() {
  local pid
  pid=$(head -n 1 "$pgdata/postmaster.pid" 2>/dev/null) || return 1
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$pgdata" ]
}

finish() {
  local p
  [ -n "$helper_pid" ] && kill "$helper_pid" 2>/dev/null
  for p in $(leftovers); do kill -KILL "${p%%:*}" 2>/dev/null; done
  if [ "$failed" -gt 0 ] && [ -n "${M2P_KEEP_TMP:-}" ]; then
    echo "# kept $work"
  else
    rm -rf "$work"
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
trap 'finish; exit $?' EXIT

# Starts the demo in its own session, as a terminal would run it in its own process group.
start_demo() {
  setsid env DEMO_WORK="$work" DEMO_BUILD="$build" examples/demo.sh >"$work/$1.log" 2>&1 &
  demo_pid=$!
}
wait_for() { # what, deadline seconds, command...
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [ $SECONDS -ge $deadline ] || ! kill -0 "$demo_pid" 2>/dev/null; then
      echo "# gave up waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}
rewards_stored() {
  local n
  n=$(psql "$db" -qAtc "SELECT count(*) FROM mining_events" 2>/dev/null) && [ "${n:-0}" -gt 0 ]
}
demo_exited() { ! kill -0 "$demo_pid" 2>/dev/null; }
show_log() { sed 's/^/#   /' "$work/$1.log" | tail -n 25; }

# 1. Rewards reach the database; Ctrl-C (SIGINT to the whole group) stops everything.
start_demo interrupted
if wait_for "rewards in mining_events" 180 rewards_stored; then
  ok "rewards appear in the demo's database while it runs"
else
  not_ok "rewards appear in the demo's database while it runs"
  show_log interrupted
fi
kill -INT -- "-$demo_pid" 2>/dev/null
wait_for "the demo to exit after Ctrl-C" 90 demo_exited
wait "$demo_pid" 2>/dev/null
check "after Ctrl-C nothing the demo started is left running" nothing_left
check "after Ctrl-C the demo said it stopped PostgreSQL" \
  grep -q "stopping the private PostgreSQL" "$work/interrupted.log"

# 2. A run killed outright (SIGKILL, no trap runs) leaves its PostgreSQL behind...
start_demo killed
wait_for "the engine to start" 120 grep -q "simulator on 127.0.0.1" "$work/killed.log"
sleep 1 # the engine is being started: let it come up before the kill
kill -KILL -- "-$demo_pid" 2>/dev/null
{ wait "$demo_pid"; } 2>/dev/null # and no "Killed" notice from bash
check "a killed run leaves its PostgreSQL running (the stale state the next run meets)" \
  postgres_running

# 3. ...and the next run stops it, starts its own, and its timed end stops everything.
DEMO_WORK="$work" DEMO_BUILD="$build" DEMO_SECONDS=2 examples/demo.sh >"$work/timed.log" 2>&1
rc=$?
check "the run after a killed one works (exit $rc)" test "$rc" -eq 0
grep -q "left running by an earlier run" "$work/timed.log" || show_log timed
check "it stopped the server the killed run left" \
  grep -q "left running by an earlier run" "$work/timed.log"
check "DEMO_SECONDS prints the players' totals from the database" \
  grep -q "total_advc_mined" "$work/timed.log"
check "after the timed run nothing it started is left running" nothing_left

# 4. A stale postmaster.pid naming a live, unrelated process (PID reuse after a crash).
sleep 300 &
helper_pid=$!
printf '%s\n%s\n' "$helper_pid" "$pgdata" >"$pgdata/postmaster.pid"
DEMO_WORK="$work" DEMO_BUILD="$build" DEMO_SECONDS=2 examples/demo.sh >"$work/stale.log" 2>&1
rc=$?
[ "$rc" -eq 0 ] || show_log stale
check "a stale postmaster.pid does not stop the demo (exit $rc)" test "$rc" -eq 0
check "the unrelated process named in it was left alone" kill -0 "$helper_pid"
check "after that run nothing it started is left running" nothing_left
