#!/usr/bin/env bash
# The script author's view of failures, through the command line:
#   - a wrong expectation in a fixture fails --script-test with a readable diff;
#   - broken pool scripts (infinite loop, syntax error, os.execute, io.open, bytecode) are
#     reported by --check and --script-test with file:line, and the engine neither crashes
#     nor hangs;
#   - what a new pool author meets (issue 8): script logs only under failing cases, one error
#     prefix per script file, the JSON errors the docs promise, arrays that are not objects,
#     a hint when run from another folder.
# Usage: script_failures.sh BUILD_DIR (run from the repository root).
set -u
engine=$(cd "$1" && pwd -P)/m2p-engine
repo=$(pwd -P)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() { # check NAME CONDITION-EXIT-STATUS
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1" >&2; fi
}
contains() { grep -qF -- "$2" <<<"$1"; }

# --- a wrong expectation: a shipped fixture with its first reward off by 100 ADVC
python3 - "$work/wrong.json" <<'PY'
import json, sys
doc = json.load(open("tests/fixtures/cpu-pool/02-payout-after-baseline.json"))
reward = next(s["expect"]["reward"] for s in doc["steps"]
              if isinstance(s.get("expect", {}).get("reward"), dict))
reward["advc"] += 100
json.dump(doc, open(sys.argv[1], "w"))
PY
out=$("$engine" --script-test "$work/wrong.json" 2>&1); status=$?
check "a wrong expectation fails" $(( status == 1 ? 0 : 1 ))
contains "$out" "FAIL" && contains "$out" "reward.advc: expected" && contains "$out" ", got "
check "the failure reads as a diff: $out" $?
contains "$out" "0 passed, 1 failed"
check "the summary line" $?

# --- broken pool scripts, next to a good one
mkdir -p "$work/pools"
cp pools/cpu-pool.lua "$work/pools/"
printf 'return { currency = "ADVC",\n  request = function( end }\n' >"$work/pools/syntax.lua"
printf 'local x = 0\nwhile true do x = x + 1 end\n' >"$work/pools/spin.lua"
printf 'os.execute("touch %s/pwned")\nreturn {}\n' "$work" >"$work/pools/execute.lua"
printf 'local f = io.open("/etc/passwd")\nreturn {}\n' >"$work/pools/ioopen.lua"
printf '\033LJ\002\000\000' >"$work/pools/bytecode.lua"
out=$(timeout 60 "$engine" --check --pools "$work/pools" --env-file "" 2>&1); status=$?
check "--check fails on broken scripts (status $status)" $(( status == 1 ? 0 : 1 ))
for want in "syntax.lua:2:" "spin.lua:2: instruction budget exceeded" "execute.lua:1:" \
            "ioopen.lua:1:" "bytecode.lua: binary (bytecode) chunks are refused" \
            "ok   $work/pools/cpu-pool.lua"; do
  contains "$out" "$want"
  check "--check reports '$want'" $?
done
[ ! -e "$work/pwned" ]
check "os.execute did not run" $?

# --- the same broken pool through --script-test: a failed case naming file:line, no hang
cat >"$work/spin-case.json" <<'JSON'
{"name": "spinning pool", "pool": "spin", "steps": [{"response": {"body": {}}, "expect": {"reward": null}}]}
JSON
out=$(timeout 60 "$engine" --script-test --pools "$work/pools" "$work/spin-case.json" 2>&1); status=$?
check "--script-test fails the case (status $status)" $(( status == 1 ? 0 : 1 ))
contains "$out" "spin.lua:2: instruction budget exceeded"
check "--script-test names file:line: $out" $?

