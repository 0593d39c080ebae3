"""Issue 10: the live status page (GET /) rendered by headless Chromium.

- A real engine polls the simulator: cpu-pool answers every poll with HTTP 500, rplant and
  zpool pay. Chromium loads http://ADMIN/ (the page's JavaScript fetches /status) and dumps
  the DOM it rendered; the test reads the TEXT of that DOM and checks it against the engine's
  own /status taken just before and just after the page was rendered (the engine polls on,
  so a count on the page lies between the two): polls, failures and awards per pool, the
  success rates, the recent awards (player, pool, amounts), cpu-pool's error, the charts'
  totals, no database → "n/a". A page whose script did not run shows none of it and fails.
- With PostgreSQL, the held awards awaiting release and a sink's outbox depth are the
  database's numbers (database_stats in /status).
- The page loads nothing but its own three files (CSP, same-origin references only).
- Strings reach the DOM as text: the same page served with a hand-made /status full of
  markup (pool names, error texts) renders the markup as text, creates no element from it,
  and shows database_stats (held awards awaiting release, outbox depth) when present.
- Screenshots (phone and desktop width) are kept in BUILD/artifacts/.
"""

import html.parser
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request

import harness
import pgserver
from harness import check

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path):
    """(status, headers, body bytes); HTTP errors are answers too."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def status(port):
    code, _, body = request(port, "/status")
    check(code == 200, "/status answered %d" % code)
    return json.loads(body)


# ------------------------------------------------------------------ the rendered DOM


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self):
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def find(self, **attrs):
        return [n for n in self.walk() if all(n.attrs.get(k) == v for k, v in attrs.items())]

    def by_id(self, ident):
        found = self.find(id=ident)
        check(len(found) == 1, "the rendered page has %d elements with id %r" % (len(found), ident))
        return found[0]

    def rows(self, table_id):
        """[(tr attributes, [cell texts])] of the table's body."""
        body = [n for n in self.by_id(table_id).walk() if n.tag == "tbody"]
        check(len(body) == 1, "table %s has %d bodies" % (table_id, len(body)))
        return [(tr.attrs, [td.text().strip() for td in tr.children
                            if isinstance(td, Node) and td.tag == "td"])
                for tr in body[0].children if isinstance(tr, Node) and tr.tag == "tr"]


class DomParser(html.parser.HTMLParser):
    """A tree of Chromium's serialized DOM (well formed: every element is closed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse_dom(text):
    p = DomParser()
    p.feed(text)
    p.close()
    return p.root


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    harness.fail("chromium is missing (Debian package chromium: tests/install-deps.sh test)")


def render(ctx, url, width, height, screenshot=None):
    """The DOM headless Chromium rendered at `url` after the page's script ran (virtual time:
    no waiting on the wall clock), and optionally a screenshot of the window."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=ctx.tmp)
    argv = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
            "--user-data-dir=" + profile, "--virtual-time-budget=3000",
            "--window-size=%d,%d" % (width, height)]
    if screenshot:
        argv.append("--screenshot=" + screenshot)
    argv += ["--dump-dom", url]
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    env["HOME"] = profile  # nothing written to the caller's home
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env,
                           timeout=60)
    except subprocess.TimeoutExpired:
        harness.fail("chromium did not finish within 60 s")
    dom = r.stdout.decode("utf-8", "replace")
    check(r.returncode == 0 and "<html" in dom, "chromium failed (%d): %s"
          % (r.returncode, r.stderr.decode("utf-8", "replace")[-1500:]))
    if screenshot:
        check(os.path.getsize(screenshot) > 10000, "the screenshot %s is (nearly) empty"
              % screenshot)
    return parse_dom(dom)


def artifact(ctx, name):
    d = os.path.join(ctx.build_dir, "artifacts")
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


# ------------------------------------------------------------------ checks


def between(text, lo, hi, what):
    check(text.lstrip("-").isdigit(), "%s shows %r, not a count" % (what, text))
    check(lo <= int(text) <= hi, "%s shows %s; /status said %d before and %d after"
          % (what, text, lo, hi))


def amount_matches(text, value):
    try:
        return abs(float(text) - value) <= 1e-8 * max(1.0, abs(value))
    except ValueError:
        return False


