"""Issue 9, webhooks: the webhook sink against real HTTP receivers on loopback.

tests/notify/webhook_driver delivers events through the sink exactly as the outbox would
(one deliver() per attempt) and prints each outcome. The receivers are a Python
http.server that verifies signatures with the Python example of docs/notifications.md, and
a Node server that is the Node example of the same section, run as documented. So a test
fails if the engine's requests or the documented examples are wrong.

Checked: headers and body exactly, signatures (right secret verifies, a wrong one is a
verification failure at the receiver), 500 then 200 -> retry then delivered, 410 -> gone
and the sink stops (one webhook_gone log line), 3xx not followed, timeouts, parallel
deliveries, and that neither the secret nor the URL's userinfo or query is ever printed.
"""

import base64
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading

import harness
from harness import check, fail

SECRET = "whsec-\u0416-test-secret-1"   # non-ASCII: the key is the setting's UTF-8 bytes
URL_SECRETS = ("pw-urlsecret", "tok-urlsecret")
PAYLOAD = ('{"event_id":"42","player_id":7,"username":"pl\\u00e9yer \\"x\\" \u00e9",'
           '"pool":"cpu-pool","advc_amount":5.5,"ap_awarded":550}').encode("utf-8")


# ---------------------------------------------------------------- documented examples

def docs_section():
    text = harness.read_text(os.path.join(harness.REPO, "docs", "notifications.md"))
    m = re.search(r"^## Webhooks\n(.*?)(?=^## |^<!-- SECTION|\Z)", text, re.S | re.M)
    check(m, "docs/notifications.md has no '## Webhooks' section")
    return m.group(1)


def doc_block(lang):
    m = re.search(r"^```%s\n(.*?)^```" % lang, docs_section(), re.S | re.M)
    check(m, "the webhooks section has no ```%s example" % lang)
    return m.group(1)


def documented_python_verify():
    namespace = {}
    exec(compile(doc_block("python"), "docs/notifications.md (python)", "exec"), namespace)
    return namespace["verify"]


# ---------------------------------------------------------------- the Python receiver

class Receiver:
    """A loopback HTTP server. `answers`: statuses for the next requests (then 200).
    `secret`: verify each request with the documented Python example and answer 401 when
    it fails; None = do not verify. `hang`: never answer (until close)."""

    def __init__(self, answers=(), secret=None, hang=False, answer_body=b""):
        self.answers = list(answers)
        self.secret = secret
        self.hang = hang
        self.answer_body = answer_body
        self.requests = []
        self.lock = threading.Lock()
        self.released = threading.Event()
        verify = documented_python_verify()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                verified = (verify(receiver.secret, self.headers, body)
                            if receiver.secret is not None else None)
                with receiver.lock:
                    receiver.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": list(self.headers.items()), "body": body,
                        "verified": verified})
                    status = receiver.answers.pop(0) if receiver.answers else 200
                if receiver.hang:
                    receiver.released.wait(60)
                    return
                if verified is False:
                    status = 401
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(receiver.answer_body)))
                self.end_headers()
                self.wfile.write(receiver.answer_body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hooks/m2p"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


def with_receiver(**kwargs):
    def wrap(fn):
        def test(ctx):
            r = Receiver(**kwargs)
            try:
                fn(ctx, r)
            finally:
                r.close()
        test.__name__ = fn.__name__
        return test
    return wrap


# ---------------------------------------------------------------- the driver

def run_driver(ctx, url, events, timeout_s=10, parallel=False, secret=SECRET):
    """events: [(event_id, payload bytes)]. Returns (sink name, outcomes, stderr log records).
    Fails if the secret or a secret part of a URL appears in any output."""
    binary = os.path.join(ctx.build_dir, "tests", "notify", "webhook_driver")
    check(os.access(binary, os.X_OK), "%s is missing: build first" % binary)
    args = [binary, url, str(timeout_s)] + (["--parallel"] if parallel else [])
    for i, (event_id, payload) in enumerate(events):
        path = os.path.join(ctx.tmp, "payload-%d.json" % i)
        with open(path, "wb") as f:
            f.write(payload)
        args.append("%s=%s" % (event_id, path))
    try:
        r = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, cwd=ctx.tmp,
                           env=ctx.engine_env({"WEBHOOK_SECRET": secret}), timeout=120)
    except subprocess.TimeoutExpired:
        fail("webhook_driver did not finish within 120 s")
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    check(r.returncode == 0, "webhook_driver exited with %d:\n%s%s" % (r.returncode, out, err))
    for s in (SECRET,) + URL_SECRETS:
        check(s not in out and s not in err, "%r appears in the driver's output:\n%s%s"
              % (s, out, err))
    lines = [json.loads(l) for l in out.splitlines()]
    logs = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    return lines[0]["name"], lines[1:], logs


def header_map(request):
    """{lower-case name: value}; fails on a header sent twice."""
    names = [k.lower() for k, _ in request["headers"]]
    check(len(names) == len(set(names)), "a header was sent twice: %s" % request["headers"])
    return {k.lower(): v for k, v in request["headers"]}


