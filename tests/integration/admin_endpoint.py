"""Issue 10: the admin HTTP endpoint (ADMIN_LISTEN) of a real engine, over loopback.

- /metrics passes `promtool check metrics`, and its counters follow the engine: the polls
  and failures of each pool and the awards match what the engine logged and what the
  simulator served (a pool answering exactly N HTTP 500s shows exactly N failures); so do
  the ADVC and AP sums, the scheduler-lag histogram (one observation per poll started), the
  breaker state and the accounts tracked and owned.
- A pool answering only 500s opens its breaker (m2p_pool_breaker_state) and its polls then
  start late (m2p_scheduler_lag_seconds).
- With PostgreSQL: a paid and a held award move the award counters by their exact amounts;
  m2p_held_awards_awaiting_release, m2p_outbox_depth and m2p_outbox_oldest_age_seconds (and
  /status database_stats) follow the database, also after --release-held; two engines split
  the accounts they both track (m2p_accounts_owned).
- /readyz turns 503 (with a JSON reason) when PostgreSQL stops and 200 when it is back;
  m2p_database_up follows.
- POST /reload needs the bearer token: none or a wrong one is 401, the right one reloads
  (the reload counter moves); unknown paths are 404, wrong methods 405, big bodies 413.
- A non-loopback ADMIN_LISTEN without ADMIN_TOKEN refuses to start; the token never
  appears in the engine's output, /status or /metrics.
"""

import json
import os
import re
import shutil
import socket
import subprocess

import harness
import notify_support as ns
import pgserver
from adminhttp import free_port, request, wait_listening
from harness import check

TOKEN = "s3cret-admin-token-7f3a"
HOOK_SECRET = "admin-hook-secret"


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port):
    """{(name, frozenset(labels)): value} of a live /metrics, after promtool accepted it."""
    status, headers, text = request(port, "/metrics")
    check(status == 200, "/metrics answered %d" % status)
    check(headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          "/metrics content type %r" % headers.get("Content-Type"))
    promtool(text)
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        check(m, "unparseable sample line %r" % line)
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def promtool(text):
    tool = shutil.which("promtool")
    check(tool, "promtool is missing (Debian package prometheus: tests/install-deps.sh test)")
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    check(r.returncode == 0, "promtool check metrics failed: %s %s\n%s"
          % (r.stdout.decode(), r.stderr.decode(), text[:3000]))


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in samples, "%s%s is missing from /metrics" % (name, labels))
    return samples[key]


def logged_polls(eng, pool, failures):
    names = harness.POLL_FAILURE_EVENTS if failures else ("pool_poll_success",)
    return len(harness.poll_ends(eng.snapshot(), pool, names))


def logged_awards(eng, pool):
    return len([e for e in eng.named("mining_reward_detected") if e.get("pool") == pool])


def logged_sum(eng, pool, field):
    return sum(float(e[field]) for e in eng.named("mining_reward_detected")
               if e.get("pool") == pool)