def check_pools(dom, before, after):
    rows = {attrs.get("data-pool"): cells for attrs, cells in dom.rows("pools")}
    check(set(rows) == set(after["pools"]), "pools on the page %s, in /status %s"
          % (sorted(rows), sorted(after["pools"])))
    for name, cells in rows.items():
        b, a = before["pools"][name], after["pools"][name]
        check(cells[0] == name, "%s: first cell %r" % (name, cells[0]))
        check(cells[1] == "3", "%s: %r accounts, 3 scheduled" % (name, cells[1]))
        between(cells[2], b["polls"], a["polls"], name + " polls")
        between(cells[4], b["failures"], a["failures"], name + " failures")
        between(cells[7], b["awards"], a["awards"], name + " awards")
        rate = "0.0 %" if name == "cpu-pool" else "100.0 %"
        check(cells[3] == rate, "%s: success rate %r, expected %r" % (name, cells[3], rate))
        check(cells[5].endswith(" ms") and float(cells[5][:-3]) >= 0,
              "%s: mean latency %r" % (name, cells[5]))
        check(cells[6].endswith(" s") or cells[6].endswith(" min"),
              "%s: effective interval %r" % (name, cells[6]))
        check(cells[8] == "0", "%s: %r held, none expected" % (name, cells[8]))
    check(int(rows["cpu-pool"][4]) > 0 and int(rows["cpu-pool"][7]) == 0,
          "cpu-pool (every poll 500) shows failures %s, awards %s" % (rows["cpu-pool"][4],
                                                                     rows["cpu-pool"][7]))


def check_awards(dom, before, after):
    rows = [cells for _, cells in dom.rows("awards")]
    known = before["recent_awards"] + after["recent_awards"]
    check(rows and len(rows[0]) == 6, "no award rows on the page: %s" % rows[:3])
    for cells in rows:
        _, player, pool, advc, ap, state = cells
        check(any(str(a["player_id"]) == player and a["pool"] == pool
                  and amount_matches(advc, a["advc"]) and amount_matches(ap, a["ap"])
                  and state == ("held" if a["held"] else "paid") for a in known),
              "the page shows an award /status never listed: %s" % cells)
    newest = before["recent_awards"][0]
    check(any(c[1] == str(newest["player_id"]) and c[2] == newest["pool"]
              and amount_matches(c[3], newest["advc"]) for c in rows),
          "the newest award before rendering (%s) is not on the page" % newest)
    check(len(rows) >= min(len(before["recent_awards"]), 50), "%d award rows, /status had %d"
          % (len(rows), len(before["recent_awards"])))


def check_errors(dom, before, after):
    rows = [cells for _, cells in dom.rows("errors")]
    check(rows and len(rows[0]) == 4, "no error rows on the page")
    known = {(str(e["player_id"]), e["pool"], e["error"])
             for e in before["recent_errors"] + after["recent_errors"]}
    for _, player, pool, why in rows:
        check(pool == "cpu-pool" and "500" in why, "an error of %s: %r" % (pool, why))
        check((player, pool, why) in known, "the page shows an error /status never listed: %s"
              % [player, pool, why])


def check_summary_and_charts(dom, before, after, port):
    check(dom.by_id("state").text() == "ready", "state %r" % dom.by_id("state").text())
    check(dom.by_id("s-version").text() == after["version"], "version on the page")
    between(dom.by_id("s-polls").text(), before["polls"], after["polls"], "total polls")
    between(dom.by_id("s-awards").text(), before["awards"], after["awards"], "total awards")
    check(dom.by_id("s-database").text() == "none", "database %r" % dom.by_id("s-database").text())
    total = dom.by_id("chart-polls-total").text().split()
    check(len(total) > 3 and total[1] == "polls,", "polls chart total %r" % total)
    between(total[0], sum(before["series"]["polls"]) - before["series"]["polls"][0],
            sum(after["series"]["polls"]), "the polls chart's total")
    for canvas in ("chart-polls", "chart-awards"):
        bars = dom.by_id(canvas).attrs.get("data-bars", "0")
        check(int(bars) >= 1, "%s drew %s bars" % (canvas, bars))
    # No database, no sinks: said in words, not left blank.
    check(dom.by_id("held-pending").text() == "n/a", "held awaiting release without a database: %r"
          % dom.by_id("held-pending").text())
    sinks = dom.rows("sinks")
    check(len(sinks) == 1 and sinks[0][1] == ["no notification sink configured"],
          "sinks without any: %s" % sinks)
    check("hidden" in dom.by_id("problem").attrs, "the page reports a problem: %r"
          % dom.by_id("problem").text())


