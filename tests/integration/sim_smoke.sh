#!/usr/bin/env bash
# Smoke test of the pool simulator (tests/sim/m2p-sim): the three pools' endpoints, the manual
# clock and the ledger, every fault kind, the statistics, the zpool rate limiter, bad options and
# a clean SIGTERM shutdown (also with a held connection). Only curl on loopback; no timing
# assertions (waits are bounded polls for something to happen).
#   usage: bash tests/integration/sim_smoke.sh BUILD_DIR
set -uo pipefail

BUILD_DIR=${1:?usage: sim_smoke.sh BUILD_DIR}
SIM="$BUILD_DIR/tests/sim/m2p-sim"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/m2p-sim-smoke.XXXXXX")
SIM_PIDS=()
BG_PIDS=()

cleanup() {
  local p
  for p in "${BG_PIDS[@]}" "${SIM_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${BG_PIDS[@]}" "${SIM_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
not_ok() {
  failed=$((failed + 1))
  echo "not ok - $1"
  [ $# -gt 1 ] && echo "    $2"
  return 0
}
# check DESCRIPTION ACTUAL EXPECTED
check() {
  if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', expected '$3'"; fi
}
check_match() { # DESCRIPTION STRING REGEX
  if [[ $2 =~ $3 ]]; then ok "$1"; else not_ok "$1" "'${2:0:200}' does not match /$3/"; fi
}
num_lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !((a + 0) < (b + 0)) }'; }

if [ ! -x "$SIM" ]; then
  echo "not ok - $SIM is not built (libmicrohttpd-dev missing? run tests/install-deps.sh run)"
  echo "0 passed, 1 failed"
  exit 1
fi

# start_sim NAME ARGS... : sets SIM_PID and BASE
start_sim() {
  local name=$1
  shift
  "$SIM" --port 0 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SIM_PID=$!
  SIM_PIDS+=("$SIM_PID")
  local i line=""
  for i in $(seq 300); do
    line=$(head -n 1 "$TMP/$name.out" 2>/dev/null)
    [ -n "$line" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! $line =~ ^listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]]; then
    not_ok "$name: first line is 'listening on 127.0.0.1:PORT'" "got '$line'; stderr: $(tail -n 5 "$TMP/$name.err")"
    echo "$passed passed, $failed failed"
    exit 1
  fi
  ok "$name: first line is 'listening on 127.0.0.1:PORT'"
  BASE="http://127.0.0.1:${BASH_REMATCH[1]}"
}

# stop_sim NAME PID : SIGTERM, then the exit status must be 0
stop_sim() {
  local name=$1 pid=$2 i rc
  kill -TERM "$pid"
  for i in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    not_ok "$name: exits after SIGTERM" "still running 20 s after SIGTERM"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid"
  rc=$?
  check "$name: exit status 0 after SIGTERM" "$rc" "0"
  if grep -q -E 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:' "$TMP/$name.err"; then
    not_ok "$name: no sanitizer report" "$(grep -m 3 -E 'Sanitizer|runtime error' "$TMP/$name.err")"
  fi
}

# get URL [curl args...] : body in $TMP/body, headers in $TMP/hdr, prints the status code
get() {
  local url=$1
  shift
  curl -s -o "$TMP/body" -D "$TMP/hdr" -w '%{http_code}' "$@" "$url"
}
body() { cat "$TMP/body"; }
body_size() { wc -c <"$TMP/body" | tr -d ' '; }
# field KEY [FILE] : first "KEY": scalar value in compact JSON, quotes stripped
field() {
  grep -o -E "\"$1\":(\"[^\"]*\"|[^],}]*)" "${2:-$TMP/body}" | head -n 1 | sed -E "s/^\"$1\"://; s/^\"//; s/\"$//"
}
count_of() { grep -o -E "$1" "${2:-$TMP/body}" | wc -l | tr -d ' '; }

