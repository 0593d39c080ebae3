"""Issue 9: every committed award reaches every configured receiver, at least once, in award
order per player, with an event_id; whatever is down.

The pool is harness.PAID_POOL_SCRIPT against a PaidServer, so the test decides every payout.
Receivers are real: the official socket.io server from npm (sio_recorder.js), HTTP webhook
receivers that verify signatures, a LISTENing psql; PostgreSQL is a real server.

- Socket.IO end to end (every award once, outage and SIGKILLs): notify_socketio.py.
- test_webhooks_signed_retried_shared: two engines share the database and two webhook URLs:
  one receiver answers 500 first and gets every event afterwards, its signatures verify; the
  other has the wrong secret and reports verification failures; no event is ever being
  delivered to a URL by two requests at once; WEBHOOK_SECRET never appears in any output.
- test_pg_notify_only_committed: NOTIFY payloads equal the events, sent only for committed
  awards (an m2p_commit_poll rolled back sends nothing).
- test_old_events_expire_logged: an event older than NOTIFY_MAX_AGE that no receiver took is
  given up with notification_expired, not dropped silently; newer ones are still delivered.
"""

import json
import time

import harness
import notify_support as ns
import pgserver
from harness import check

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


TOKEN = "sio-token-5d1f0c9a7e"
SECRET = "whsec-3b8e27c1f4"


def setup(ctx, name, n_players=3):
    gdb = pgserver.GameDb.create(pg(), name)
    players = harness.make_players(n_players, zpool=False)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(players)
    pools = ctx.pools_dir({"testpool.lua": harness.PAID_POOL_SCRIPT})
    return gdb, players, pools


def pay(server, players, rounds, start=10, step=1.5, polls=2):
    """`rounds` payouts per player: each wallet's paid counter goes up by `step`, served
    `polls` times (so the award before it was committed) before the next one."""
    for r in range(rounds):
        for p in players:
            value = "%.2f" % (start + step * (r + 1))
            server.set(p["wallet"], value)
        for p in players:
            value = "%.2f" % (start + step * (r + 1))
            harness.wait_until(lambda: server.times_served(p["wallet"], value) >= polls, 60,
                               "%d polls of %s at %s" % (polls, p["wallet"], value))


def baselines(engines, players):
    """Waits until every player's first observation (10) is stored: it awards nothing."""
    pgserver.wait_polls(engines, None, [(p["player_id"], "testpool") for p in players], 2,
                        "the baselines")


def wait_all_notified(gdb, engines, timeout=90):
    def done():
        for e in engines:
            if e.proc.poll() is not None:
                harness.fail("an engine exited (status %s)" % e.proc.returncode)
        return gdb.value("SELECT count(*) FROM mining_events WHERE NOT notified") == "0"
    harness.wait_until(done, timeout, "every mining event notified")


def no_secret(ctx, engines, *secrets):
    for e in engines:
        text = open(e.stdout_path).read() + e.stderr_text()
        for s in secrets:
            check(s not in text, "a secret appears in the engine's output (%s)" % e.stdout_path)


def check_order(arrivals):
    for player, ids in ns.first_arrival_order(arrivals).items():
        check(ids == sorted(ids), "player %s's events arrived out of award order: %s"
              % (player, ids))


