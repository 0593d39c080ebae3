"""Shared helpers for the integration tests (stdlib only).

A test file defines functions `test_xxx(ctx)` and ends with `harness.main(globals())`.
Each test gets a fresh `Context`: a temporary directory, and every process it starts (the
pool simulator, engines) is stopped when the test ends, whether it passed or not.

    sim = ctx.start_sim("--payout-interval", "5")
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(10)], sim.pool_env())
    eng.wait_for(lambda e: e["event"] == "pool_poll_success", timeout=20, what="a poll")
    rc = eng.stop()

Failures are reported with `check(cond, message)` (or `fail(message)`): the message, the
engine's and simulator's last output lines, then `N passed, N failed` and exit status 1.

Nothing here asserts on wall-clock durations. Timeouts are generous upper bounds that only
trigger when something hangs; everything measured is a count or a relation.

Run one file by hand:  python3 tests/integration/poll_interval.py build
  M2P_TEST=substring   only the tests whose name contains it
  M2P_VERBOSE=1        print the measured counts and rates (harness.note)
  M2P_KEEP_TMP=1       keep a failed test's directory (engine and simulator logs)
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Events that end one poll: every poll the engine starts ends in exactly one of these
# (pool_poll_success needs LOG_LEVEL=debug).
POLL_END_EVENTS = (
    "pool_poll_success",
    "pool_poll_http_error",
    "pool_poll_timeout",
    "pool_poll_rejected",
    "pool_poll_commit_failed",
)
POLL_FAILURE_EVENTS = POLL_END_EVENTS[1:]

# Variables the engine or the pool scripts read: never inherited from the caller's
# environment, so a developer's shell cannot change what a test sees.
_PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "ASAN_OPTIONS",
                    "LSAN_OPTIONS", "UBSAN_OPTIONS")

_live_processes = []
_live_lock = threading.Lock()


class TestFailure(Exception):
    pass


def fail(message):
    raise TestFailure(message)


def check(condition, message):
    if not condition:
        raise TestFailure(message)


def note(message):
    """A line of detail, printed when M2P_VERBOSE is set (measured counts, rates)."""
    if os.environ.get("M2P_VERBOSE"):
        print("     . " + message)
        sys.stdout.flush()


def parse_timestamp(ts):
    """'2026-11-24T00:03:28.299Z' -> seconds since the epoch (float)."""
    import calendar
    base, _, frac = ts.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
    return secs + (float("0." + frac) if frac else 0.0)


def wait_until(predicate, timeout, what, interval=0.05):
    """Polls predicate() until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            fail("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def _register(proc):
    with _live_lock:
        _live_processes.append(proc)


def _unregister(proc):
    with _live_lock:
        if proc in _live_processes:
            _live_processes.remove(proc)


def _kill_all():
    with _live_lock:
        procs = list(_live_processes)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass


def _tail(path, lines=25):
    try:
        with open(path, "r", errors="replace") as f:
            content = f.read().splitlines()
    except OSError:
        return []
    return content[-lines:]


# ============================================================================ simulator


class Sim:
    """The pool simulator (tests/sim), on a free loopback port."""

    def __init__(self, ctx, binary, args):
        self.ctx = ctx
        self.stderr_path = os.path.join(ctx.tmp, "sim-%d.stderr" % len(ctx.sims))
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([binary, "--port", "0"] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=ctx.tmp)
        _register(self.proc)
        self.port = None
        line = self._read_first_line(timeout=30)
        prefix = "listening on 127.0.0.1:"
        if not line.startswith(prefix):
            fail("the simulator did not start: first line %r; stderr: %s"
                 % (line, " | ".join(_tail(self.stderr_path, 5))))
        self.port = int(line[len(prefix):].strip())
        self.base = "http://127.0.0.1:%d" % self.port

    def _read_first_line(self, timeout):
        result = []

        def reader():
            result.append(self.proc.stdout.readline().decode("utf-8", "replace"))

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            fail("the simulator printed nothing for %d s" % timeout)
        return result[0]

    # ---- URLs for the engine

    def pool_env(self):
        """Settings pointing the three shipped pool scripts at this simulator."""
        return {
            "CPU_POOL_URL": self.base + "/api/worker_stats",
            "RPLANT_URL": self.base + "/api/walletEx/advc",
            "ZPOOL_URL": self.base + "/api/walletEx",
        }

    # ---- control endpoints (/_sim/...)

    def get(self, path, **params):
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = self.base + path + ("?" + query if query else "")
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = r.read()
        except urllib.error.HTTPError as e:
            fail("simulator %s answered %d: %s" % (url, e.code, e.read()[:300]))
        except OSError as e:
            fail("simulator %s: %s%s" % (url, e, self.exit_note()))
        return json.loads(body, parse_float=Decimal)

    def exit_note(self):
        """Explains a dead simulator (it only exits on a signal, so someone sent one)."""
        rc = self.proc.poll()
        if rc is None:
            return ""
        return (" (the simulator has exited with status %s although the test did not stop it: "
                "killed from outside?)" % rc)

    def fault(self, pool, kind, **params):
        return self.get("/_sim/fault", pool=pool, kind=kind, **params)

    def clear_faults(self, pool="all"):
        return self.get("/_sim/fault", pool=pool, kind="clear")

    def stats(self):
        return self.get("/_sim/stats")

    def requests(self, pool, since_ms=None):
        """{'total': n, 'now_ms': t, 'times': [arrival ms, ...]} (simulator's monotonic ms)."""
        return self.get("/_sim/requests", pool=pool, since=since_ms)

    def now_ms(self):
        return int(self.get("/_sim/time")["uptime_ms"])

    def ledger(self, pool, wallet):
        return self.get("/_sim/ledger", pool=pool, wallet=wallet)

    def advance(self, seconds):
        return self.get("/_sim/advance", seconds=seconds)

    def in_flight(self, pool):
        """Requests that arrived and have not been answered yet (held by latency faults)."""
        s = self.stats()[pool]
        return int(s["requests"]) - sum(int(v) for v in s["by_status"].values())

    def stop(self):
        self.exited_early = self.proc.poll() is not None
        if not self.exited_early:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _unregister(self.proc)
        self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode


# ================================================================================ engine


class Engine:
    """A running m2p-engine whose JSON log lines are collected by a reader thread."""

    def __init__(self, ctx, args, env, name, prefix=()):
        self.ctx = ctx
        self.args = args
        self.stderr_path = os.path.join(ctx.tmp, name + ".stderr")
        self.stdout_path = os.path.join(ctx.tmp, name + ".stdout")
        self._stderr = open(self.stderr_path, "wb")
        self._stdout_copy = open(self.stdout_path, "w", buffering=1)
        self.events = []
        self.other_lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(list(prefix) + [ctx.engine_bin] + list(args),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr,
                                     cwd=ctx.tmp, env=env)
        _register(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self._take(raw.decode("utf-8", "replace").rstrip("\n"))
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _take(self, line):
        """One line of the engine's stdout: kept (and copied to stdout_path). A subclass may
        count some lines instead (tests/soak/soak.py: a 30-minute run logs millions)."""
        self._stdout_copy.write(line + "\n")
        event = None
        try:
            event = json.loads(line)
        except ValueError:
            pass
        with self._cond:
            if isinstance(event, dict) and "event" in event:
                event["_raw"] = line
                try:
                    event["_ts"] = parse_timestamp(event["timestamp"])
                except (KeyError, ValueError):
                    event["_ts"] = None
                self.events.append(event)
            else:
                self.other_lines.append(line)
            self._cond.notify_all()

    # ---- reading the log

    def snapshot(self):
        with self._cond:
            return list(self.events)

    def count(self):
        with self._cond:
            return len(self.events)

    def named(self, name, since=0):
        with self._cond:
            return [e for e in self.events[since:] if e["event"] == name]

    def wait_for(self, predicate, timeout, what, since=0):
        """The first event (from index `since`) for which predicate(event) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            scanned = since
            while True:
                while scanned < len(self.events):
                    e = self.events[scanned]
                    scanned += 1
                    if predicate(e):
                        return e
                if self._eof:
                    fail("the engine exited (status %s) while waiting for %s"
                         % (self.proc.wait(), what))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s%s"
                         % (timeout, what, self.ctx.sim_notes()))
                self._cond.wait(min(left, 0.5))

    def wait_until(self, predicate, timeout, what):
        """Waits until predicate(events) over the whole log is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self.events)
                if value:
                    return value
                if self._eof:
                    fail("the engine exited (status %s) while waiting for %s"
                         % (self.proc.wait(), what))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s%s"
                         % (timeout, what, self.ctx.sim_notes()))
                self._cond.wait(min(left, 0.5))

    # ---- stopping

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("the engine did not exit within %.0f s" % timeout)
        self._reader.join(30)
        _unregister(self.proc)
        self._stderr.close()
        self._stdout_copy.close()
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends `sig` and returns the exit status once the process and its log are done."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def stderr_text(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def expect_clean_exit(self, rc, expected=0):
        check(rc == expected,
              "engine %s exited with status %s, expected %s (a sanitizer report, if any, is "
              "below)\n%s" % (" ".join(self.args[:1]), rc, expected,
                              "\n".join(self.stderr_text().splitlines()[-40:])))


