"""Issue 9, webhooks end to end: a running engine (real PostgreSQL, awards from a
harness.PaidServer pool) with two webhook URLs.

- test_gone_url_stops_others_go_on: one receiver answers 410 Gone; the engine logs
  webhook_gone once and sends it nothing more, while the other URL gets every event with a
  signature that the Python example of docs/notifications.md verifies. The gone URL carries
  userinfo and a query string: m2p_deliveries and the logs name it without them, and
  neither they nor WEBHOOK_SECRET appear in any output.
"""

import json
import os
import re
import threading
import http.server

import harness
import pgserver
from harness import check

SECRET = "whsec-e2e-7c41d9"
USERINFO_SECRET = "pw-e2e-91b3"
QUERY_SECRET = "tok-e2e-5fa0"

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


def documented_verify():
    text = harness.read_text(os.path.join(harness.REPO, "docs", "notifications.md"))
    m = re.search(r"^## Webhooks\n.*?^```python\n(.*?)^```", text, re.S | re.M)
    check(m, "docs/notifications.md has no Python example in its Webhooks section")
    namespace = {}
    exec(m.group(1), namespace)
    return namespace["verify"]


class Receiver:
    """Answers `status` to every request; with a secret, verifies with the documented
    example (401 when it fails). Records (event id, body bytes, verified, path, headers)."""

    def __init__(self, status=200, secret=None):
        self.requests = []
        self.lock = threading.Lock()
        verify = documented_verify()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                ok = verify(secret, self.headers, body) if secret else None
                with outer.lock:
                    outer.requests.append((self.headers.get("X-M2P-Event-Id"), body, ok,
                                           self.path, dict(self.headers)))
                self.send_response(401 if ok is False else status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def all(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def pay_round(server, players, value):
    for p in players:
        server.set(p["wallet"], value)
    for p in players:
        harness.wait_until(lambda: server.times_served(p["wallet"], value) >= 2, 60,
                           "two polls of %s at %s" % (p["wallet"], value))


def test_gone_url_stops_others_go_on(ctx):
    server = harness.PaidServer()
    gone = Receiver(status=410)
    good = Receiver(secret=SECRET.encode())
    try:
        gdb = pgserver.GameDb.create(pg(), "webhook_gone")
        players = harness.make_players(2, zpool=False)
        pgserver.migrate(ctx, gdb)
        gdb.add_players(players)
        pools = ctx.pools_dir({"testpool.lua": harness.PAID_POOL_SCRIPT})
        for p in players:
            server.set(p["wallet"], "10")
        gone_url = "http://hookuser:%s@127.0.0.1:%d/gone?token=%s" % (
            USERINFO_SECRET, gone.port, QUERY_SECRET)
        good_url = "http://127.0.0.1:%d/hook" % good.port
        settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                            WEBHOOK_URLS="%s,%s" % (gone_url, good_url),
                                            WEBHOOK_SECRET=SECRET, NOTIFY_TIMEOUT=5)
        eng = ctx.start_engine([], settings, pools_dir=pools)
        gone_name = "webhook:http://127.0.0.1:%d/gone" % gone.port
        good_name = "webhook:" + good_url

        for p in players:  # the first answer is the baseline, not an award
            harness.wait_until(lambda: server.times_served(p["wallet"], "10") >= 1, 60,
                               "a baseline poll of %s" % p["wallet"])
        pay_round(server, players, "11.50")
        logged = eng.wait_for(lambda e: e["event"] == "webhook_gone", 60, "webhook_gone")
        check(logged["level"] == "error" and logged["url"] == gone_name[len("webhook:"):],
              "webhook_gone: %s" % logged["_raw"])

        def all_at_good():
            ids = {e for e, in gdb.sql("SELECT id::text FROM mining_events")}
            return ids and ids <= {r[0] for r in good.all() if r[2]}
        harness.wait_until(all_at_good, 60, "the first awards at the good receiver")
        before = len(gone.all())
        pay_round(server, players, "13.00")
        harness.wait_until(all_at_good, 60, "the later awards at the good receiver")

        check(len(gone.all()) == before,
              "the gone URL got %d requests after its 410" % (len(gone.all()) - before))
        check(0 < before <= len(players),
              "%d requests reached the gone URL (at most one per player in flight)" % before)
        check(all(path == "/gone?token=" + QUERY_SECRET for _, _, _, path, _ in gone.all()),
              "the gone URL was called as %s" % [r[3] for r in gone.all()])
        check(all(r[2] for r in good.all()),
              "a signature did not verify with the documented example")
        payloads = {e: json.loads(p) for e, p in gdb.sql(
            "SELECT mining_event_id::text, payload::text FROM m2p_outbox")}
        for event_id, body, _, _, headers in good.all():
            check(json.loads(body) == payloads[event_id],
                  "event %s: the body is not the outbox's event" % event_id)
            check(headers.get("X-M2P-Event") == "mining_reward"
                  and headers.get("Content-Type") == "application/json",
                  "headers %s" % headers)

        sinks = {s for s, in gdb.sql("SELECT DISTINCT sink FROM m2p_deliveries")}
        check(sinks == {gone_name, good_name}, "m2p_deliveries sinks %s" % sinks)
        errors = {e for e, in gdb.sql("SELECT DISTINCT last_error FROM m2p_deliveries"
                                      " WHERE sink = '%s' AND last_error IS NOT NULL"
                                      % gone_name)}
        check(errors == {"HTTP 410 Gone"}, "the gone URL's recorded errors: %s" % errors)
        check(len(eng.named("webhook_gone")) == 1,
              "webhook_gone logged %d times" % len(eng.named("webhook_gone")))
        eng.expect_clean_exit(eng.stop())
        text = harness.read_text(eng.stdout_path) + eng.stderr_text()
        for s in (SECRET, USERINFO_SECRET, QUERY_SECRET):
            check(s not in text, "%r appears in the engine's output (%s)" % (s, eng.stdout_path))
    finally:
        server.close()
        gone.close()
        good.close()


if __name__ == "__main__":
    harness.main(globals())
