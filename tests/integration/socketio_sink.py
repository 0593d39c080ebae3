"""Issue 9, Socket.IO: the Socket.IO sink against the real socket.io 4.x server from npm.

tests/notify/sio_driver delivers events through the sink as the outbox would (only while
the sink is ready; with --redeliver an event that ended in "retry" is delivered again) and
prints each outcome. tests/integration/socketio_server.js is the server: the official
socket.io package in several modes, and a raw HTTP server for garbage and cut bodies.

Checked: every event acked exactly once per ack id with its payload byte for byte, in a
named namespace and in "/", with pongs answered; POST batches kept under the server's
maxPayload; payloads that are not exactly one JSON object refused; a server-side
disconnect fails the in-flight events (oldest first) with "retry" and the sink reconnects; an ack timeout is a retry; a refused auth is logged
as socketio_connect_refused and retried slowly; garbage, bodies closed mid-way and
"Session ID unknown" give logged reconnects and a clean exit (run it on an ASan build too);
a close packet and a server that stops pinging end the session with their reason; freeing
the sink (also from inside a done callback) ends the in-flight events with "shutting
down"; a websocket-only server fails with its HTTP 400 reason; and the auth secret never
appears in anything the engine side prints, even when the server quotes it back.
"""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import harness
from harness import check, fail

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(harness.REPO, "examples", "socketio-relay", "node_modules")
TOKEN = "sio-s3cret-\u00e9-token-9f2c"
AUTH = json.dumps({"token": TOKEN, "engine": "test"})
NAMESPACE = "/game"


class Lines:
    """A process whose stdout (and optionally stderr) lines are collected by threads."""

    def __init__(self, ctx, argv, env, name, stdin=False):
        self.name = name
        self.stderr_path = os.path.join(ctx.tmp, name + ".stderr")
        self._cond = threading.Condition()
        self.out, self.err = [], []
        self._eof = 0
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=ctx.tmp, env=env)
        harness._register(self.proc)
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, sink), daemon=True).start()

    def _read(self, stream, sink):
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                sink.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof += 1
            self._cond.notify_all()

    def records(self, which="out"):
        with self._cond:
            lines = list(self.out if which == "out" else self.err)
        result = []
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                result.append(value)
        return result

    def wait(self, predicate, timeout, what, which="out"):
        """Waits until predicate(records) is truthy and returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.records(which))
            if value:
                return value
            with self._cond:
                if self._eof == 2:
                    fail("%s exited (status %s) while waiting for %s; stderr:\n%s"
                         % (self.name, self.proc.wait(), what, "\n".join(self.err[-20:])))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("timed out after %.0f s waiting for %s; last lines:\n%s\n%s"
                         % (timeout, what, "\n".join(self.out[-10:]),
                            "\n".join(self.err[-10:])))
                self._cond.wait(min(left, 0.2))

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def finish(self, timeout=60):
        """Closes stdin (the driver's "quit") and returns the exit status."""
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("%s did not exit within %.0f s" % (self.name, timeout))
        deadline = time.monotonic() + 30
        with self._cond:
            while self._eof < 2 and time.monotonic() < deadline:
                self._cond.wait(0.2)
        harness._unregister(self.proc)
        return rc

    def text(self):
        with self._cond:
            return "\n".join(self.out + self.err)


def start_server(ctx, mode, namespace=NAMESPACE):
    check(shutil.which("node"), "node is not installed")
    check(os.path.isdir(os.path.join(NODE_MODULES, "socket.io")),
          "socket.io is not installed: run `npm ci` in examples/socketio-relay")
    env = dict(os.environ, SIO_TOKEN=TOKEN, SIO_NAMESPACE=namespace)
    server = Lines(ctx, ["node", os.path.join(HERE, "socketio_server.js"), mode], env,
                   "server-" + mode.replace(":", "-"))
    first = server.wait(lambda rs: [r for r in rs if "listening" in r], 30, "the server")[0]
    server.url = "http://127.0.0.1:%d" % first["listening"]
    return server


def start_driver(ctx, url, *args, auth=AUTH, namespace=NAMESPACE):
    binary = os.path.join(ctx.build_dir, "tests", "sio_driver")
    check(os.access(binary, os.X_OK), "%s is missing: build first" % binary)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "ASAN_OPTIONS",
                                                        "LSAN_OPTIONS", "UBSAN_OPTIONS")}
    env["SIO_DRIVER_AUTH"] = auth
    return Lines(ctx, [binary, url, "--namespace", namespace] + list(args), env, "driver",
                 stdin=True)