def test_metrics_follow_polls_failures_and_awards(ctx):
    port = free_port()
    sim = ctx.start_sim("--payout-interval", "2")
    failing = 4
    sim.fault("cpu-pool", "status", code=500, count=failing)
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, LOG_LEVEL="debug",
                    ZPOOL_PER_SECOND=100, ADMIN_LISTEN="127.0.0.1:%d" % port)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(3)], settings)
    wait_listening(eng, port)
    # Every fault served and the pool answering again; awards on every pool.
    eng.wait_until(lambda evs: int(sim.stats()["cpu-pool"]["by_fault"].get("status", 0))
                   == failing and all(logged_awards(eng, p) >= 1
                                      for p in ("cpu-pool", "rplant", "zpool")),
                   timeout=40, what="the 500s served and awards on every pool")
    for pool in ("cpu-pool", "rplant", "zpool"):
        # A counter is at least what was logged before the scrape and, once the engine's
        # output has been read, what was logged after it.
        before_ok, before_fail = logged_polls(eng, pool, False), logged_polls(eng, pool, True)
        before_awards = logged_awards(eng, pool)
        before_advc, before_ap = logged_sum(eng, pool, "advc_amount"), logged_sum(eng, pool,
                                                                                 "ap_awarded")
        s = scrape(port)
        ok = value(s, "m2p_polls_total", pool=pool, outcome="success")
        bad = value(s, "m2p_polls_total", pool=pool, outcome="failure")
        awards = value(s, "m2p_awards_total", pool=pool)
        advc = value(s, "m2p_advc_awarded_total", pool=pool)
        ap = value(s, "m2p_ap_awarded_total", pool=pool)
        eng.wait_until(lambda evs: logged_polls(eng, pool, False) >= ok
                       and logged_polls(eng, pool, True) >= bad
                       and logged_awards(eng, pool) >= awards, timeout=20,
                       what="the log to catch up with /metrics for %s" % pool)
        check(ok >= before_ok and bad >= before_fail and awards >= before_awards,
              "%s: /metrics (%d ok, %d failed, %d awards) behind the log (%d, %d, %d)"
              % (pool, ok, bad, awards, before_ok, before_fail, before_awards))
        # The ADVC and AP sums lie between what was logged before and after the scrape.
        after_advc, after_ap = logged_sum(eng, pool, "advc_amount"), logged_sum(eng, pool,
                                                                               "ap_awarded")
        check(before_advc - 1e-6 <= advc <= after_advc + 1e-6 and advc > 0
              and before_ap - 1e-4 <= ap <= after_ap + 1e-4 and ap > 0,
              "%s: m2p_advc_awarded_total %r / m2p_ap_awarded_total %r outside the logged "
              "sums [%r, %r] / [%r, %r]" % (pool, advc, ap, before_advc, after_advc,
                                             before_ap, after_ap))
        check(value(s, "m2p_awards_held_total", pool=pool) == 0, "%s: held awards" % pool)
        # Every finished poll was handed out by the scheduler first, and measured.
        lag_count = value(s, "m2p_scheduler_lag_seconds_count", pool=pool)
        check(ok + bad <= lag_count <= ok + bad + 3
              and lag_count == value(s, "m2p_scheduler_lag_seconds_bucket", pool=pool,
                                     le="+Inf"),
              "%s: %d polls started per m2p_scheduler_lag_seconds, %d finished"
              % (pool, lag_count, ok + bad))
        check(value(s, "m2p_pool_breaker_state", pool=pool) == 0,
              "%s: the breaker is not closed after %d failures" % (pool, bad))
        check(value(s, "m2p_accounts_tracked", pool=pool) == 3
              and value(s, "m2p_accounts_owned", pool=pool) == 3,
              "%s: accounts tracked/owned are not 3" % pool)
        check(ok > 0 and awards > 0, "%s: no successful poll or award in /metrics" % pool)
        check(bad == (failing if pool == "cpu-pool" else 0),
              "%s: %d failures in /metrics, the simulator served %d 500s"
              % (pool, bad, failing if pool == "cpu-pool" else 0))
        check(value(s, "m2p_accounts", pool=pool) == 3, "%s: m2p_accounts is not 3" % pool)
        count = value(s, "m2p_poll_duration_seconds_count", pool=pool)
        check(count == value(s, "m2p_poll_duration_seconds_bucket", pool=pool, le="+Inf")
              and count >= ok, "%s: the histogram count %d is not the polls answered" % (pool, count))
    build = [dict(k[1]) for k in s if k[0] == "m2p_build_info"]
    check(len(build) == 1 and value(s, "m2p_build_info", **build[0]) == 1
          and json.loads(request(port, "/status")[2])["version"] == build[0].get("version"),
          "m2p_build_info: %s" % build)
    check(value(s, "m2p_poll_interval_seconds", pool="rplant") > 0, "no rplant poll interval")
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_start_time_seconds"):
        check(value(s, name) > 0, "%s is not positive" % name)
    check(("m2p_database_up", frozenset()) not in s, "m2p_database_up without a database")

    status, _, body = request(port, "/status")
    st = json.loads(body)
    check(status == 200 and st["database"] == "none" and st["accounts"] == 9
          and st["pools"]["cpu-pool"]["failures"] == failing and st["script_generation"],
          "/status: %s" % body)
    status, _, body = request(port, "/readyz")
    check(status == 200 and json.loads(body)["ready"] is True,
          "/readyz without a database: %d %s" % (status, body))
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def test_breaker_state_and_scheduler_lag(ctx):
    """A pool answering only 500s opens its breaker (m2p_pool_breaker_state 1 or 2, the
    others stay 0), and its due polls then start late: the lag histogram shows polls over
    one second late while the breaker holds them back."""
    port = free_port()
    sim = ctx.start_sim("--payout-interval", "2")
    sim.fault("cpu-pool", "status", code=500)
    settings = dict(sim.pool_env(), POLL_INTERVAL_SECONDS=1, ZPOOL_PER_SECOND=100,
                    ADMIN_LISTEN="127.0.0.1:%d" % port)
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(12)], settings)
    wait_listening(eng, port)

    def breaker_open():
        s = scrape(port)
        return value(s, "m2p_pool_breaker_state", pool="cpu-pool") in (1, 2) and s
    s = harness.wait_until(breaker_open, 40, "the cpu-pool breaker to open", 0.25)
    check(value(s, "m2p_polls_total", pool="cpu-pool", outcome="failure") >= 10
          and value(s, "m2p_polls_total", pool="cpu-pool", outcome="success") == 0,
          "the breaker opened without 10 failures")
    check(value(s, "m2p_pool_breaker_state", pool="rplant") == 0
          and value(s, "m2p_pool_breaker_state", pool="zpool") == 0,
          "a healthy pool's breaker is not closed")

    def late_polls():
        s = scrape(port)
        started = value(s, "m2p_scheduler_lag_seconds_count", pool="cpu-pool")
        within_1s = value(s, "m2p_scheduler_lag_seconds_bucket", pool="cpu-pool", le="1")
        return started > within_1s and s
    # The first probe waits SCHED_BREAKER_PROBE_MIN (5 s) behind polls already due.
    harness.wait_until(late_polls, 30, "a cpu-pool poll started more than 1 s late",
                       0.25)
    rc = eng.stop()
    eng.expect_clean_exit(rc)


