#!/usr/bin/env bash
# The script author's view of failures, through the command line:
#   - a wrong expectation in a fixture fails --script-test with a readable diff;
#   - broken pool scripts (infinite loop, syntax error, os.execute, io.open, bytecode) are
#     reported by --check and --script-test with file:line, and the engine neither crashes
#     nor hangs.
# Usage: script_failures.sh BUILD_DIR (run from the repository root).
set -u
engine="$1/m2p-engine"
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

# --- the worked example passes without recompiling anything
out=$("$engine" --pools examples --script-test examples/newpool.fixture.json 2>&1); status=$?
check "examples/newpool.lua passes its fixture: $out" $status

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