def payload(i):
    # Non-ASCII, escapes and nesting: the server must get exactly these bytes.
    return json.dumps({"event_id": str(i), "player_id": 100 + i % 3,
                       "username": "pl\u00e9yer \"%d\" \\ </script>" % i,
                       "advc_amount": 5.12345678, "nested": {"a": [1, 2, {"b": None}]}},
                      ensure_ascii=(i % 2 == 0))


def outcomes(records, kind=None):
    return [r for r in records if "outcome" in r and (kind is None or r["outcome"] == kind)]


def logs(driver, event):
    return [r for r in driver.records("err") if r.get("event") == event]


def check_clean_exit(driver, rc):
    check(rc == 0, "sio_driver exited with status %s; stderr:\n%s"
          % (rc, "\n".join(driver.err[-40:])))
    check("ERROR: AddressSanitizer" not in driver.text() and "runtime error" not in driver.text(),
          "sanitizer report:\n%s" % "\n".join(driver.err[-40:]))


def check_no_secret(driver):
    text = driver.text()
    for secret in (TOKEN, AUTH, json.dumps(TOKEN)[1:-1]):
        check(secret not in text, "the auth secret appears in the driver's output")


def server_events(server):
    return [r["event"] for r in server.records() if "event" in r]


# ================================================================================ tests


def test_every_event_acked_once(ctx):
    server = start_server(ctx, "ack")
    driver = start_driver(ctx, server.url)
    driver.wait(lambda rs: [r for r in rs if r.get("ready")], 30, "the sink to be ready")
    n = 60
    for i in range(n):
        driver.send("send %d %s" % (i, payload(i)))
    done = driver.wait(lambda rs: len(outcomes(rs)) >= n and outcomes(rs), 60,
                       "%d outcomes" % n)
    check(all(o["outcome"] == "delivered" for o in done),
          "not all delivered: %s" % [o for o in done if o["outcome"] != "delivered"][:3])
    check(sorted(int(o["event_id"]) for o in done) == list(range(n)),
          "each event delivered exactly once")
    # Pongs are answered (pingInterval is 200 ms): the server saw some and kept us.
    server.wait(lambda rs: [r for r in rs if r.get("pong")], 30, "a pong")
    got = server.wait(lambda rs: len(server_events(server)) >= n and server_events(server),
                      30, "the server's record of %d events" % n)
    ack_ids = [e["ack_id"] for e in got]
    check(len(got) == n, "the server got %d events, expected %d" % (len(got), n))
    check(None not in ack_ids and len(set(ack_ids)) == n, "ack ids unique: %s" % ack_ids)
    by_id = {json.loads(e["payload"])["event_id"]: e["payload"] for e in got}
    for i in range(n):
        check(by_id.get(str(i)) == payload(i),
              "payload %d altered: %r != %r" % (i, by_id.get(str(i)), payload(i)))
    # stdout and stderr are read by two threads: the outcome can be seen before the log line.
    driver.wait(lambda rs: logs(driver, "socketio_connected"), 30, "the socketio_connected log",
                which="err")
    connected = [r for r in server.records() if "connect" in r]
    check(connected and connected[0]["connect"]["namespace"] == NAMESPACE, "namespace")
    rc = driver.finish()
    check_clean_exit(driver, rc)
    check_no_secret(driver)