def test_readyz_follows_the_database(ctx):
    server = pgserver.PgServer()
    try:
        gdb = pgserver.GameDb.create(server, "admin")
        sim = ctx.start_sim("--payout-interval", "4")
        players = harness.make_players(2)
        pgserver.migrate(ctx, gdb)
        gdb.add_players(players)
        port = free_port()
        eng = ctx.start_engine([], pgserver.engine_settings(
            sim, gdb, ADMIN_LISTEN="127.0.0.1:%d" % port))
        wait_listening(eng, port)

        def ready(expected):
            def probe():
                status, _, body = request(port, "/readyz")
                return status == expected and (status, json.loads(body))
            return harness.wait_until(probe, 60, "/readyz %d" % expected)

        ready(200)
        check(value(scrape(port), "m2p_database_up") == 1, "m2p_database_up is not 1")
        server.stop()
        _, body = ready(503)
        check(body["ready"] is False and "database" in body["reason"],
              "/readyz 503 without the database's reason: %s" % body)
        check(value(scrape(port), "m2p_database_up") == 0, "m2p_database_up is not 0")
        check(json.loads(request(port, "/status")[2])["database"] == "degraded",
              "/status database is not degraded")
        check(request(port, "/healthz")[0] == 200, "/healthz failed while the database is down")
        server.start()
        ready(200)
        rc = eng.stop()
        eng.expect_clean_exit(rc)
    finally:
        server.close()