def expected_signature(secret, timestamp, body):
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "sha256=" + mac


# ---------------------------------------------------------------- tests

@with_receiver(secret=SECRET.encode())
def test_signed_request_is_exact(ctx, r):
    url = "http://hookuser:%s@127.0.0.1:%d/hooks/m2p?token=%s#frag" % (
        URL_SECRETS[0], r.port, URL_SECRETS[1])
    name, outcomes, _ = run_driver(ctx, url, [("42", PAYLOAD)])
    check(name == "webhook:http://127.0.0.1:%d/hooks/m2p" % r.port, "sink name %s" % name)
    check(outcomes == [{"event_id": "42", "outcome": "delivered", "ready": True}],
          "outcomes %s" % outcomes)
    check(len(r.requests) == 1, "%d requests" % len(r.requests))
    req = r.requests[0]
    check(req["method"] == "POST", "method %s" % req["method"])
    check(req["path"] == "/hooks/m2p?token=" + URL_SECRETS[1], "path %s" % req["path"])
    check(req["body"] == PAYLOAD, "body differs: %r" % req["body"])
    check(req["verified"] is True, "the documented Python check rejected the signature")
    h = header_map(req)
    m2p = {k: v for k, v in h.items() if k.startswith("x-m2p-")}
    check(sorted(m2p) == ["x-m2p-event", "x-m2p-event-id", "x-m2p-signature",
                          "x-m2p-timestamp"], "X-M2P headers %s" % m2p)
    check(m2p["x-m2p-event"] == "mining_reward", "X-M2P-Event %s" % m2p["x-m2p-event"])
    check(m2p["x-m2p-event-id"] == "42", "X-M2P-Event-Id %s" % m2p["x-m2p-event-id"])
    check(re.fullmatch(r"[0-9]{10}", m2p["x-m2p-timestamp"]),
          "X-M2P-Timestamp %s" % m2p["x-m2p-timestamp"])
    check(m2p["x-m2p-signature"] == expected_signature(SECRET.encode(), m2p["x-m2p-timestamp"],
                                                       PAYLOAD),
          "X-M2P-Signature %s" % m2p["x-m2p-signature"])
    check(h.get("content-type") == "application/json", "Content-Type %s" % h.get("content-type"))
    check(h.get("content-length") == str(len(PAYLOAD)), "Content-Length %s"
          % h.get("content-length"))
    check("expect" not in h and "transfer-encoding" not in h, "headers %s" % h)
    basic = base64.b64encode(("hookuser:" + URL_SECRETS[0]).encode()).decode()
    check(h.get("authorization") == "Basic " + basic,
          "userinfo not sent as Basic auth: %s" % h.get("authorization"))


@with_receiver(secret=b"not-the-engine-secret")
def test_wrong_secret_is_a_verification_failure(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("5", PAYLOAD)])
    check([req["verified"] for req in r.requests] == [False],
          "the receiver verified %s" % [req["verified"] for req in r.requests])
    check(outcomes == [{"event_id": "5", "outcome": "retry", "error": "HTTP 401",
                        "ready": True}], "outcomes %s" % outcomes)


@with_receiver()
def test_no_secret_no_signature(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("6", PAYLOAD)], secret="")
    check(outcomes[0]["outcome"] == "delivered", "outcomes %s" % outcomes)
    h = header_map(r.requests[0])
    check("x-m2p-signature" not in h, "an unsigned request has %s" % h.get("x-m2p-signature"))
    check(h.get("x-m2p-event-id") == "6" and "x-m2p-timestamp" in h, "headers %s" % h)
    verify = documented_python_verify()
    check(verify(b"", _Headers(h), PAYLOAD) is False,
          "the documented check accepts a request without a signature")


class _Headers(dict):
    def get(self, name, default=None):
        return super().get(name.lower(), default)


@with_receiver(answers=[500, 200], secret=SECRET.encode())
def test_500_then_200(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("7", PAYLOAD), ("7", PAYLOAD)])
    check(outcomes == [{"event_id": "7", "outcome": "retry", "error": "HTTP 500", "ready": True},
                       {"event_id": "7", "outcome": "delivered", "ready": True}],
          "outcomes %s" % outcomes)
    check(len(r.requests) == 2, "%d requests" % len(r.requests))
    for req in r.requests:
        check(header_map(req)["x-m2p-event-id"] == "7" and req["body"] == PAYLOAD,
              "the retry is not the same event")
        check(req["verified"] is True, "a signature did not verify")