# Waits (bounded) until the stats field POOL.KEY reaches at least MIN.
wait_stat_at_least() {
  local pool=$1 key=$2 min=$3 i v=""
  for i in $(seq 100); do
    curl -s "$BASE/_sim/stats" | grep -o -E "\"$pool\":\{[^{]*(\{[^}]*\}[^{}]*)*" >"$TMP/poolstats"
    v=$(field "$key" "$TMP/poolstats")
    [ -n "$v" ] && [ "$v" -ge "$min" ] && { echo "$v"; return 0; }
    sleep 0.1
  done
  echo "$v"
  return 1
}

W=AeSMT1rbNzizHT4QuSAVsj3p1HzGXDQQbE
Z=bc1qcawpy7zeu37t0jazw38cfngv8wqa723uz837ep

# ================================================================ bad command lines
"$SIM" --clock bogus >/dev/null 2>&1
check "bad --clock value exits 2" "$?" "2"
"$SIM" --port 70000 >/dev/null 2>&1
check "bad --port value exits 2" "$?" "2"
"$SIM" --payout-interval 0 >/dev/null 2>&1
check "zero --payout-interval exits 2" "$?" "2"

# ================================================================ A: manual clock
start_sim A --clock manual --payout-interval 10 --seed 42 --epoch 1700000000
A_PID=$SIM_PID

# ---- cpu-pool (NOMP): the whole query string is the address, a .worker suffix is dropped
check "cpu-pool: 200" "$(get "$BASE/api/worker_stats?$W.rig1")" "200"
check "cpu-pool: content type JSON" "$(grep -i '^content-type' "$TMP/hdr" | tr -d '\r' | cut -d' ' -f2)" "application/json"
check "cpu-pool: miner is the wallet without .worker" "$(field miner)" "$W"
check "cpu-pool: nothing paid at sim time 0" "$(field paid)" "0.00000000"
check_match "cpu-pool: NOMP fields" "$(body)" '"totalHash":.*"totalShares":.*"immature":.*"balance":.*"paid":.*"workers":\{'
get "$BASE/api/worker_stats?addr=$W" >/dev/null
check "cpu-pool: ?addr=W is looked up as the address 'addr=W'" "$(field miner)" "addr=$W"
check "cpu-pool: ... with zeros" "$(field paid)/$(field totalHash)" "0.00000000/0"

# ---- manual clock
check "advance: 200" "$(get "$BASE/_sim/advance?seconds=35")" "200"
check "advance: sim time 35000 ms" "$(field sim_time_ms)" "35000"
check "advance without seconds: 400" "$(get "$BASE/_sim/advance")" "400"
check "advance with a negative number: 400" "$(get "$BASE/_sim/advance?seconds=-1")" "400"
check "advance by POST: 200" "$(get "$BASE/_sim/advance?seconds=0" -X POST)" "200"

# ---- ledger vs. what each pool reports
get "$BASE/_sim/ledger?pool=cpu-pool&wallet=$W" >/dev/null
cp "$TMP/body" "$TMP/ledger_cpu"
cpu_count=$(field count "$TMP/ledger_cpu")
check_match "ledger: 3 or 4 payouts after 35 s at a 10 s interval" "$cpu_count" '^[34]$'
check "ledger: one entry per payout" "$(count_of '"tx":"[0-9a-f]{64}"' "$TMP/ledger_cpu")" "$cpu_count"
check_match "ledger: amounts have 8 decimals in 0.1-5.0" "$(field amount "$TMP/ledger_cpu")" '^[0-4]\.[0-9]{8}$|^5\.00000000$'
get "$BASE/_sim/ledger?pool=cpu-pool&wallet=$W" >/dev/null
check "ledger: deterministic" "$(body)" "$(cat "$TMP/ledger_cpu")"
get "$BASE/api/worker_stats?$W" >/dev/null
check "cpu-pool: paid equals the ledger's paid" "$(field paid)" "$(field paid "$TMP/ledger_cpu")"