def test_batches_respect_max_payload(ctx):
    # 30 events of 60 KB are 1.8 MB, over the server's maxPayload (1 MB): they must go in
    # several POSTs, or the server refuses the body and ends the session.
    server = start_server(ctx, "ack")
    driver = start_driver(ctx, server.url)
    n = 30
    for i in range(n):
        driver.send("send %d %s" % (i, json.dumps({"event_id": str(i), "pad": "x" * 60000})))
    driver.wait(lambda rs: len(outcomes(rs)) == n, 60, "%d outcomes" % n)
    check(len(outcomes(driver.records(), "delivered")) == n, "all delivered: %s"
          % [o for o in outcomes(driver.records()) if o["outcome"] != "delivered"][:2])
    check(not logs(driver, "socketio_disconnected"), "no session lost")
    check_clean_exit(driver, driver.finish())


def test_default_namespace_and_ws_url(ctx):
    # Namespace "/" has no prefix in packets; ws:// is polled as http://.
    server = start_server(ctx, "ack", namespace="/")
    driver = start_driver(ctx, server.url.replace("http://", "ws://"), namespace="/")
    for i in range(3):
        driver.send("send %d %s" % (i, payload(i)))
    driver.wait(lambda rs: len(outcomes(rs, "delivered")) == 3, 30, "three delivered")
    got = server.wait(lambda rs: len(server_events(server)) >= 3 and server_events(server),
                      30, "the server's record of 3 events")
    check(sorted(e["ack_id"] for e in got) == [1, 2, 3], "ack ids: %s" % got)
    connected = driver.wait(lambda rs: logs(driver, "socketio_connected"), 30,
                            "the socketio_connected log", which="err")
    check(connected[0]["url"].startswith("http://"), "ws -> http")
    check_clean_exit(driver, driver.finish())


def test_free_inside_done_callback(ctx):
    server = start_server(ctx, "ack")
    driver = start_driver(ctx, server.url, "--quit-on-outcome")
    for i in range(3):
        driver.send("send %d %s" % (i, payload(i)))
    driver.wait(lambda rs: len(outcomes(rs)) >= 3, 30, "three outcomes, then the exit")
    rc = driver.finish()
    check_clean_exit(driver, rc)
    got = outcomes(driver.records())
    check(sorted(o["event_id"] for o in got) == ["0", "1", "2"],
          "each event ends exactly once: %s" % got)


def test_bad_payload_and_auth_refused(ctx):
    server = start_server(ctx, "ack")
    driver = start_driver(ctx, server.url)
    driver.wait(lambda rs: [r for r in rs if r.get("ready")], 30, "the sink to be ready")
    # An object followed by more text would smuggle a second argument into the packet.
    for i, bad in enumerate(['{"a":1}],["x"', '[1]', '{"a":\x1e1}', '{"a":']):
        driver.send("send bad%d %s" % (i, bad))
    driver.send("send 9 %s" % payload(9))
    driver.wait(lambda rs: len(outcomes(rs)) == 5, 30, "five outcomes")
    got = {o["event_id"]: o for o in outcomes(driver.records())}
    for i in range(4):
        check(got["bad%d" % i]["outcome"] == "retry", "bad payload %d: %s" % (i, got))
    check(got["bad0"]["error"] == "payload is not exactly one JSON object", "%s" % got["bad0"])
    check("0x1e" in got["bad2"]["error"], "the record separator: %s" % got["bad2"])
    check(got["9"]["outcome"] == "delivered", "the good one is delivered: %s" % got["9"])
    server.wait(lambda rs: server_events(server), 30, "the good event at the server")
    check(len(server_events(server)) == 1, "only the good event reached the server")
    check_clean_exit(driver, driver.finish())

    # Auth with text after the object: refused at start, without quoting it.
    bad_auth = AUTH + " trailing"
    driver = start_driver(ctx, server.url, auth=bad_auth)
    rc = driver.finish()
    check(rc == 1, "exit status %s for a bad auth" % rc)
    invalid = logs(driver, "socketio_config_invalid")
    check(invalid and "SOCKETIO_AUTH" in invalid[0]["message"], "logged: %s" % invalid)
    check_no_secret(driver)