@with_receiver(answers=[410, 200])
def test_410_stops_the_sink(ctx, r):
    url = r.url("/hooks/m2p?token=" + URL_SECRETS[1])
    name, outcomes, logs = run_driver(ctx, url, [("9", PAYLOAD), ("10", PAYLOAD)])
    check(outcomes == [{"event_id": "9", "outcome": "gone", "error": "HTTP 410 Gone",
                        "ready": False},
                       {"event_id": "10", "outcome": "refused", "ready": False}],
          "outcomes %s" % outcomes)
    check(len(r.requests) == 1, "a gone receiver got %d requests" % len(r.requests))
    gone = [l for l in logs if l.get("event") == "webhook_gone"]
    check(len(gone) == 1, "webhook_gone logged %d times: %s" % (len(gone), logs))
    check(gone[0].get("level") == "error", "webhook_gone level %s" % gone[0].get("level"))
    check(gone[0].get("url") == name[len("webhook:"):], "webhook_gone url %s" % gone[0])


@with_receiver(answers=[410, 410, 410])
def test_410_in_parallel_logs_once(ctx, r):
    _, outcomes, logs = run_driver(ctx, r.url(), [("11", PAYLOAD), ("12", PAYLOAD),
                                                  ("13", PAYLOAD)], parallel=True)
    check(sorted(o["outcome"] for o in outcomes) == ["gone"] * 3, "outcomes %s" % outcomes)
    check(len([l for l in logs if l.get("event") == "webhook_gone"]) == 1,
          "webhook_gone not logged once: %s" % logs)


@with_receiver(answers=[302])
def test_redirect_is_not_followed(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("14", PAYLOAD)])
    check(outcomes == [{"event_id": "14", "outcome": "retry", "error": "HTTP 302",
                        "ready": True}], "outcomes %s" % outcomes)
    check([req["path"] for req in r.requests] == ["/hooks/m2p"],
          "requests %s" % [req["path"] for req in r.requests])


@with_receiver(hang=True)
def test_timeout_is_a_retry(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("15", PAYLOAD)], timeout_s=0.5)
    check(outcomes == [{"event_id": "15", "outcome": "retry", "error": "timeout after 500 ms",
                        "ready": True}], "outcomes %s" % outcomes)


@with_receiver(answer_body=b"x" * (65 * 1024))
def test_huge_answer_is_a_retry(ctx, r):
    _, outcomes, _ = run_driver(ctx, r.url(), [("16", PAYLOAD)])
    check(outcomes == [{"event_id": "16", "outcome": "retry", "error": "response body too large",
                        "ready": True}], "outcomes %s" % outcomes)


@with_receiver(secret=SECRET.encode())
def test_parallel_deliveries(ctx, r):
    events = [(str(100 + i), PAYLOAD.replace(b'"42"', b'"%d"' % (100 + i))) for i in range(20)]
    _, outcomes, _ = run_driver(ctx, r.url(), events, parallel=True)
    check(sorted(o["event_id"] for o in outcomes if o["outcome"] == "delivered")
          == sorted(e for e, _ in events), "outcomes %s" % outcomes)
    got = sorted(header_map(req)["x-m2p-event-id"] for req in r.requests)
    check(got == sorted(e for e, _ in events), "the receiver got %s" % got)
    check(all(req["verified"] for req in r.requests), "a signature did not verify")
    bodies = {header_map(req)["x-m2p-event-id"]: req["body"] for req in r.requests}
    check(all(bodies[e] == p for e, p in events), "a body was mixed up")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_documented_node_receiver(ctx, secret):
    """The Node example of the docs, unchanged except where it listens."""
    node = shutil.which("node")
    check(node, "node is not installed (tests/install-deps.sh test)")
    source = doc_block("js")
    check(source.count(".listen(8080)") == 1, "the Node example no longer listens on 8080")
    port = free_port()
    path = os.path.join(ctx.tmp, "receiver-%d.js" % port)
    with open(path, "w") as f:
        f.write(source.replace(".listen(8080)", '.listen(%d, "127.0.0.1")' % port))
    env = ctx.engine_env({"WEBHOOK_SECRET": secret})
    proc = subprocess.Popen([node, path], stdin=subprocess.DEVNULL, env=env, cwd=ctx.tmp)
    harness._register(proc)

    def listening():
        check(proc.poll() is None, "the Node example exited with %s" % proc.poll())
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False
    harness.wait_until(listening, 30, "the Node receiver to listen")
    return proc, "http://127.0.0.1:%d/hook" % port


def stop_node(proc):
    proc.kill()
    proc.wait()
    harness._unregister(proc)


def test_documented_node_receiver(ctx):
    proc, url = start_documented_node_receiver(ctx, SECRET)
    try:
        _, outcomes, _ = run_driver(ctx, url, [("21", PAYLOAD)])
    finally:
        stop_node(proc)
    check(outcomes == [{"event_id": "21", "outcome": "delivered", "ready": True}],
          "the Node example did not accept the engine's signature: %s" % outcomes)
    proc, url = start_documented_node_receiver(ctx, "a-wrong-secret")
    try:
        _, outcomes, _ = run_driver(ctx, url, [("22", PAYLOAD)])
    finally:
        stop_node(proc)
    check(outcomes == [{"event_id": "22", "outcome": "retry", "error": "HTTP 401",
                        "ready": True}],
          "the Node example with a wrong secret answered %s" % outcomes)


harness.main(globals())