def check_page_files(port):
    code, headers, body = request(port, "/")
    check(code == 200 and headers.get("Content-Type", "").startswith("text/html"),
          "GET / answered %d %s" % (code, headers.get("Content-Type")))
    csp = headers.get("Content-Security-Policy", "")
    check("default-src 'none'" in csp and "script-src 'self'" in csp, "GET / CSP: %r" % csp)
    page = parse_dom(body.decode("utf-8"))
    refs = [n.attrs.get("src") or n.attrs.get("href") for n in page.walk()
            if n.tag in ("script", "link", "img", "a") and (n.attrs.get("src") or n.attrs.get("href"))]
    check(refs and all(r.startswith("/") and not r.startswith("//") for r in refs),
          "the page refers to another origin: %s" % refs)
    check(not [n for n in page.walk() if n.tag == "script" and not n.attrs.get("src")],
          "the page has inline script")
    for path, kind in (("/page.js", "text/javascript"), ("/page.css", "text/css")):
        code, headers, body = request(port, path)
        check(code == 200 and headers.get("Content-Type", "").startswith(kind) and len(body) > 500,
              "GET %s answered %d %s" % (path, code, headers.get("Content-Type")))


def test_page_renders_the_engines_numbers(ctx):
    port = free_port()
    sim = ctx.start_sim("--payout-interval", "2")
    sim.fault("cpu-pool", "status", code=500)  # every poll of cpu-pool fails
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, ZPOOL_PER_SECOND=100,
                    ADMIN_LISTEN="127.0.0.1:%d" % port)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(3)], settings)

    def ready():
        check(eng.proc.poll() is None, "the engine exited: %s" % eng.stderr_text()[-2000:])
        try:
            st = status(port)
        except OSError:
            return False
        pools = st.get("pools", {})
        return (all(pools.get(p, {}).get("awards", 0) >= 1 for p in ("rplant", "zpool"))
                and pools.get("cpu-pool", {}).get("failures", 0) >= 3
                and all("effective_interval_seconds" in p for p in pools.values()) and st)
    harness.wait_until(ready, 40, "awards on rplant and zpool and cpu-pool failing")
    check_page_files(port)

    before = status(port)
    shot = artifact(ctx, "status_page.png")
    dom = render(ctx, "http://127.0.0.1:%d/" % port, 412, 2200, screenshot=shot)
    after = status(port)
    check(dom.by_id("state").parent is not None and
          [n for n in dom.walk() if n.tag == "body"][0].attrs.get("data-loaded") == "1",
          "the page's script did not draw /status (body has no data-loaded)")
    check_summary_and_charts(dom, before, after, port)
    check_pools(dom, before, after)
    check_awards(dom, before, after)
    check_errors(dom, before, after)
    wide = artifact(ctx, "status_page_desktop.png")
    render(ctx, "http://127.0.0.1:%d/" % port, 1280, 1500, screenshot=wide)
    print("     screenshots: %s %s" % (shot, wide))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def test_database_numbers_are_shown(ctx):
    """With PostgreSQL: held awards awaiting release and the sink's outbox depth on the page
    are the database's (a receiver nobody listens on keeps every notification waiting)."""
    server = pgserver.PgServer()
    try:
        gdb = pgserver.GameDb.create(server, "status_page")
        sim = ctx.start_sim("--payout-interval", "2")
        pgserver.migrate(ctx, gdb)
        gdb.add_players(harness.make_players(2))
        port = free_port()
        hook = "http://127.0.0.1:%d/hook" % free_port()  # nothing listens there
        sink = "webhook:" + hook
        # zpool pays tens of ADVC: over MAX_AWARD_ADVC, so its awards are held.
        eng = ctx.start_engine([], pgserver.engine_settings(
            sim, gdb, ADMIN_LISTEN="127.0.0.1:%d" % port, WEBHOOK_URLS=hook,
            MAX_AWARD_ADVC=5, DATABASE_STATS_INTERVAL=0.5))

        def known():
            check(eng.proc.poll() is None, "the engine exited: %s" % eng.stderr_text()[-2000:])
            try:
                st = status(port)
            except OSError:
                return False
            d = st.get("database_stats") or {}
            return (d.get("held_awaiting_release", 0) >= 1
                    and d.get("sinks", {}).get(sink, {}).get("depth", 0) >= 1 and st)
        harness.wait_until(known, 40, "held awards and waiting notifications in /status")
        before = status(port)
        dom = render(ctx, "http://127.0.0.1:%d/" % port, 1280, 1500,
                     screenshot=artifact(ctx, "status_page_database.png"))
        after = status(port)
        check(dom.by_id("s-database").text() == "ok", "database %r" % dom.by_id("s-database").text())
        between(dom.by_id("held-pending").text(), before["database_stats"]["held_awaiting_release"],
                after["database_stats"]["held_awaiting_release"], "held awaiting release")
        rows = {a.get("data-sink"): cells for a, cells in dom.rows("sinks")}
        check(sink in rows, "no row for %s: %s" % (sink, rows))
        between(rows[sink][6], before["database_stats"]["sinks"][sink]["depth"],
                after["database_stats"]["sinks"][sink]["depth"], "outbox depth")
        check(rows[sink][7] != "n/a", "the oldest waiting notification's age is n/a")
        held = [c for _, c in dom.rows("awards") if c[5] == "held"]
        check(held and all(c[2] == "zpool" for c in held), "held awards on the page: %s" % held)
        rc = eng.stop()
        eng.expect_clean_exit(rc)
    finally:
        server.close()