get "$BASE/_sim/ledger?pool=rplant&wallet=$W" >/dev/null
cp "$TMP/body" "$TMP/ledger_rplant"
# rplant answers in atomic units, 10^-div2 coin with div2 = 8 by default: the ledger's
# "6.73663332" is 673663332.
rplant_atomic=$(field paid "$TMP/ledger_rplant" | sed -E 's/\.//; s/^0+//; s/^$/0/')
for path in walletEx wallet; do
  check "rplant /api/$path/advc: 200" "$(get "$BASE/api/$path/advc/$W")" "200"
  check "rplant /api/$path/advc: address" "$(field address)" "$W"
  check "rplant /api/$path/advc: total is the ledger's paid in atomic units" "$(field total)" "$rplant_atomic"
  check_match "rplant /api/$path/advc: fields" "$(body)" '"balance":.*"unsold":.*"unpaid":.*"total":.*"payments":\[\{"time":[0-9]+,"amount":[0-9]+,"tx":"[0-9a-f]{64}"'
done
check "rplant /api/dash: 200" "$(get "$BASE/api/dash")" "200"
check_match "rplant /api/dash: tbs.advc.info.div2 is 8" "$(body)" '"tbs":\{"advc":\{[^}]*"info":\{"div2":8\}'

get "$BASE/_sim/ledger?pool=zpool&wallet=$Z" >/dev/null
cp "$TMP/body" "$TMP/ledger_zpool"
check "zpool: 200" "$(get "$BASE/api/walletEx?address=$Z")" "200"
cp "$TMP/body" "$TMP/zpool_normal"
check "zpool: currency BTC" "$(field currency)" "BTC"
check_match "zpool: YiiMP fields" "$(body)" '"unsold":.*"balance":.*"unpaid":.*"paid24h":.*"total":.*"miners":\[.*"payouts":\['
check "zpool: one payout per ledger entry" "$(count_of '"tx":' )" "$(field count "$TMP/ledger_zpool")"
check "zpool: paid24h equals the ledger's paid (all within 24 h)" "$(field paid24h)" "$(field paid "$TMP/ledger_zpool")"
last_tx=$(grep -o -E '"tx":"[0-9a-f]+"' "$TMP/ledger_zpool" | tail -n 1)
first_tx=$(grep -o -E '"tx":"[0-9a-f]+"' "$TMP/body" | head -n 1)
check "zpool: newest payout first, same tx as the ledger" "$first_tx" "$last_tx"
check_match "zpool: payout amount is a string with 8 decimals" "$(body)" '"amount":"0\.000[0-9]{5}"'
check "zpool: no address gives an empty body" "$(get "$BASE/api/walletEx?address=")/$(body_size)" "200/0"

get "$BASE/_sim/advance?seconds=172800" >/dev/null
get "$BASE/_sim/ledger?pool=zpool&wallet=$Z" >/dev/null
cp "$TMP/body" "$TMP/ledger_zpool2"
get "$BASE/api/walletEx?address=$Z" >/dev/null
check "zpool: at most the 50 newest payouts" "$(count_of '"tx":')" "50"
check "zpool: paid24h equals the ledger's paid24h" "$(field paid24h)" "$(field paid24h "$TMP/ledger_zpool2")"
if num_lt "$(field paid24h)" "$(field paid "$TMP/ledger_zpool2")"; then
  ok "zpool: paid24h is a sliding window (below the total paid after 2 days)"
else
  not_ok "zpool: paid24h is a sliding window" "paid24h $(field paid24h), paid $(field paid "$TMP/ledger_zpool2")"
fi
# The clock no longer moves from here on: bodies are stable between requests.
get "$BASE/api/walletEx?address=$Z" >/dev/null
cp "$TMP/body" "$TMP/zpool_normal"

# ---- faults
check "fault: unknown kind is 400" "$(get "$BASE/_sim/fault?pool=zpool&kind=bogus")" "400"
check "fault: unknown pool is 400" "$(get "$BASE/_sim/fault?pool=nope&kind=empty")" "400"
check "fault: bad rate is 400" "$(get "$BASE/_sim/fault?pool=zpool&kind=empty&rate=2")" "400"

check "fault status set: 200" "$(get "$BASE/_sim/fault?pool=cpu-pool&kind=status&code=503&retry_after=7&count=2")" "200"
check_match "fault status: listed" "$(body)" '"kind":"status".*"remaining":2'
for i in 1 2; do
  check "fault status: request $i is 503" "$(get "$BASE/api/worker_stats?$W")" "503"