def test_notification_metrics_follow_deliveries(ctx):
    server = pgserver.PgServer()
    hook = ns.WebhookReceiver(HOOK_SECRET)
    try:
        gdb = pgserver.GameDb.create(server, "admin_notify")
        sim = ctx.start_sim("--payout-interval", "2")
        players = harness.make_players(2)
        pgserver.migrate(ctx, gdb)
        gdb.add_players(players)
        port = free_port()
        eng = ctx.start_engine([], pgserver.engine_settings(
            sim, gdb, ADMIN_LISTEN="127.0.0.1:%d" % port, WEBHOOK_URLS=hook.url,
            WEBHOOK_SECRET=HOOK_SECRET))
        wait_listening(eng, port)
        sink = "webhook:" + hook.url
        harness.wait_until(lambda: len(hook.delivered()) >= 3, 60, "three webhook deliveries")
        before = len(hook.delivered())
        s = scrape(port)
        delivered = value(s, "m2p_notifications_delivered_total", sink=sink)
        # The receiver counts a request before it answers; the engine counts the answer.
        check(delivered <= len(hook.delivered()), "%d delivered, the receiver got %d"
              % (delivered, len(hook.delivered())))
        harness.wait_until(lambda: value(scrape(port), "m2p_notifications_delivered_total",
                                         sink=sink) >= before, 30,
                           "m2p_notifications_delivered_total to reach %d" % before)
        check(value(s, "m2p_notification_sink_ready", sink=sink) == 1, "the sink is not ready")
        check(value(s, "m2p_notifications_failed_total", sink=sink) == 0
              and value(s, "m2p_notifications_expired_total", sink=sink) == 0,
              "failures or expiries counted for a receiver that answers 200")
        st = json.loads(request(port, "/status")[2])
        check(st["database"] == "ok" and st["notifications"][sink]["ready"] is True,
              "/status: %s" % st)
        rc = eng.stop()
        eng.expect_clean_exit(rc)
    finally:
        hook.close()
        server.close()


@harness.with_paid_server
def test_award_and_outbox_metrics_follow_the_database(ctx, server):
    """A paid award moves m2p_advc_awarded_total / m2p_ap_awarded_total by exactly its
    amounts, a held one m2p_awards_held_total and m2p_held_awards_awaiting_release; with the
    webhook receiver down the outbox depth counts the paid award and its age grows;
    --release-held turns the held award into a second outbox event. /status carries the
    same numbers under database_stats."""
    pg = pgserver.PgServer()
    try:
        gdb = pgserver.GameDb.create(pg, "admin_awards")
        players = harness.make_players(2, zpool=False)
        w1, w2 = players[0]["wallet"], players[1]["wallet"]
        server.set(w1, "10")
        server.set(w2, "10")
        pgserver.migrate(ctx, gdb)
        gdb.add_players(players)
        port = free_port()
        hook = "http://127.0.0.1:%d/hook" % free_port()  # nobody listens: nothing delivered
        sink = "webhook:" + hook
        settings = pgserver.engine_settings(
            None, gdb, TESTPOOL_URL=server.url, MAX_AWARD_ADVC=1000, MAX_AWARD_FACTOR=100,
            ADMIN_LISTEN="127.0.0.1:%d" % port, WEBHOOK_URLS=hook, DATABASE_STATS_INTERVAL=0.5)
        eng = ctx.start_engine([], settings,
                               pools_dir=ctx.pools_dir({"testpool.lua": harness.PAID_POOL_SCRIPT}))
        wait_listening(eng, port)
        pgserver.wait_polls([eng], None, [(1, "testpool"), (2, "testpool")], 2, "the baselines")
        s = scrape(port)
        check(value(s, "m2p_outbox_depth", sink=sink) == 0
              and value(s, "m2p_outbox_oldest_age_seconds", sink=sink) == 0
              and value(s, "m2p_held_awards_awaiting_release") == 0,
              "an empty outbox or held awards before any award")
        check(value(s, "m2p_accounts_tracked", pool="testpool") == 2
              and value(s, "m2p_accounts_owned", pool="testpool") == 2,
              "one engine owns both accounts it tracks")

        server.set(w2, "12.5")   # 2.5 ADVC paid
        server.set(w1, "1510")   # 1500 ADVC: above MAX_AWARD_ADVC, held

        def settled():
            s = scrape(port)
            return (value(s, "m2p_awards_held_total", pool="testpool") == 1
                    and value(s, "m2p_held_awards_awaiting_release") == 1
                    and value(s, "m2p_outbox_depth", sink=sink) == 1) and s
        s = harness.wait_until(settled, 40, "one paid and one held award in /metrics", 0.25)
        check(value(s, "m2p_awards_total", pool="testpool") == 1
              and value(s, "m2p_advc_awarded_total", pool="testpool") == 2.5
              and value(s, "m2p_ap_awarded_total", pool="testpool") == 250,
              "the paid award's amounts: %s" % {k: v for k, v in s.items()
                                                 if k[0].endswith("awarded_total")})
        age = value(s, "m2p_outbox_oldest_age_seconds", sink=sink)
        harness.wait_until(lambda: value(scrape(port), "m2p_outbox_oldest_age_seconds",
                                         sink=sink) > age + 0.5, 20,
                           "the undelivered event's age to grow", 0.25)
        st = json.loads(request(port, "/status")[2])["database_stats"]
        check(st["held_awaiting_release"] == 1 and st["sinks"][sink]["depth"] == 1
              and st["sinks"][sink]["oldest_age_seconds"] > 0,
              "/status database_stats: %s" % st)

        held_id = gdb.value("SELECT id FROM m2p_held_awards WHERE status = 'held'")
        rc, _, out, err = ctx.run_engine(["--release-held", str(held_id)],
                                         {"DATABASE_URL": gdb.conninfo()}, scripts=False)
        check(rc == 0, "--release-held exited %s: %r %r" % (rc, out, err))

        def released():
            s = scrape(port)
            return (value(s, "m2p_held_awards_awaiting_release") == 0
                    and value(s, "m2p_outbox_depth", sink=sink) == 2) and s
        s = harness.wait_until(released, 20, "the release in /metrics", 0.25)
        # Counters of this engine's own decisions: a release by the CLI is not one.
        check(value(s, "m2p_awards_held_total", pool="testpool") == 1,
              "m2p_awards_held_total moved at the release")
        rc = eng.stop()
        eng.expect_clean_exit(rc)
    finally:
        pg.close()