# ------------------------------------------------------------------ hostile strings

HOSTILE = '<img src=x id="injected" onerror="document.body.id=\'pwned\'">&amp;<b id="bold">'


def hostile_status(real):
    """A /status in the engine's shape whose strings are markup."""
    st = dict(real)
    pool = {"polls": 10, "successes": 9, "failures": 1, "awards": 2, "accounts": 1,
            "awards_held": 1, "success_rate": 0.9, "mean_latency_ms": 12.5,
            "effective_interval_seconds": 30}
    st["pools"] = {HOSTILE: pool}
    st["recent_awards"] = [{"time": st["time"], "player_id": 77, "pool": HOSTILE, "advc": 1.5,
                            "ap": 3, "held": True}]
    st["recent_errors"] = [{"time": st["time"], "player_id": 78, "pool": HOSTILE,
                            "error": HOSTILE}]
    st["series"] = dict(real["series"], pools={HOSTILE: real["series"]})
    st["notifications"] = {"webhook:" + HOSTILE: {"ready": False, "in_flight": 2, "delivered": 5,
                                                  "failed_attempts": 4, "expired": 0}}
    st["database_stats"] = {"held_awaiting_release": 7, "sinks": {
        "webhook:" + HOSTILE: {"depth": 12, "oldest_age_seconds": 600}}}
    st["script_generation"] = HOSTILE
    return st


class PageProxy:
    """Serves the engine's own page files and a given /status."""

    def __init__(self, engine_port, status_body):
        files = {}
        for path in ("/", "/page.js", "/page.css"):
            code, headers, body = request(engine_port, path)
            check(code == 200, "GET %s answered %d" % (path, code))
            files[path] = (headers, body)
        files["/status"] = ({"Content-Type": "application/json"}, status_body)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in files:
                    self.send_error(404)
                    return
                headers, body = files[self.path]
                self.send_response(200)
                for k in ("Content-Type", "Content-Security-Policy"):
                    if k in headers:
                        self.send_header(k, headers[k])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_strings_are_text_and_database_stats_are_shown(ctx):
    port = free_port()
    sim = ctx.start_sim("--payout-interval", "2")
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(1)],
                           dict(sim.pool_env(), ADMIN_LISTEN="127.0.0.1:%d" % port))
    harness.wait_until(lambda: eng.proc.poll() is None and _answers(port), 30,
                       "the admin endpoint")
    proxy = PageProxy(port, json.dumps(hostile_status(status(port))).encode())
    try:
        dom = render(ctx, proxy.url, 1280, 1500,
                     screenshot=artifact(ctx, "status_page_hostile.png"))
    finally:
        proxy.close()
    body = [n for n in dom.walk() if n.tag == "body"][0]
    check(body.attrs.get("data-loaded") == "1", "the page did not draw the hand-made /status: %r"
          % dom.by_id("problem").text())
    check(not dom.find(id="injected") and not dom.find(id="bold") and body.attrs.get("id") != "pwned",
          "markup from /status became elements")
    check(not [n for n in dom.walk() if n.tag in ("img", "b")], "an img or b element was created")
    pools = dom.rows("pools")
    check(pools[0][0].get("data-pool") == HOSTILE and pools[0][1][0] == HOSTILE,
          "the pool name is not shown as text: %s" % pools)
    errors = dom.rows("errors")
    check(errors[0][1][2] == HOSTILE and errors[0][1][3] == HOSTILE,
          "the error is not shown as text: %s" % errors)
    awards = dom.rows("awards")
    check(awards[0][1][1:] == ["77", HOSTILE, "1.5", "3", "held"], "award row %s" % awards)
    check(dom.by_id("held-pending").text() == "7", "held awaiting release %r"
          % dom.by_id("held-pending").text())
    check(dom.by_id("held-engine").text() == "1", "held by the engine %r"
          % dom.by_id("held-engine").text())
    sinks = dom.rows("sinks")
    check(sinks[0][1] == ["webhook:" + HOSTILE, "not ready", "2", "5", "4", "0", "12", "10.0 min"],
          "sink row %s" % sinks)
    options = [n.text() for n in dom.walk() if n.tag == "option"]
    check(HOSTILE in options, "the chart's pool choice %s" % options)
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def _answers(port):
    try:
        return request(port, "/healthz")[0] == 200
    except OSError:
        return False


harness.main(globals())
