"""The Socket.IO relay example (examples/socketio-relay/server.js) and Socket.IO clients
(relay_client.js, the official socket.io-client) for the relay tests.

    relay = Relay(ctx, token)                 # node server.js on a free loopback port
    alice = Client(ctx, relay.url, join=1)    # a player's browser in the room player_1
    eng = Client(ctx, relay.url, token=token, polling=True)   # the engine's side
    eng.emit(1, {"event_id": "7", "player_id": 1, ...})
    eng.wait({"ack": 1}); alice.wait_reward("7")

Every process is stopped by close_all(ctx) (call it in a finally), whatever happened.
"""

import json
import os
import secrets
import subprocess
import threading
import time

import harness
from harness import check, fail

RELAY_DIR = os.path.join(harness.REPO, "examples", "socketio-relay")
CLIENT_JS = os.path.join(harness.REPO, "tests", "integration", "relay_client.js")


def require_node():
    """Fails with what to run when Node.js or the relay's npm packages are missing."""
    import shutil
    check(shutil.which("node"), "node is missing: run tests/install-deps.sh test")
    for pkg in ("socket.io", "socket.io-client"):
        check(os.path.isfile(os.path.join(RELAY_DIR, "node_modules", pkg, "package.json")),
              "examples/socketio-relay/node_modules/%s is missing: run tests/install-deps.sh "
              "test (it runs npm ci there)" % pkg)


def new_token():
    return "relay-test-" + secrets.token_hex(16)


class _LineProc:
    """A process whose stdout lines are collected by a reader thread."""

    def __init__(self, ctx, argv, env, name, parse_json):
        self.name = name
        self.parse_json = parse_json
        self.stderr_path = os.path.join(ctx.tmp, name + ".stderr")
        self._stderr = open(self.stderr_path, "wb")
        self.lines = []
        self._cond = threading.Condition()
        self._eof = False
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, cwd=ctx.tmp, env=env)
        harness._register(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ctx.relay_procs = getattr(ctx, "relay_procs", []) + [self]

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.parse_json:
                try:
                    line = json.loads(line)
                except ValueError:
                    line = {"unparsed": line}
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.lines)

    def wait_line(self, predicate, what, timeout=30):
        """The first line for which predicate(line) is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                if self._eof:
                    fail("%s exited (status %s) while waiting for %s; its output: %s; "
                         "stderr: %s" % (self.name, self.proc.wait(), what, self.lines[-10:],
                                         harness._tail(self.stderr_path, 10)))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s (%s printed %s)"
                         % (timeout, what, self.name, self.lines[-10:]))
                self._cond.wait(min(left, 0.5))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        harness._unregister(self.proc)
        self._stderr.close()
        return self.proc.returncode


def _node_env(extra=None):
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(extra or {})
    return env


class Relay(_LineProc):
    """examples/socketio-relay/server.js with RELAY_ENGINE_TOKEN=token on a free port."""

    def __init__(self, ctx, token, name="relay"):
        super().__init__(ctx, ["node", os.path.join(RELAY_DIR, "server.js")],
                         _node_env({"RELAY_ENGINE_TOKEN": token, "PORT": "0",
                                    "HOST": "127.0.0.1"}), name, parse_json=False)
        line = self.wait_line(lambda l: "listening on" in l, "the relay to listen")
        self.url = line.split("listening on ", 1)[1].rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def wait_relayed(self, event_ids, timeout=30):
        """Waits until the relay logged each of event_ids: its log is read by another thread,
        so a client may see an event before the test sees the relay's line for it."""
        want = set(event_ids)
        harness.wait_until(lambda: want <= set(self.relayed()), timeout,
                           "the relay's log lines for %d events" % len(want))

    def relayed(self):
        """{event_id: [room, ...]} from the relay's log lines."""
        out = {}
        for line in self.snapshot():
            if line.startswith("relay: mining_reward event_id="):
                event_id = line.split("event_id=", 1)[1].split(" ", 1)[0]
                room = line.split("-> ", 1)[1].split(" ", 1)[0]
                out.setdefault(event_id, []).append(room)
        return out


class Client(_LineProc):
    """relay_client.js: a player (join=ID) or the engine's side (token=...)."""

    def __init__(self, ctx, url, token=None, join=None, polling=False, name=None):
        argv = ["node", CLIENT_JS, url]
        if token is not None:
            argv += ["--token", token]
        if join is not None:
            argv += ["--join", str(join)]
        if polling:
            argv.append("--polling")
        name = name or ("player-%s" % join if join is not None else "engine-client")
        super().__init__(ctx, argv, _node_env(), name, parse_json=True)
        self.join = join

    def wait_ready(self):
        """Waits until connected (and joined, for a player); fails on a connect_error."""
        line = self.wait_line(lambda l: "connect_error" in l or
                              ("joined" if self.join is not None else "connected") in l,
                              "%s to connect" % self.name)
        check("connect_error" not in line,
              "%s was refused: %s" % (self.name, line.get("connect_error")))
        return self

    def emit(self, seq, data):
        self.proc.stdin.write((json.dumps({"seq": seq, "emit": data}) + "\n").encode())
        self.proc.stdin.flush()

    def wait_ack(self, seq):
        return self.wait_line(lambda l: l.get("ack") == seq, "the ack of emit %s" % seq)

    def acks(self):
        return [l["ack"] for l in self.snapshot() if "ack" in l]

    def rewards(self):
        return [l["reward"] for l in self.snapshot() if "reward" in l]

    def wait_reward(self, event_id, timeout=30):
        return self.wait_line(lambda l: isinstance(l.get("reward"), dict) and
                              l["reward"].get("event_id") == event_id,
                              "%s to receive event %s" % (self.name, event_id), timeout)


def close_all(ctx):
    for p in getattr(ctx, "relay_procs", []):
        p.stop()
    ctx.relay_procs = []