def test_server_disconnect_then_reconnect(ctx):
    server = start_server(ctx, "kick:5")
    driver = start_driver(ctx, server.url, "--redeliver", "--reconnect-min", "0.05",
                          "--reconnect-max", "0.2")
    n = 30
    for i in range(n):
        driver.send("send %d %s" % (i, payload(i)))
    driver.wait(lambda rs: len({o["event_id"] for o in outcomes(rs, "delivered")}) == n, 60,
                "every event delivered after the kick")
    driver.wait(lambda rs: len(logs(driver, "socketio_connected")) >= 2, 30, "a reconnect",
                which="err")
    delivered = [o["event_id"] for o in outcomes(driver.records(), "delivered")]
    check(len(delivered) == n, "an event was reported delivered twice: %s" % delivered)
    gone = logs(driver, "socketio_disconnected")
    harness.note("kick reason: %s" % gone[:1])
    check(gone and "disconnected the namespace" in gone[0]["reason"] or
          gone and "closed the session" in gone[0]["reason"],
          "socketio_disconnected with the reason: %s" % gone)
    check(len(outcomes(driver.records(), "retry")) >= 1, "the kick failed events in flight")
    ready = [r["ready"] for r in driver.records() if "ready" in r]
    check(ready[:3] == [True, False, True], "ready true, false, true: %s" % ready)
    retried = outcomes(driver.records(), "retry")
    check(all(r["error"].startswith("disconnected: ") for r in retried),
          "in-flight events fail with the disconnect: %s" % retried[:3])
    retried_ids = [int(r["event_id"]) for r in retried]
    check(retried_ids == sorted(retried_ids), "failed oldest first: %s" % retried_ids)
    ack_ids = [e["ack_id"] for e in server_events(server)]
    check(len(set(ack_ids)) == len(ack_ids), "ack ids stay unique across sessions")
    check_clean_exit(driver, driver.finish())
    check_no_secret(driver)


def test_ack_timeout_is_a_retry(ctx):
    server = start_server(ctx, "noack-first")
    driver = start_driver(ctx, server.url, "--redeliver", "--ack-timeout", "0.5")
    driver.send("send 1 %s" % payload(1))
    driver.wait(lambda rs: outcomes(rs, "delivered"), 30, "the retried event delivered")
    first = outcomes(driver.records())[0]
    check(first["outcome"] == "retry" and first["error"] == "ack timeout after 500 ms",
          "first outcome: %s" % first)
    server.wait(lambda rs: len(server_events(server)) == 2, 30, "the event twice at the server")
    check_clean_exit(driver, driver.finish())


def test_refused_auth(ctx):
    server = start_server(ctx, "refuse")
    driver = start_driver(ctx, server.url)
    refused = driver.wait(lambda rs: logs(driver, "socketio_connect_refused"), 30,
                          "socketio_connect_refused", which="err")[0]
    check(refused["level"] == "error", "logged at error: %s" % refused)
    check("bad token" in refused["message"], "the server's message: %s" % refused)
    check("[redacted]" in refused["message"], "the quoted token is redacted: %s" % refused)
    check(refused["retry_in_s"] >= 30, "slow retry: %s" % refused)
    driver.send("send 1 %s" % payload(1))   # stays waiting: the sink is not ready
    check(not [r for r in driver.records() if r.get("ready")], "never ready")
    check(len(logs(driver, "socketio_connect_refused")) == 1, "no fast retry")
    check_clean_exit(driver, driver.finish())
    check_no_secret(driver)


