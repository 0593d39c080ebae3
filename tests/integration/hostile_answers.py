"""Answers that only look like the pool's (issue 8), from a hostile cpu-pool on loopback.

Each test serves one account through the shipped pools/cpu-pool.lua: a first honest answer
(the baseline, paid 10.5), then hostile answers that would pay 989 ADVC if believed, then an
honest paid 11.0. Exactly 0.5 ADVC must be awarded: the honest increase, which also shows the
setup does award. The hostile answers:

- a 302 to ANOTHER loopback port that serves a paying answer: not followed (the pool allows
  no redirects), a failed poll logged with status 302;
- with a copy of the script that allows same-host redirects: a 302 to another port is still
  refused ("redirected off ..."), while one to the pool's own host is followed;
- a miner of "<wallet>\\u0000evil" (and a raw NUL byte): the body is not JSON, never a cut
  string that equals the wallet.

Engine: --dry-run --accounts (awards are logged as mining_reward_detected), one second between
polls. Nothing is asserted about time.
"""

import http.server
import json
import os
import threading

import harness
from harness import check

BASELINE, HOSTILE_PAID, HONEST = 10.5, 999.5, 11.0
HOSTILE_POLLS = 2


def nomp_body(miner, paid):
    return json.dumps({"miner": miner, "totalHash": 1234.5, "totalShares": 98765,
                       "networkSols": "0", "immature": 0.5, "balance": 1.2, "paid": paid,
                       "workers": {miner + ".rig1": {"shares": 98765, "hashrate": 1234.5}}})


class Pool:
    """A loopback HTTP server answering GET /api/worker_stats?<wallet> with `answer(n, wallet)`
    for the n-th request (from 1): (status, headers dict, body bytes). With `tls` (an
    ssl.SSLContext) it serves https (tls_verify.py)."""

    def __init__(self, answer, tls=None):
        self.lock = threading.Lock()
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with outer.lock:
                    outer.requests += 1
                    n = outer.requests
                status, headers, body = answer(n, self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.base = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def wallet_of(path):
    return path.split("?", 1)[1] if "?" in path else ""


def json_answer(body):
    return 200, {"Content-Type": "application/json"}, body.encode() if isinstance(body, str) else body


def honest(n, path):
    """The honest answer of the n-th request: the baseline first, the real increase after."""
    return json_answer(nomp_body(wallet_of(path), BASELINE if n == 1 else HONEST))


def run(ctx, answer, pools_dir=None):
    """Serves `answer` (hostile for requests 2 .. 1 + HOSTILE_POLLS, see honest()) and returns
    the engine's events once the honest answer after them has been polled."""
    paying = Pool(lambda n, path: json_answer(nomp_body(wallet_of(path), HOSTILE_PAID)))
    pool = Pool(lambda n, path: answer(n, path, paying) if 1 < n <= 1 + HOSTILE_POLLS
                else honest(n, path))
    try:
        settings = {"CPU_POOL_URL": pool.base + "/api/worker_stats", "RPLANT_ENABLED": "false",
                    "ZPOOL_ENABLED": "false", "POLL_INTERVAL_SECONDS": "1",
                    "LOG_LEVEL": "debug"}
        eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(1, zpool=False)],
                               settings, pools_dir=pools_dir)
        eng.wait_until(lambda evs: len([e for e in evs if e["event"] == "pool_poll_success"])
                       >= 2, timeout=60, what="the baseline and the honest poll after the "
                       "hostile ones")
        eng.expect_clean_exit(eng.stop())
        events = eng.snapshot()
        note = "paying server asked %d times" % paying.requests
        return events, paying.requests, note
    finally:
        pool.close()
        paying.close()


def awards(events):
    return [e for e in events if e["event"] == "mining_reward_detected"]


def failures(events):
    return [e for e in events if e["event"] in ("pool_poll_http_error", "pool_poll_rejected")]


def check_only_the_honest_award(events):
    got = [e["advc_amount"] for e in awards(events)]
    check(got == [HONEST - BASELINE], "awards %s: only the honest %.1f ADVC may be awarded"
          % (got, HONEST - BASELINE))


def redirect_to(target):
    return 302, {"Location": target, "Content-Type": "text/plain"}, b"moved"


def test_redirect_to_another_host_is_a_failed_poll(ctx):
    events, asked, note = run(ctx, lambda n, path, paying: redirect_to(
        paying.base + path))
    harness.note(note)
    check_only_the_honest_award(events)
    failed = failures(events)
    check(len(failed) == HOSTILE_POLLS and all(e.get("status") == 302 for e in failed),
          "each redirect must be a failed poll logged with status 302: %s" % failed)
    check("redirect" in failed[0].get("error", ""), "the error does not say it was a redirect: %s"
          % failed[0])
    check(asked == 0, "the redirect was followed: the other host was asked %d times" % asked)


def same_host_pools(ctx):
    with open(os.path.join(harness.REPO, "pools", "cpu-pool.lua")) as f:
        source = f.read()
    marker = '  name = "cpu-pool",\n'
    check(marker in source, "pools/cpu-pool.lua changed: no %r line to add redirects after" % marker)
    return ctx.pools_dir({"cpu-pool.lua": source.replace(
        marker, marker + '  redirects = "same-host",\n', 1)})


def test_same_host_redirects_stay_on_the_host(ctx):
    pools = same_host_pools(ctx)
    events, asked, note = run(ctx, lambda n, path, paying: redirect_to(paying.base + path), pools)
    harness.note(note)
    check_only_the_honest_award(events)
    failed = failures(events)
    check(len(failed) == HOSTILE_POLLS and
          all("redirected off 127.0.0.1:" in e.get("error", "") for e in failed),
          "a redirect off the pool's host must fail the poll: %s" % failed)

    # The pool's own host: followed, and its answer counts like any other.
    def same_host(n, path, paying):
        if path.startswith("/moved"):
            return honest(n, path)
        return redirect_to("/moved" + path)
    events, asked, note = run(ctx, lambda n, path, paying: same_host(n, path, paying), pools)
    check(not failures(events), "a same-host redirect failed the poll: %s" % failures(events))


def test_nul_in_the_miner_is_not_json(ctx):
    def nul_miner(n, path, paying):
        wallet = wallet_of(path)
        if n == 2:  # the JSON escape
            return json_answer(nomp_body(wallet + "\u0000evil", HOSTILE_PAID))
        raw = nomp_body(wallet + "NULMARK", HOSTILE_PAID).replace("NULMARK", "\x00evil")
        return json_answer(raw.encode())
    events, asked, note = run(ctx, nul_miner)
    check_only_the_honest_award(events)
    failed = failures(events)
    check(len(failed) == HOSTILE_POLLS and
          all("NUL character in the JSON" in e.get("error", "") for e in failed),
          "a miner holding a NUL must make the body 'not JSON': %s" % failed)


if __name__ == "__main__":
    harness.main(globals())