def test_two_engines_split_the_accounts_they_track(ctx):
    """Scale-out: two engines sharing the database both track every account
    (m2p_accounts_tracked) and own a share each (m2p_accounts_owned): the shares add up to
    the accounts, and each engine owns some."""
    pg = pgserver.PgServer()
    try:
        gdb = pgserver.GameDb.create(pg, "admin_split")
        sim = ctx.start_sim("--payout-interval", "4")
        pgserver.migrate(ctx, gdb)
        gdb.add_players(harness.make_players(6))
        ports = [free_port(), free_port()]
        engines = [ctx.start_engine([], pgserver.engine_settings(
            sim, gdb, ENGINE_ID="split-%d" % i, ADMIN_LISTEN="127.0.0.1:%d" % port))
            for i, port in enumerate(ports)]
        for eng, port in zip(engines, ports):
            wait_listening(eng, port)
        pools = ("cpu-pool", "rplant", "zpool")

        def split():
            scrapes = [scrape(port) for port in ports]
            tracked = [[value(s, "m2p_accounts_tracked", pool=p) for p in pools] for s in scrapes]
            owned = [[value(s, "m2p_accounts_owned", pool=p) for p in pools] for s in scrapes]
            return (tracked == [[6, 6, 6]] * 2
                    and [a + b for a, b in zip(*owned)] == [6, 6, 6]
                    and all(sum(o) > 0 for o in owned)) and (tracked, owned)
        harness.wait_until(split, 40, "the two engines to split 18 accounts", 0.25)
        for eng in engines:
            eng.expect_clean_exit(eng.stop())
    finally:
        pg.close()