def test_refused_auth_retried(ctx):
    server = start_server(ctx, "refuse")
    driver = start_driver(ctx, server.url, "--refused-retry", "0.2")
    driver.wait(lambda rs: len(logs(driver, "socketio_connect_refused")) >= 3, 30,
                "three refusals", which="err")
    # The server's own record of each refusal is read by another thread: wait for it too.
    harness.wait_until(lambda: len([r for r in server.records() if r.get("refused")]) >= 3, 30,
                       "the server's record of three refused CONNECTs")
    check_clean_exit(driver, driver.finish())
    check_no_secret(driver)


def hostile(ctx, mode, expect):
    server = start_server(ctx, mode)
    driver = start_driver(ctx, server.url, "--redeliver", "--reconnect-min", "0.02",
                          "--reconnect-max", "0.1")
    for i in range(5):
        driver.send("send %d %s" % (i, payload(i)))

    def reasons(rs):
        lost = [r for r in rs if r.get("event") in ("socketio_connect_failed",
                                                    "socketio_disconnected")]
        return lost if len(lost) >= 8 else None

    lost = driver.wait(reasons, 60, "eight logged reconnects", which="err")
    for r in lost:
        check(r["level"] == "warning" and r["reason"] and r["retry_in_s"] > 0,
              "a reconnect log line: %s" % r)
    text = " | ".join(r["reason"] for r in lost)
    for e in expect:
        check(e in text, "expected %r among the reasons: %s" % (e, text))
    rc = driver.finish()
    check_clean_exit(driver, rc)
    check(not outcomes(driver.records(), "delivered"), "nothing counts as delivered")
    check_no_secret(driver)
    return text


def test_garbage(ctx):
    text = hostile(ctx, "garbage", ["malformed Engine.IO payload", "malformed Socket.IO packet",
                                    "the server closed the session"])
    harness.note("garbage reasons: " + text[:300])


def test_closed_mid_body(ctx):
    text = hostile(ctx, "midbody", ["handshake: ", "poll: "])
    harness.note("mid-body reasons: " + text[:300])


def test_session_unknown(ctx):
    hostile(ctx, "unknown-sid", ["poll: HTTP 400 (Session ID unknown)"])


def test_no_ping(ctx):
    hostile(ctx, "silent", ["no ping from the server within 400 ms"])


def test_websocket_only_server(ctx):
    # Documented as not supported: the failure must at least say what the server answered.
    server = start_server(ctx, "websocket-only")
    driver = start_driver(ctx, server.url, "--reconnect-min", "0.02", "--reconnect-max", "0.05")
    failed = driver.wait(lambda rs: logs(driver, "socketio_connect_failed"), 30,
                         "socketio_connect_failed", which="err")[0]
    check(failed["reason"] == "handshake: HTTP 400 (Transport unknown)", "reason: %s" % failed)
    check_clean_exit(driver, driver.finish())


def test_no_server(ctx):
    # Nothing listens there: connection refused, logged, retried.
    server = start_server(ctx, "ack")
    url = server.url
    server.proc.terminate()
    server.proc.wait()
    driver = start_driver(ctx, url, "--reconnect-min", "0.02", "--reconnect-max", "0.05")
    driver.wait(lambda rs: len(logs(driver, "socketio_connect_failed")) >= 3, 30,
                "three failed connects", which="err")
    check_clean_exit(driver, driver.finish())


def test_free_fails_in_flight(ctx):
    server = start_server(ctx, "noack")
    driver = start_driver(ctx, server.url)
    for i in range(3):
        driver.send("send %d %s" % (i, payload(i)))
    server.wait(lambda rs: len([r for r in rs if "event" in r]) == 3, 30, "three events")
    rc = driver.finish()
    check_clean_exit(driver, rc)
    got = outcomes(driver.records())
    check(len(got) == 3 and all(o["outcome"] == "retry" and o["error"] == "shutting down"
                                for o in got), "shutting down: %s" % got)


harness.main(globals())