done
check "fault status: Retry-After header" "$(grep -i '^retry-after:' "$TMP/hdr" | tr -d '\r' | cut -d' ' -f2)" "7"
check_match "fault status: HTML error page" "$(body)" '<html>.*503'
check "fault status: count used up, then 200" "$(get "$BASE/api/worker_stats?$W")" "200"
for code in 429 500 404; do
  get "$BASE/_sim/fault?pool=rplant&kind=status&code=$code&count=1" >/dev/null
  check "fault status code=$code" "$(get "$BASE/api/walletEx/advc/$W")" "$code"
done

get "$BASE/_sim/fault?pool=rplant&kind=empty&count=1" >/dev/null
check "fault empty: 200 with an empty body" "$(get "$BASE/api/walletEx/advc/$W")/$(body_size)" "200/0"

get "$BASE/_sim/fault?pool=rplant&kind=html&count=1" >/dev/null
check "fault html: 200" "$(get "$BASE/api/walletEx/advc/$W")" "200"
check_match "fault html: an HTML page" "$(head -c 15 "$TMP/body")" '^<!DOCTYPE html'

get "$BASE/_sim/fault?pool=zpool&kind=truncated&count=1" >/dev/null
full=$(wc -c <"$TMP/zpool_normal" | tr -d ' ')
check "fault truncated: 200" "$(get "$BASE/api/walletEx?address=$Z")" "200"
check "fault truncated: half of the JSON body" "$(body_size)" "$((full / 2))"
check "fault truncated: a prefix of the normal body" "$(body)" "$(head -c $((full / 2)) "$TMP/zpool_normal")"

get "$BASE/_sim/fault?pool=cpu-pool&kind=wrong_miner&count=1" >/dev/null
get "$BASE/api/worker_stats?$W" >/dev/null
miner=$(field miner)
if [ -n "$miner" ] && [ "$miner" != "$W" ]; then ok "fault wrong_miner: another wallet's data ($miner)"; else
  not_ok "fault wrong_miner: another wallet's data" "miner '$miner'"; fi

get "$BASE/_sim/fault?pool=rplant&kind=huge&count=1" >/dev/null
check "fault huge: 200" "$(get "$BASE/api/walletEx/advc/$W")" "200"
check "fault huge: 2 MiB body" "$(body_size)" "2097152"

get "$BASE/_sim/fault?pool=zpool&kind=error_object&count=1" >/dev/null
get "$BASE/api/walletEx?address=$Z" >/dev/null
check "fault error_object" "$(body)" '{"result":"error","message":"Invalid wallet address"}'

get "$BASE/_sim/fault?pool=rplant&kind=string_amounts&count=1" >/dev/null
get "$BASE/api/walletEx/advc/$W" >/dev/null
check_match "fault string_amounts: amounts as strings" "$(body)" '"total":"[0-9]+"'

get "$BASE/_sim/fault?pool=rplant&kind=coins&count=1" >/dev/null
get "$BASE/api/walletEx/advc/$W" >/dev/null
check_match "fault coins: rplant amounts in coins (before 2024)" "$(body)" '"total":[0-9]+\.[0-9]{8},'

get "$BASE/_sim/fault?pool=rplant-dash&kind=status&code=503&count=1" >/dev/null
check "fault on rplant-dash: /api/dash answers 503" "$(get "$BASE/api/dash")" "503"
check "... and walletEx is untouched" "$(get "$BASE/api/walletEx/advc/$W")" "200"

get "$BASE/_sim/fault?pool=cpu-pool&kind=latency&ms=200&count=1" >/dev/null
check "fault latency: answered 200 after the delay" "$(get "$BASE/api/worker_stats?$W")" "200"
check "fault latency: normal body" "$(field miner)" "$W"

get "$BASE/_sim/fault?pool=zpool&kind=timeout&count=1" >/dev/null
code=$(get "$BASE/api/walletEx?address=$Z" --max-time 2)
rc=$?
check "fault timeout: no answer, the client gives up (curl exit 28)" "$rc/$code" "28/000"
check "fault timeout: next request answered" "$(get "$BASE/api/walletEx?address=$Z")" "200"
dropped=$(wait_stat_at_least zpool dropped 1)
check "fault timeout: the held connection is released once the client left" "$dropped" "1"