def test_reload_needs_the_token_and_it_is_never_shown(ctx):
    port = free_port()
    settings = {"ADMIN_LISTEN": "127.0.0.1:%d" % port, "ADMIN_TOKEN": TOKEN,
                "LOG_LEVEL": "debug"}
    eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(1)], settings)
    wait_listening(eng, port)
    check(request(port, "/reload", "POST")[0] == 401, "POST /reload without a token")
    status, headers, _ = request(port, "/reload", "POST",
                                 {"Authorization": "Bearer " + TOKEN + "x"})
    check(status == 401 and headers.get("WWW-Authenticate") == "Bearer",
          "POST /reload with a wrong token: %d" % status)
    check(request(port, "/reload", "POST", {"Authorization": "Bearer"})[0] == 401,
          "POST /reload with an empty bearer")
    status, _, body = request(port, "/reload", "POST", {"Authorization": "Bearer " + TOKEN})
    check(status == 200 and json.loads(body)["reloaded"] is True,
          "POST /reload with the token: %d %s" % (status, body))
    eng.wait_for(lambda e: e["event"] == "script_reloaded" and e.get("trigger") == "POST /reload",
                 timeout=10, what="script_reloaded")
    s = scrape(port)
    check(value(s, "m2p_script_reloads_total") == 1, "m2p_script_reloads_total is not 1")
    check(value(s, "m2p_script_reload_failures_total") == 0, "reload failures counted")
    # A broken setting in ./.env (read again at reload): the reload answers why, and the
    # running generation stays.
    with open(os.path.join(ctx.tmp, ".env"), "w") as f:
        f.write("POLL_INTERVAL_SECONDS=0\n")
    status, _, body = request(port, "/reload", "POST", {"Authorization": "Bearer " + TOKEN})
    answer = json.loads(body)
    check(status == 500 and answer["reloaded"] is False
          and "POLL_INTERVAL_SECONDS" in answer["error"],
          "POST /reload with a broken .env: %d %s" % (status, body))
    os.remove(os.path.join(ctx.tmp, ".env"))
    s = scrape(port)
    check(value(s, "m2p_script_reloads_total") == 1
          and value(s, "m2p_script_reload_failures_total") == 1,
          "the failed reload is not counted as one failure")

    status, headers, _ = request(port, "/reload")
    check(status == 405 and headers.get("Allow") == "POST", "GET /reload: %d %s" % (status, headers))
    check(request(port, "/metrics", "POST", body=b"")[0] == 405, "POST /metrics is not 405")
    check(request(port, "/nope")[0] == 404, "an unknown path is not 404")
    check(request(port, "/reload", "POST", {"Authorization": "Bearer " + TOKEN},
                  body=b"x" * 100000)[0] == 413, "a 100 kB body is not refused with 413")
    status, _, status_body = request(port, "/status")
    check(status == 200, "/status answered %d" % status)
    metrics_text = request(port, "/metrics")[2]
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    for what, text in (("stdout", "\n".join(e["_raw"] for e in eng.snapshot())),
                       ("stderr", eng.stderr_text()), ("/status", status_body),
                       ("/metrics", metrics_text)):
        check(TOKEN not in text, "the admin token appears in %s" % what)


def test_non_loopback_without_token_refuses_to_start(ctx):
    rc, events, out, err = ctx.run_engine(
        ["--dry-run", "--accounts", ctx.accounts(1)],
        {"ADMIN_LISTEN": "0.0.0.0:%d" % free_port()}, timeout=30)
    check(rc == 1, "the engine started (status %s) on 0.0.0.0 without ADMIN_TOKEN" % rc)
    check(any(e["event"] == "admin_token_missing" for e in events),
          "no admin_token_missing event: %s %s" % (out[-1000:], err[-1000:]))
    rc, events, out, err = ctx.run_engine(
        ["--dry-run", "--accounts", ctx.accounts(1)], {"ADMIN_LISTEN": "127.0.0.1:99999"},
        timeout=30)
    check(rc == 78 and "ADMIN_LISTEN" in out + err,
          "an invalid ADMIN_LISTEN was not refused as a configuration error: %s %s %s"
          % (rc, out[-500:], err[-500:]))



def test_port_in_use_is_logged_and_the_engine_runs_on(ctx):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        eng = ctx.start_engine(["--dry-run", "--accounts", ctx.accounts(1)],
                               {"ADMIN_LISTEN": "127.0.0.1:%d" % port})
        failed = eng.wait_for(lambda e: e["event"] == "admin_listen_failed", timeout=20,
                              what="admin_listen_failed")
        check("Address already in use" in failed["message"] and failed["level"] == "error",
              "admin_listen_failed does not say why: %s" % failed)
        eng.wait_for(lambda e: e["event"] == "engine_started", timeout=20, what="engine_started")
        rc = eng.stop()
        eng.expect_clean_exit(rc)


harness.main(globals())
