"""Issue 12: notifier faults. Receivers that are down, slow or answer garbage lose nothing:
the outbox keeps every award, retries it, and delivers it once the receiver is back.

One engine (PostgreSQL, harness.PAID_POOL_SCRIPT against a PaidServer, 6 players) notifies
two sinks at once, NOTIFY_TIMEOUT=1:

- a webhook (notify_support.FaultyWebhook): down (connection refused) when the awards are
  made, then back with one fault per request: reset after the request, non-HTTP bytes,
  "HTTP/1.1 200 OK" cut inside the headers, HTTP 500, a 200 after 2.5 s (past the timeout);
  then well-behaved;
- Socket.IO: down (connection refused), then a server that accepts the session and the
  namespace and answers the polls with junk packets (socketio_server.js garbage: invalid
  bytes, unknown packet types, binary, broken JSON, a second open packet), then the official
  socket.io server from npm on the same URL (sio_recorder.js).

Checked: every fault was served and the engine logged the failed attempts
(notification_failed, socketio reconnects with the reason); afterwards every award's
event_id arrived at both sinks with its own fields, each confirmed webhook delivery was a
complete 200 (an answer cut inside the headers is not a delivery: the event comes again),
and every mining_events row is notified. Repeats by event_id are allowed (at least once).
About 15 s.
"""

import json
import os

import harness
import notify_support as ns
import pgserver
from harness import check
from notify_delivery import TOKEN, SECRET, baselines, pay, setup, wait_all_notified

WEBHOOK_FAULTS = ["reset", "garbage", "cut200", "500", "slow"]
PLAYERS = 6                  # one request per player and wave: every fault in the first wave


def start_junk_sio(ctx, port):
    env = dict(os.environ, SIO_TOKEN=TOKEN, SIO_PORT=str(port))
    junk = harness.LineProcess(ctx, ["node", os.path.join(ns.HERE, "socketio_server.js"),
                                     "garbage"], env, "sio-junk")
    junk.wait_line(lambda l: "listening" in l, 30, "socketio_server.js garbage")
    return junk


def failures(eng, sink):
    return [e for e in eng.named("notification_failed") if e.get("sink", "").startswith(sink)]


@harness.with_paid_server
def test_receivers_down_slow_garbage_lose_nothing(ctx, server):
    gdb, players, pools = setup(ctx, "notify_faults", n_players=PLAYERS)
    for p in players:
        server.set(p["wallet"], "10")
    hook = ns.FaultyWebhook(SECRET)
    sio_port = ns.FaultyWebhook(SECRET).port      # a free port, nothing listening yet
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID="faults",
                                        WEBHOOK_URLS=hook.url, WEBHOOK_SECRET=SECRET,
                                        SOCKETIO_URL="http://127.0.0.1:%d" % sio_port,
                                        SOCKETIO_AUTH=json.dumps({"token": TOKEN}),
                                        NOTIFY_TIMEOUT=1)
    eng = ctx.start_engine([], settings, pools_dir=pools)
    baselines([eng], players)
    pay(server, players, 1)                        # both receivers down
    eng.wait_for(lambda e: e["event"] == "notification_failed", 10,
                 "a refused webhook attempt")
    eng.wait_for(lambda e: e["event"] == "socketio_connect_failed", 10,
                 "a refused Socket.IO handshake")

    hook.listen(WEBHOOK_FAULTS)
    junk = start_junk_sio(ctx, sio_port)
    harness.wait_until(lambda: {a for a, _, _, _ in hook.answers()} >= set(WEBHOOK_FAULTS), 30,
                       "every webhook fault served")
    hook.faults = []
    junk.wait_line(lambda l: '"POST post"' in l, 30, "a POST to the junk Socket.IO server")
    eng.wait_for(lambda e: e["event"] == "socketio_disconnected"
                 and "malformed" in e.get("reason", ""), 30, "a junk packet ending the session")
    junk.stop()
    sio = ns.SioServer(ctx, TOKEN, port=sio_port)

    wait_all_notified(gdb, [eng], timeout=60)
    n = int(gdb.value("SELECT count(*) FROM mining_events"))
    check(n == PLAYERS, "expected %d awards, got %d" % (PLAYERS, n))
    harness.wait_until(lambda: len(sio.ids()) >= n, 10, "the Socket.IO server's records")
    check(failures(eng, "webhook"), "no failed webhook attempt was logged")
    cut = {ev for a, ev, _, _ in hook.answers() if a == "cut200"}
    check(cut <= {b["event_id"] for b in hook.confirmed() if b},
          "events answered with a 200 cut inside its headers were never delivered again "
          "(counted as delivered): %s" % sorted(cut))
    repeats = ns.check_each_award_delivered(
        gdb, {"webhook": hook.confirmed(), "socketio": [ev for _, ev in sio.events()]})
    harness.note("answers %s; repeats %s" % ([a for a, _, _, _ in hook.answers()], repeats))
    attempts = gdb.sql("SELECT sink, sum(attempts) FROM m2p_deliveries GROUP BY sink")
    harness.note("attempts per sink: %s" % attempts)
    rc = eng.stop()
    eng.expect_clean_exit(rc)
    sio.stop()
    hook.close()


if __name__ == "__main__":
    harness.main(globals())