def test_webhooks_signed_retried_shared(ctx):
    server = harness.PaidServer()
    good = ns.WebhookReceiver(SECRET, statuses=[500], delay=0.2)
    wrong = ns.WebhookReceiver("not-the-secret")
    try:
        gdb, players, pools = setup(ctx, "notify_webhooks", n_players=4)
        for p in players:
            server.set(p["wallet"], "10")
        settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                            WEBHOOK_URLS="%s,%s" % (good.url, wrong.url),
                                            WEBHOOK_SECRET=SECRET, NOTIFY_TIMEOUT=5)
        engines = [ctx.start_engine([], dict(settings, ENGINE_ID="hook-%d" % i),
                                    pools_dir=pools) for i in range(2)]
        baselines(engines, players)
        pay(server, players, 3)
        want = ns.expected_events(gdb)
        harness.wait_until(lambda: set(ns.expected_events(gdb)) <= set(good.delivered()), 90,
                           "every event delivered to the good receiver")
        want = ns.expected_events(gdb)
        delivered = good.delivered()
        for eid, w in want.items():
            ns.check_event(delivered[eid], w)
        requests = good.all_requests()
        check(requests[0][3] == 500 and requests[0][0] in delivered,
              "the event answered 500 was not delivered later: %s" % requests[:3])
        check(not good.failures, "signatures did not verify: %s" % good.failures[:3])
        check(not good.overlaps, "events delivered to one URL twice at once: %s" % good.overlaps)
        for ev, body, ok, status, headers in requests:
            check(headers.get("X-M2P-Event") == "mining_reward"
                  and headers.get("Content-Type") == "application/json"
                  and body and body["event_id"] == ev,
                  "webhook request headers/body: %s %s" % (headers, body))
        check(wrong.failures and all(f == "signature mismatch" for f in wrong.failures),
              "the receiver with the wrong secret saw no verification failure: %s"
              % wrong.failures[:3])
        check(not wrong.delivered(), "a request verified with the wrong secret")
        check(gdb.value("SELECT count(*) FROM mining_events WHERE notified") == "0",
              "notified must wait for every sink (the wrong-secret URL never took one)")
        check_order([body for ev, body, ok, st, h in requests if ok and 200 <= st < 300])
        for e in engines:
            e.stop()
        no_secret(ctx, engines, SECRET)
    finally:
        server.close()
        good.close()
        wrong.close()


@harness.with_paid_server
def test_pg_notify_only_committed(ctx, server):
    gdb, players, pools = setup(ctx, "notify_pg", n_players=2)
    for p in players:
        server.set(p["wallet"], "10")
    listener = ns.PgListener(gdb, "m2p_rewards")
    try:
        settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                            PG_NOTIFY_CHANNEL="m2p_rewards")
        eng = ctx.start_engine([], settings, pools_dir=pools)
        baselines([eng], players)
        pay(server, players, 2)
        want = ns.expected_events(gdb)
        harness.wait_until(lambda: len(listener.received()) >= len(want), 30,
                           "a NOTIFY per award")
        got = {}
        for text in listener.received():
            ev = json.loads(text, parse_float=ns.Decimal)
            got[ev["event_id"]] = ev
        check(set(got) == set(want), "NOTIFY payloads %s, awards %s" % (sorted(got), sorted(want)))
        for eid, w in want.items():
            ns.check_event(got[eid], w)
        stored = {e: json.loads(p, parse_float=ns.Decimal) for e, p in gdb.sql(
            "SELECT mining_event_id::text, payload::text FROM m2p_outbox")}
        check(stored == got, "the NOTIFY payloads differ from the outbox events")

        # An award whose transaction rolls back sends nothing.
        version, wallet = gdb.sql("SELECT version, wallet FROM m2p_accounts WHERE player_id = 1")[0]
        before = len(listener.received())
        gdb.script("BEGIN;\nSELECT m2p_commit_poll(1, 'testpool', '%s', %s, '{}'::jsonb, 'h',"
                   " NULL, '[{\"key\": \"rolled-back\", \"advc\": \"1\", \"ap\": \"100\","
                   " \"reason\": \"test\", \"previous_paid\": \"0\", \"current_paid\": \"1\"}]',"
                   " 'g', 'm2p_rewards');\nROLLBACK;\n" % (wallet, version))
        gdb.script("SELECT pg_notify('m2p_rewards', '{\"marker\": 1}');")
        harness.wait_until(lambda: any("marker" in t for t in listener.received()), 30,
                           "the marker NOTIFY")
        late = [t for t in listener.received()[before:] if "marker" not in t]
        check(not late, "a rolled-back award was NOTIFYed: %s" % late)
        eng.stop()
    finally:
        listener.close()