# ================================================================================ context


class Context:
    def __init__(self, build_dir, name):
        self.build_dir = os.path.abspath(build_dir)
        self.name = name
        self.engine_bin = os.path.join(self.build_dir, "m2p-engine")
        self.sim_bin = os.path.join(self.build_dir, "tests", "sim", "m2p-sim")
        self.tmp = tempfile.mkdtemp(prefix="m2p-it-%s-" % name)
        self.sims = []
        self.engines = []
        for binary in (self.engine_bin, self.sim_bin):
            check(os.access(binary, os.X_OK), "%s is missing: build first" % binary)

    # ---- processes

    def start_sim(self, *args):
        sim = Sim(self, self.sim_bin, args)
        self.sims.append(sim)
        return sim

    def engine_env(self, settings=None):
        """A clean environment: PATH etc. plus `settings`; nothing else is inherited.
        MAX_AWARD_ADVC is off unless a test sets it: the simulator's zpool pays up to
        500 ADVC per payout and one poll may see several, which the default ceiling (1000)
        would hold for review (held_awards.py tests the limits). ADMIN_LISTEN is off. A setting given as None
        is left unset."""
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env["MAX_AWARD_ADVC"] = "0"
        # Many engines run at once: none takes the admin port unless the test asks
        # (admin_endpoint.py).
        env["ADMIN_LISTEN"] = "off"
        for k, v in (settings or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def default_args(self, pools_dir=None):
        return ["--pools", pools_dir or os.path.join(REPO, "pools"),
                "--scripts", os.path.join(REPO, "scripts")]

    def start_engine(self, args, settings=None, pools_dir=None, prefix=()):
        """Starts m2p-engine in the test's temporary directory (so no .env is read);
        `prefix`: a command that runs it (valgrind ...)."""
        name = "engine-%d" % len(self.engines)
        eng = Engine(self, list(args) + self.default_args(pools_dir),
                     self.engine_env(settings), name, prefix)
        self.engines.append(eng)
        return eng

    def run_engine(self, args, settings=None, pools_dir=None, timeout=60, scripts=True):
        """Runs m2p-engine to completion. Returns (status, events, stdout_text, stderr_text)."""
        argv = [self.engine_bin] + list(args)
        if scripts:
            argv += self.default_args(pools_dir)
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               cwd=self.tmp, env=self.engine_env(settings), timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("m2p-engine %s did not finish within %d s" % (" ".join(args), timeout))
        out = r.stdout.decode("utf-8", "replace")
        err = r.stderr.decode("utf-8", "replace")
        events = []
        for line in out.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if isinstance(e, dict) and "event" in e:
                e["_raw"] = line
                events.append(e)
        return r.returncode, events, out, err

    def sim_notes(self):
        return "".join(sim.exit_note() for sim in self.sims)

    # ---- files

    def write_json(self, name, value):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(value, f)
        return path

    def accounts(self, n, first_id=1, zpool=True, name="accounts.json"):
        """n players with an ADVC wallet and (optionally) a zpool BTC wallet; returns the path."""
        return self.write_json(name, make_players(n, first_id, zpool))

    def pools_dir(self, scripts):
        """A temporary pools directory from {file name: Lua source}."""
        d = os.path.join(self.tmp, "pools-%d" % len(os.listdir(self.tmp)))
        os.makedirs(d)
        for name, source in scripts.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(source)
        return d

    # ---- clean-up

    def close(self, failed):
        for eng in self.engines:
            if eng.proc.poll() is None:
                eng.proc.kill()
                eng.proc.wait()
            eng._reader.join(10)
            _unregister(eng.proc)
            for f in (eng._stderr, eng._stdout_copy):
                if not f.closed:
                    f.close()
        for sim in self.sims:
            rc = sim.stop()
            if rc not in (0, None) or sim.exited_early:
                print("     note: the simulator on port %s exited with status %s%s"
                      % (sim.port, rc, " before the test stopped it" if sim.exited_early else ""))
                for line in _tail(sim.stderr_path, 15):
                    print("     sim| " + line)
        if failed:
            for eng in self.engines:
                # The periodic summary says little about a failure: show the other events.
                lines = [l for l in _tail(eng.stdout_path, 400)
                         if '"polling_cycle_complete"' not in l][-15:]
                if lines:
                    print("     last engine log lines (%s):" % eng.stdout_path)
                    for line in lines:
                        print("     | " + line[:400])
                err = _tail(eng.stderr_path, 15)
                if err:
                    print("     engine stderr:")
                    for line in err:
                        print("     ! " + line[:400])
        if failed and os.environ.get("M2P_KEEP_TMP"):
            print("     kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ================================================================================ data


BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def base58check(version, payload):
    """version byte + payload + the first 4 bytes of SHA-256(SHA-256(...)), in base58."""
    raw = bytes([version]) + payload
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, digit = divmod(n, 58)
        out = BASE58[digit] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def bech32_p2wpkh(hrp, program):
    """BIP-173 witness v0 address: 5-bit groups of the program and a BCH checksum over the hrp."""
    data, acc, bits = [0], 0, 0
    for byte in program:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data + [0] * 6
    chk = 1
    for v in values:
        top, chk = chk >> 25, (chk & 0x1ffffff) << 5 ^ v
        for k, gen in enumerate((0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3)):
            chk ^= gen if (top >> k) & 1 else 0
    chk ^= 1
    return hrp + "1" + "".join(BECH32[d] for d in data + [(chk >> 5 * (5 - k)) & 31 for k in range(6)])


def advc_wallet(i):
    """A checksum-valid ADVC P2PKH address (version 23, "A..."), deterministic and unique per i."""
    return base58check(23, hashlib.sha256(b"m2p-test-advc-%d" % i).digest()[:20])


def btc_wallet(i):
    """A checksum-valid BTC bech32 P2WPKH address ("bc1q...", 42 characters), unique per i."""
    return bech32_p2wpkh("bc", hashlib.sha256(b"m2p-test-btc-%d" % i).digest()[:20])


def make_players(n, first_id=1, zpool=True):
    players = []
    for i in range(first_id, first_id + n):
        p = {"player_id": i, "username": "player%d" % i, "wallet": advc_wallet(i)}
        if zpool:
            p["wallets"] = {"zpool": btc_wallet(i)}
        players.append(p)
    return players


def poll_ends(events, pool=None, names=POLL_END_EVENTS):
    return [e for e in events if e["event"] in names and (pool is None or e.get("pool") == pool)]


def polls_per_account(events, pool, names=POLL_END_EVENTS):
    """{player_id: number of finished polls} for one pool."""
    counts = {}
    for e in poll_ends(events, pool, names):
        counts[e["player_id"]] = counts.get(e["player_id"], 0) + 1
    return counts


def run_window(events):
    """Seconds from engine_started to shutdown_requested, by the engine's own clock."""
    started = [e for e in events if e["event"] == "engine_started"]
    stopped = [e for e in events if e["event"] == "shutdown_requested"]
    check(started and stopped, "engine_started or shutdown_requested is missing from the log")
    return stopped[0]["_ts"] - started[0]["_ts"]


def check_cadence(events, pool, player_ids, interval, elapsed, names=POLL_END_EVENTS):
    """Every account of `pool` was polled once per interval over `elapsed` seconds: between
    floor(elapsed/interval) - 1 and ceil(elapsed/interval) + 1 times. Returns the counts."""
    import math
    low = math.floor(elapsed / interval) - 1
    high = math.ceil(elapsed / interval) + 1
    counts = polls_per_account(events, pool, names)
    note("%s: %.2f s at %s s, allowed %d..%d, polls per account %s"
         % (pool, elapsed, interval, low, high, sorted(counts.values())))
    missing = sorted(set(player_ids) - set(counts))
    check(not missing, "%s: players never polled: %s" % (pool, missing))
    bad = {p: n for p, n in counts.items() if not low <= n <= high}
    check(not bad,
          "%s: over %.2f s at a %s s interval every account should be polled %d..%d times; "
          "these were not: %s (all: %s)" % (pool, elapsed, interval, low, high, bad, counts))
    return counts


def shipped_pool(name, limits=None):
    """The shipped pools/<name>.lua, with its `limits = {...}` table replaced when given."""
    with open(os.path.join(REPO, "pools", name + ".lua")) as f:
        source = f.read()
    if limits is None:
        return source
    import re
    new, n = re.subn(r"limits\s*=\s*\{[^}]*\}", "limits = " + limits, source, count=1)
    check(n == 1, "pools/%s.lua has no `limits = {...}` table to replace" % name)
    return new


# ================================================================================ live scripts
#
# For tests that change scripts under a running engine (docs/scripting.md, "Live changes"):
# the engine gets its own copies of pools/ and scripts/, which the test edits.


def live_dirs(ctx, pools=None):
    """Copies of the repo's pools/ and scripts/ in the test's temporary directory; `pools`
    (names without .lua) limits which pool scripts are copied. Returns (pools_dir,
    scripts_dir)."""
    pools_dir = os.path.join(ctx.tmp, "live-pools")
    scripts_dir = os.path.join(ctx.tmp, "live-scripts")
    os.makedirs(pools_dir)
    for name in sorted(os.listdir(os.path.join(REPO, "pools"))):
        if name.endswith(".lua") and (pools is None or name[:-4] in pools):
            shutil.copy(os.path.join(REPO, "pools", name), pools_dir)
    shutil.copytree(os.path.join(REPO, "scripts"), scripts_dir)
    return pools_dir, scripts_dir


def start_engine_dirs(ctx, args, settings, pools_dir, scripts_dir):
    """Like Context.start_engine, with both script directories given."""
    name = "engine-%d" % len(ctx.engines)
    eng = Engine(ctx, list(args) + ["--pools", pools_dir, "--scripts", scripts_dir],
                 ctx.engine_env(settings), name)
    ctx.engines.append(eng)
    return eng


def read_text(path):
    with open(path) as f:
        return f.read()


def save_file(path, text, how="write"):
    """Saves `text` to `path` as an editor would: "write" rewrites the file in place
    (truncate, write, close); "rename" writes a hidden temporary file next to it and renames
    it over the file."""
    if how == "write":
        with open(path, "w") as f:
            f.write(text)
    elif how == "rename":
        d, base = os.path.split(path)
        tmp = os.path.join(d, "." + base + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, path)
    else:
        raise ValueError(how)


def replaced(text, old, new):
    """`text` with the single occurrence of `old` replaced by `new` (fails unless exactly
    one)."""
    n = text.count(old)
    check(n == 1, "expected exactly one %r in the script, found %d" % (old, n))
    return text.replace(old, new)


def decimal_field(event, field):
    """A number of a logged event (harness.Engine), read as an exact Decimal from its line."""
    return Decimal(str(json.loads(event["_raw"], parse_float=Decimal)[field]))


def sanitized_build(build_dir):
    """Whether build_dir is the ASan+UBSan build (M2P_SANITIZE=ON): RSS figures and
    valgrind mean nothing there."""
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            return "M2P_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def rss_kib(pid):
    """VmRSS of a running process, in KiB (Linux /proc)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS for pid %d" % pid)


def last_metrics(eng):
    """The `metrics` of the engine's latest polling_cycle_complete (or engine_stopped)."""
    for e in reversed(eng.snapshot()):
        if e["event"] in ("polling_cycle_complete", "engine_stopped") and "metrics" in e:
            return e["metrics"]
    return None


class LineProcess:
    """A process whose standard output is collected line by line (for the modes that print
    text: --script-test --watch, --probe)."""

    def __init__(self, ctx, argv, env, name):
        self.stderr_path = os.path.join(ctx.tmp, name + ".stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=ctx.tmp, env=env)
        _register(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def count(self):
        with self._cond:
            return len(self.lines)

    def wait_line(self, predicate, timeout, what, since=0):
        """The index of the first line (from `since`) for which predicate(line) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.lines):
                    if predicate(self.lines[i]):
                        return i
                    i += 1
                if self._eof:
                    fail("the process exited (status %s) while waiting for %s; last lines:\n%s"
                         % (self.proc.wait(), what, "\n".join(self.lines[-15:])))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s; last lines:\n%s"
                         % (timeout, what, "\n".join(self.lines[-15:])))
                self._cond.wait(min(left, 0.5))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(10)
        _unregister(self.proc)
        self._stderr.close()
        return rc


# ================================================================================ runner


def _on_signal(signum, frame):
    _kill_all()
    print("interrupted by signal %d" % signum)
    sys.exit(1)



# ---------------------------------------------------------------- a pool the test controls


# The pool script that reads PaidServer's answers (pool "testpool").
PAID_POOL_SCRIPT = r'''
-- A minimal pool for tests: GET <TESTPOOL_URL>/<wallet> -> {"wallet": ..., "paid": "..."}
return {
  name = "testpool",
  currency = "ADVC",
  request = function(wallet)
    return {url = m2p.env("TESTPOOL_URL", "http://127.0.0.1:9") .. "/" .. m2p.urlencode(wallet)}
  end,
  parse = function(response)
    local j = response.json
    if type(j) ~= "table" then return nil, "not a JSON object" end
    if j.wallet ~= response.wallet then return nil, "another wallet's answer" end
    local paid, err = m2p.num(j.paid)
    if paid == nil then return nil, "paid: " .. tostring(err) end
    return {paid = paid}
  end,
  limits = {concurrency = 4},
}
'''


class PaidServer:
    """A loopback HTTP pool answering GET .../<wallet> with {"wallet", "paid"} from a table the
    test sets (404 for a wallet it does not know), counting the requests per wallet and how
    often each (wallet, value) was served."""

    def __init__(self):
        import http.server
        import urllib.parse
        self.paid = {}
        self.requests = {}
        self.served = {}
        self.extra = {}  # wallet -> raw bytes of one more member ("note") of its answer
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                wallet = urllib.parse.unquote(self.path.rsplit("/", 1)[-1])
                with outer.lock:
                    outer.requests[wallet] = outer.requests.get(wallet, 0) + 1
                    value = outer.paid.get(wallet)
                    extra = outer.extra.get(wallet)
                    if value is not None:
                        outer.served[(wallet, value)] = outer.served.get((wallet, value), 0) + 1
                if value is None:
                    body, status = b'{"error": "unknown wallet"}', 404
                else:
                    body, status = json.dumps({"wallet": wallet, "paid": value}).encode(), 200
                    if extra is not None:
                        body = body[:-1] + b', "note": ' + extra + b'}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set(self, wallet, value):
        with self.lock:
            self.paid[wallet] = value

    def set_extra(self, wallet, raw):
        """raw: bytes of a JSON value (or not quite: invalid UTF-8...) added to the answer as
        "note"; None: none."""
        with self.lock:
            self.extra[wallet] = raw

    def requests_for(self, wallet):
        with self.lock:
            return self.requests.get(wallet, 0)

    def times_served(self, wallet, value):
        with self.lock:
            return self.served.get((wallet, value), 0)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def with_paid_server(fn):
    """A test fn(ctx, server) run with a PaidServer that is closed whatever happens."""
    def test(ctx):
        server = PaidServer()
        try:
            fn(ctx, server)
        finally:
            server.close()
    test.__name__ = fn.__name__
    return test


def main(namespace):
    """Runs every test_* function of the calling module, in definition order."""
    if len(sys.argv) != 2:
        print("usage: %s BUILD_DIR" % sys.argv[0])
        sys.exit(2)
    build_dir = sys.argv[1]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    only = os.environ.get("M2P_TEST")
    if only:
        tests = [(k, v) for k, v in tests if only in k]
    passed = failed = 0
    for name, fn in tests:
        started = time.monotonic()
        ctx = None
        ok = False
        try:
            ctx = Context(build_dir, name)
            fn(ctx)
            ok = True
            print("ok   %s (%.1f s)" % (name, time.monotonic() - started))
        except TestFailure as e:
            print("FAIL %s (%.1f s): %s" % (name, time.monotonic() - started, e))
        except Exception:
            print("FAIL %s (%.1f s): unexpected error" % (name, time.monotonic() - started))
            traceback.print_exc(file=sys.stdout)
        finally:
            if ctx is not None:
                try:
                    ctx.close(failed=not ok)
                except Exception:
                    traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
        if ok:
            passed += 1
        else:
            failed += 1
    _kill_all()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not tests else 0)