# --- a passing run is one line per case: what scripts log (cpu-pool warns about ?addr=) is
#     shown only under a failing case, next to its difference
out=$("$engine" --script-test tests/fixtures/cpu-pool/14-url-never-addr.json 2>&1); status=$?
check "the ?addr= fixture passes (status $status)" $status
[ "$(wc -l <<<"$out")" -eq 2 ] && ! contains "$out" "cpu_pool_url_query_dropped"
check "a passing --script-test prints only its verdicts: $out" $?
python3 - "$work/addr-wrong.json" <<'PY'
import json, sys
doc = json.load(open("tests/fixtures/cpu-pool/14-url-never-addr.json"))
doc["steps"][0]["expect"] = {"reward": {"advc": 12345, "ap": 1}}
json.dump(doc, open(sys.argv[1], "w"))
PY
out=$("$engine" --script-test "$work/addr-wrong.json" 2>&1)
[ "$(grep -n "^FAIL" <<<"$out" | cut -d: -f1)" = 1 ] &&
  grep -q "^     log: .*cpu_pool_url_query_dropped" <<<"$out"
check "a failing case shows its script logs under it: $out" $?

# --- what a new pool author meets: one prefix (the file) for every error about a script, the
#     JSON errors the docs name, and arrays are not objects
mkdir -p "$work/toy"
cat >"$work/toy/toypool.lua" <<'LUA'
return { currency = "ADVC",
  request = function(w) return { url = "http://127.0.0.1:9/" .. w } end,
  parse = function(r)
    local json, why = m2p.json_object(r)
    if not json then return nil, why end
    if json.say then return nil, json.say end
    return { paid = json.paid } end }
LUA
cat >"$work/toy-case.json" <<'JSON'
{"name": "toy", "pool": "toypool", "steps": [
  {"response": {"body": {"say": "nothing here"}}, "expect": {"error": "ZZZ"}},
  {"response": {"body": {"paid": "abc"}}, "expect": {"error": "ZZZ"}},
  {"response": {"body": "{\"paid\": 1"}, "expect": {"error": "ZZZ"}},
  {"response": {"body": [{"paid": 1}]}, "expect": {"error": "ZZZ"}},
  {"response": {"status": 302, "headers": {"Location": "http://elsewhere/"}, "body": ""},
   "expect": {"error": "ZZZ"}}]}
JSON
toy_error() { # step N: the message --script-test reports for it
  python3 - "$work/toy-case.json" "$work/toy-step.json" "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
n = int(sys.argv[3])
for s in doc["steps"][:n - 1]:
    s["expect"] = {"error": True}
doc["steps"] = doc["steps"][:n]
json.dump(doc, open(sys.argv[2], "w"))
PY
  "$engine" --script-test --pools "$work/toy" "$work/toy-step.json" 2>&1 | sed -n 's/.*, got: //p'
}
for want in "1|$work/toy/toypool.lua: nothing here" \
            "2|$work/toy/toypool.lua: observation.paid: " \
            "3|$work/toy/toypool.lua: response is not JSON (truncated JSON (10 bytes))" \
            "4|$work/toy/toypool.lua: response is not a JSON object (got an array)" \
            "5|HTTP 302: a redirect, not followed"; do
  got=$(toy_error "${want%%|*}")
  contains "$got" "${want#*|}"
  check "step ${want%%|*} fails with '${want#*|}' (got '$got')" $?
done

# --- run from another folder: the missing directory is named, with a hint
out=$(cd "$work" && "$engine" --check --env-file "" 2>&1); status=$?
check "--check from another folder fails (status $status)" $(( status == 1 ? 0 : 1 ))
contains "$out" "./scripts is not in this folder" && contains "$out" "hint:" &&
  contains "$out" "--scripts DIR" && ! contains "$out" "cannot open"
check "--check from another folder says what is missing and how to point at it: $out" $?
out=$(cd "$work" && "$engine" --script-test --pools "$repo/pools" --scripts "$repo/scripts" 2>&1)
status=$?
check "--script-test from another folder with no fixtures fails (status $status)" \
  $(( status == 1 ? 0 : 1 ))
contains "$out" "no ./tests/fixtures in this folder" && contains "$out" "hint:"
check "--script-test from another folder says where the fixtures should be: $out" $?
out=$("$engine" --check --scripts "$work/nope" --env-file "" 2>&1)
contains "$out" "--scripts $work/nope: not a directory"
check "--scripts naming no directory is reported as such: $out" $?

# --- the worked example passes without recompiling anything
out=$("$engine" --pools examples --script-test examples/newpool.fixture.json 2>&1); status=$?
check "examples/newpool.lua passes its fixture: $out" $status

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