@harness.with_paid_server
def test_old_events_expire_logged(ctx, server):
    gdb, players, pools = setup(ctx, "notify_expire", n_players=1)
    server.set(players[0]["wallet"], "10")
    # An award of two days ago whose event nobody took (the engine was not running).
    gdb.script("INSERT INTO mining_events (id, player_id, pool_name, advc_amount, ap_awarded,"
               " event_time, processed, notified, idempotency_key)"
               " VALUES (1000, 1, 'testpool', 1, 100, now() - interval '2 days', true, false,"
               " 'old');\n"
               "SELECT m2p_emit_reward(1000, 1, 'player1', 'testpool', 1, 100, 100, 1, NULL);\n"
               "UPDATE m2p_outbox SET created_at = now() - interval '2 days';\n")
    hook = ns.WebhookReceiver(SECRET)
    try:
        settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                            WEBHOOK_URLS=hook.url, WEBHOOK_SECRET=SECRET,
                                            NOTIFY_MAX_AGE=3600)
        eng = ctx.start_engine([], settings, pools_dir=pools)
        expired = eng.wait_for(lambda e: e["event"] == "notification_expired", 30,
                               "notification_expired")
        check(expired["level"] == "error" and expired["event_id"] == "1000"
              and expired["sink"].startswith("webhook:"),
              "notification_expired should name the event and the sink: %s" % expired["_raw"])
        baselines([eng], players)
        pay(server, players, 1)
        harness.wait_until(lambda: len(hook.delivered()) == 1, 30, "the new award delivered")
        check("1000" not in hook.delivered(), "the expired event was delivered")
        cycle = eng.wait_for(lambda e: e["event"] == "polling_cycle_complete"
                             and e.get("notifications"), 30, "a polling_cycle_complete")
        counts = list(cycle["notifications"].values())
        check(len(counts) == 1 and counts[0]["expired"] == 1 and counts[0]["ready"],
              "polling_cycle_complete should count the expired event: %s" % cycle["_raw"])
        row = gdb.sql("SELECT expired_at IS NOT NULL, delivered_at IS NULL FROM m2p_deliveries"
                      " WHERE outbox_id = (SELECT id FROM m2p_outbox WHERE mining_event_id = 1000)")
        check(row == [("t", "t")], "the expired delivery row: %s" % row)
        check(gdb.value("SELECT notified FROM mining_events WHERE id = 1000") == "f",
              "an expired event must not count as notified")
        eng.stop()
    finally:
        hook.close()


@harness.with_paid_server
def test_backlog_drains_while_polling(ctx, server):
    players_n, per_player = 40, 25
    gdb, players, pools = setup(ctx, "notify_backlog", n_players=players_n)
    for p in players:
        server.set(p["wallet"], "10")
    # Events committed while no engine ran (the ids interleave the players).
    gdb.script("INSERT INTO mining_events (id, player_id, pool_name, advc_amount, ap_awarded,"
               " processed, notified, idempotency_key)"
               " SELECT g, 1 + g %% %d, 'testpool', 1, 100, true, false, 'b' || g"
               " FROM generate_series(1, %d) g;\n"
               "SELECT m2p_emit_reward(id, player_id, 'u', 'testpool', 1, 100, 100, 1, NULL)"
               " FROM mining_events ORDER BY id;\n" % (players_n, players_n * per_player))
    hook = ns.WebhookReceiver(SECRET)
    try:
        settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                            WEBHOOK_URLS=hook.url, WEBHOOK_SECRET=SECRET)
        eng = ctx.start_engine([], settings, pools_dir=pools)
        total = players_n * per_player
        harness.wait_until(lambda: len(hook.delivered()) == total, 120,
                           "the backlog of %d events delivered" % total)
        drained = time.monotonic()
        check(len(hook.all_requests()) == total, "events delivered more than once")
        polls = len(eng.named("pool_poll_success"))
        check(polls >= players_n, "polling starved while the backlog drained: %d polls" % polls)
        order = ns.first_arrival_order([b for _, b, _, _, _ in hook.all_requests()])
        for player, ids in order.items():
            check(ids == sorted(ids), "player %s out of order: %s" % (player, ids[:10]))
        note = "backlog of %d drained, %d polls meanwhile" % (total, polls)
        harness.note(note)
        del drained
        eng.stop()
    finally:
        hook.close()


if __name__ == "__main__":
    harness.main(globals())