# rate: deterministic from the seed
get "$BASE/_sim/fault?pool=rplant&kind=status&code=500&rate=0.5" >/dev/null
seq1=""
for i in $(seq 24); do seq1+=$(get "$BASE/api/walletEx/advc/$W" -o /dev/null)" "; done
get "$BASE/_sim/fault?pool=rplant&kind=clear" >/dev/null
check "fault clear: no fault left" "$(count_of '"kind"')" "0"
check "fault clear: 200 again" "$(get "$BASE/api/walletEx/advc/$W")" "200"
get "$BASE/_sim/fault?pool=rplant&kind=status&code=500&rate=0.5" >/dev/null
seq2=""
for i in $(seq 24); do seq2+=$(get "$BASE/api/walletEx/advc/$W" -o /dev/null)" "; done
n500=$(grep -o 500 <<<"$seq1" | wc -l)
if [ "$n500" -gt 0 ] && [ "$n500" -lt 24 ]; then ok "fault rate=0.5: some requests faulted ($n500/24)"; else
  not_ok "fault rate=0.5: some requests faulted" "$seq1"; fi
check "fault rate: the same pattern for the same seed" "$seq2" "$seq1"
get "$BASE/_sim/fault?pool=all&kind=clear" >/dev/null
check "fault pool=all clear" "$(count_of '"kind"')" "0"

# ---- statistics and request log
check "reset: 200" "$(get "$BASE/_sim/reset")" "200"
get "$BASE/_sim/fault?pool=cpu-pool&kind=status&code=500&count=1" >/dev/null
for i in 1 2 3; do get "$BASE/api/worker_stats?$W" >/dev/null; done
check "unknown path: 404" "$(get "$BASE/api/nothing")" "404"
get "$BASE/_sim/stats" >/dev/null
cpu=$(grep -o -E '"cpu-pool":\{[^{]*\{[^}]*\}[^{]*\{[^}]*\}' "$TMP/body")
check_match "stats: cpu-pool requests, by_status, faults_served" "$cpu" \
  '"requests":3,"by_status":\{"200":2,"500":1\},"faults_served":1,"by_fault":\{"status":1\}'
check_match "stats: other requests" "$(body)" '"other":\{"requests":1,"by_status":\{"404":1\}'
get "$BASE/_sim/requests?pool=cpu-pool" >/dev/null
check "requests: total" "$(field total)" "3"
check_match "requests: arrival times" "$(body)" '"times":\[[0-9]+,[0-9]+,[0-9]+\]'
check "requests: bad pool is 400" "$(get "$BASE/_sim/requests?pool=x")" "400"
check "unknown control endpoint: 404" "$(get "$BASE/_sim/nothing")" "404"
check "time: manual clock" "$(get "$BASE/_sim/time" >/dev/null; field clock)" "manual"

stop_sim A "$A_PID"

# ================================================================ B: real clock, rate limit
start_sim B --zpool-rate-limit 60 --seed 7 --quiet
B_PID=$SIM_PID
check "real clock: advance is refused (409)" "$(get "$BASE/_sim/advance?seconds=1")" "409"
check "rate limit: first zpool request answered" "$(get "$BASE/api/walletEx?address=$Z")" "200"
if [ "$(body_size)" -gt 0 ]; then ok "rate limit: first zpool body not empty"; else not_ok "rate limit: first zpool body not empty"; fi
check "rate limit: next zpool request 200 with an empty body" "$(get "$BASE/api/walletEx?address=other")/$(body_size)" "200/0"
check "rate limit: cpu-pool not limited" "$(get "$BASE/api/worker_stats?$W")" "200"
check_match "rate limit: counted" "$(curl -s "$BASE/_sim/stats")" '"rate_limited":[1-9]'

# Shutdown with a connection held by a timeout fault.
get "$BASE/_sim/fault?pool=cpu-pool&kind=timeout" >/dev/null
curl -s -o /dev/null --max-time 60 "$BASE/api/worker_stats?$W" &
BG_PIDS+=($!)
held=$(wait_stat_at_least cpu-pool held 1)
check "timeout: the connection is held" "$held" "1"
stop_sim B "$B_PID"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
