"""Receivers for the notification tests, all on loopback: the official Socket.IO server
(sio_recorder.js), a webhook receiver that verifies signatures, and a LISTENing psql."""

import hashlib
import hmac
import json
import os
import re
import subprocess
import threading
import time
from decimal import Decimal

import harness
import pgserver

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "..", "..", "examples", "socketio-relay", "node_modules")


class SioServer:
    """sio_recorder.js: acks and records every mining_reward. stop() and start() again keep
    the port, so the engine reconnects to the same URL."""

    def __init__(self, ctx, token, port=0):
        harness.check(os.path.isdir(os.path.join(NODE_MODULES, "socket.io")),
                      "socket.io is not installed: run `npm ci` in examples/socketio-relay "
                      "(tests/run.sh does)")
        self.ctx, self.token, self.port = ctx, token, port
        self.received = []  # (ms, event) in arrival order, over every start
        self.lock = threading.Lock()
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ, TOKEN=self.token, PORT=str(self.port))
        self.log = open(os.path.join(self.ctx.tmp, "sio-%d.stderr" % time.monotonic_ns()), "wb")
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "sio_recorder.js")],
                                     stdout=subprocess.PIPE, stderr=self.log, env=env)
        harness._register(self.proc)
        first = json.loads(self.proc.stdout.readline() or "{}")
        harness.check("listening" in first, "sio_recorder.js did not start: %s" % first)
        self.port = first["listening"]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            try:
                rec = json.loads(line, parse_float=Decimal)
            except ValueError:
                continue
            if "event" in rec:
                with self.lock:
                    self.received.append((rec["received"], rec["event"]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def events(self):
        with self.lock:
            return list(self.received)

    def ids(self):
        return {e["event_id"] for _, e in self.events()}


def verify_signature(secret, headers, body):
    """(ok, why): X-M2P-Signature checked with `secret` (bytes) as docs/notifications.md says."""
    ts, sig = headers.get("X-M2P-Timestamp", ""), headers.get("X-M2P-Signature", "")
    if not (ts.isascii() and ts.isdigit()) or abs(time.time() - int(ts)) > 300:
        return False, "bad or old timestamp %r" % ts
    mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest("sha256=" + mac, sig):
        return False, "signature mismatch"
    return True, ""


class WebhookReceiver:
    """An HTTP receiver checking X-M2P-Signature with `secret` the way docs/notifications.md
    tells receivers to. `statuses` is a list of statuses answered to the first requests (then
    200); `delay` seconds are spent inside each request (to see overlapping deliveries)."""

    def __init__(self, secret, statuses=(), delay=0.0, fail_status=401):
        import http.server
        self.secret = secret.encode()
        self.statuses = list(statuses)
        self.delay = delay
        self.requests = []     # (event_id, body dict, verified, status answered)
        self.failures = []     # reasons a request did not verify
        self.active = {}       # event_id -> requests being answered now
        self.overlaps = []     # event_ids received twice at the same time
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok, why = outer.verify(self.headers, body)
                ev = self.headers.get("X-M2P-Event-Id", "")
                with outer.lock:
                    if outer.active.get(ev):
                        outer.overlaps.append(ev)
                    outer.active[ev] = outer.active.get(ev, 0) + 1
                time.sleep(outer.delay)
                with outer.lock:
                    outer.active[ev] -= 1
                    status = outer.statuses.pop(0) if outer.statuses else 200
                    if not ok:
                        outer.failures.append(why)
                        status = fail_status
                    try:
                        parsed = json.loads(body, parse_float=Decimal)
                    except ValueError:
                        parsed = None
                    outer.requests.append((ev, parsed, ok, status, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def verify(self, headers, body):
        return verify_signature(self.secret, headers, body)

    def delivered(self):
        """{event_id: body} of the requests answered 2xx with a valid signature."""
        with self.lock:
            return {ev: b for ev, b, ok, st, _ in self.requests if ok and 200 <= st < 300}

    def all_requests(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class PgListener:
    """psql LISTENing on a channel; notifications are collected as they arrive (psql prints
    them after each command, so it is fed a cheap one every 50 ms)."""

    PATTERN = re.compile(r'^Asynchronous notification "([^"]+)" with payload "(.*)" received '
                         r'from server process with PID \d+\.$')

    def __init__(self, gdb, channel):
        pg = gdb.pg
        argv = [pgserver._pg_bin("psql"), "-X", "-q", "-h", pg.dir, "-p", str(pg.port), "-U",
                "postgres", "-d", gdb.name]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        harness._register(self.proc)
        self.payloads = []
        self.lock = threading.Lock()
        self.proc.stdin.write('LISTEN "%s";\n' % channel)
        self.running = True
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self):
        while self.running:
            try:
                self.proc.stdin.write(";\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stdout:
            m = self.PATTERN.match(line.rstrip("\n"))
            if m:
                with self.lock:
                    self.payloads.append(m.group(2))

    def received(self):
        with self.lock:
            return list(self.payloads)

    def close(self):
        self.running = False
        self.proc.terminate()
        self.proc.wait(timeout=10)


def expected_events(gdb):
    """{event_id: expected event} from mining_events and players, the totals after each
    award computed from the player's awards in id order (the test's players start at 0)."""
    rows = gdb.sql("SELECT e.id, e.player_id, p.username, e.pool_name, e.advc_amount::text,"
                   " e.ap_awarded::text FROM mining_events e JOIN players p ON p.id = e.player_id"
                   " ORDER BY e.id")
    from decimal import Decimal
    totals = {}
    out = {}
    for eid, pid, name, pool, advc, ap in rows:
        t = totals.setdefault(pid, [Decimal(0), Decimal(0)])
        t[0] += Decimal(ap)
        t[1] += Decimal(advc)
        out[eid] = {"event_id": eid, "player_id": int(pid), "username": name, "pool": pool,
                    "advc_amount": Decimal(advc), "ap_awarded": Decimal(ap),
                    "total_ap": t[0], "total_advc_mined": t[1], "room": "player_" + pid}
    return out


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_event(got, want):
    """`got` (as received, JSON-decoded) carries exactly the fields of `want`."""
    from decimal import Decimal
    keys = {"event_id", "player_id", "username", "pool", "advc_amount", "ap_awarded",
            "total_ap", "total_advc_mined", "timestamp", "room"}
    harness.check(set(got) == keys, "event fields %s, expected %s" % (sorted(got), sorted(keys)))
    for k, v in want.items():
        g = got[k]
        same = Decimal(str(g)) == v if isinstance(v, Decimal) else g == v
        harness.check(same, "event %s: %s is %r, expected %r" % (want["event_id"], k, g, v))
    harness.check(TIMESTAMP.match(got["timestamp"]),
                  "timestamp %r is not ISO-8601 UTC with milliseconds" % got["timestamp"])


def first_arrival_order(arrivals):
    """{player_id: [event_id as int, ...]} in the order each event first arrived."""
    seen, order = set(), {}
    for ev in arrivals:
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        order.setdefault(ev["player_id"], []).append(int(ev["event_id"]))
    return order


def check_each_award_delivered(gdb, sinks):
    """Issue 12: `sinks` is {name: [event as received, ...]} (repeats included). Every award in
    mining_events arrived at every sink with its own fields, and nothing else arrived. A repeat
    with the same event_id is allowed: delivery is at least once, receivers drop repeats by
    event_id (docs/notifications.md). Returns {name: number of repeats}."""
    want = expected_events(gdb)
    repeats = {}
    for name, arrivals in sinks.items():
        got = {}
        for ev in arrivals:
            harness.check(isinstance(ev, dict) and ev.get("event_id") in want,
                          "%s received an event that is no award: %r" % (name, ev))
            check_event(ev, want[ev["event_id"]])  # a repeat is the same event
            got[ev["event_id"]] = got.get(ev["event_id"], 0) + 1
        lost = sorted(set(want) - set(got), key=int)
        harness.check(not lost, "%s: %d of %d awards never delivered (lost): %s"
                      % (name, len(lost), len(want), lost[:10]))
        repeats[name] = sum(n - 1 for n in got.values())
    return repeats


class FaultyWebhook:
    """A raw TCP webhook receiver for issue 12's notifier faults, one request per connection.
    While `faults` is not empty, each request gets the next fault of the list (cycling):
      reset    the connection is reset once the request is read (receiver crashed)
      garbage  non-HTTP bytes, then close
      cut200   "HTTP/1.1 200 OK" and half a header line, then close: no complete answer
      500      a complete HTTP 500
      slow     a complete 200 after `slow_s` seconds (longer than NOTIFY_TIMEOUT)
    With `faults` empty every request is answered a complete 200. listen() / close() keep
    the port, so the receiver can be "down" (connection refused) and come back on the URL."""

    def __init__(self, secret, slow_s=2.5):
        import socket
        self.secret = secret.encode()
        self.slow_s = slow_s
        self.faults = []
        self.served = []     # (answer, event_id, body dict or None, signature ok)
        self.lock = threading.Lock()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.sock = None

    def listen(self, faults=()):
        import socket
        self.faults = list(faults)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        threading.Thread(target=self._accept, args=(self.sock,), daemon=True).start()

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _accept(self, sock):
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn):
        import email.parser
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        headers = email.parser.BytesParser().parsebytes(head.split(b"\r\n", 1)[1] + b"\r\n\r\n")
        n = int(headers.get("Content-Length", "0"))
        while len(body) < n:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            body += chunk
        return headers, body

    def _serve(self, conn):
        import socket
        import struct
        try:
            conn.settimeout(10)
            headers, body = self._read_request(conn)
            if headers is None:
                return
            ok, _ = verify_signature(self.secret, headers, body)
            try:
                parsed = json.loads(body, parse_float=Decimal)
            except ValueError:
                parsed = None
            with self.lock:
                answer = self.faults.pop(0) if self.faults else "ok"
                if answer != "ok":
                    self.faults.append(answer)
                self.served.append((answer, headers.get("X-M2P-Event-Id", ""), parsed, ok))
            complete = b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            if answer == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif answer == "garbage":
                conn.sendall(b"\x00\xff\xfeSSH-2.0-OpenSSH_9.2\r\n\x1b[2J not http\r\n\r\n")
            elif answer == "cut200":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
            elif answer == "500":
                conn.sendall(complete % b"500 Internal Server Error")
            elif answer == "slow":
                time.sleep(self.slow_s)
                conn.sendall(complete % b"200 OK")
            else:
                conn.sendall(complete % b"200 OK")
        except OSError:
            pass
        finally:
            conn.close()

    def answers(self):
        with self.lock:
            return list(self.served)

    def confirmed(self):
        """The bodies of the requests answered a complete 200 with a valid signature."""
        return [b for a, _, b, ok in self.answers() if a == "ok" and ok]


def pending_deliveries(gdb, limit=8):
    """What is still undelivered, for a failure message: (sink, event, attempts, next
    attempt in s, leased, last error) of the oldest rows."""
    return gdb.sql("SELECT d.sink, o.mining_event_id, d.attempts,"
                   " round(extract(epoch FROM d.next_attempt - now())::numeric, 1),"
                   " d.lease_until IS NOT NULL, coalesce(d.last_error, '')"
                   " FROM m2p_deliveries d JOIN m2p_outbox o ON o.id = d.outbox_id"
                   " WHERE d.delivered_at IS NULL AND d.expired_at IS NULL"
                   " ORDER BY o.id LIMIT %d" % limit)
