"""Issue 9: every award reaches the official socket.io server from npm, acked, in award order
per player, whatever is down (the helpers and the pool are notify_delivery.py's).

- test_socketio_every_award_once: every award arrives at the Socket.IO server with the
  event's fields (totals after the award, room, ISO timestamp), acked: m2p_deliveries and
  m2p_outbox settled, mining_events.notified true; per player in award order; the
  SOCKETIO_AUTH token never appears in the engine's output.
- test_socketio_outage_and_kills: the Socket.IO server is down for 30 s while payouts go on
  and the engine is SIGKILLed twice; afterwards every award has arrived, in order per player.
"""

import json
import signal
import time

import harness
import notify_support as ns
import pgserver
from harness import check
from notify_delivery import (TOKEN, baselines, check_order, no_secret, pay, setup,
                             wait_all_notified)


@harness.with_paid_server
def test_socketio_every_award_once(ctx, server):
    gdb, players, pools = setup(ctx, "notify_sio")
    for p in players:
        server.set(p["wallet"], "10")
    sio = ns.SioServer(ctx, TOKEN)
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url, ENGINE_ID="sio",
                                        SOCKETIO_URL=sio.url,
                                        SOCKETIO_AUTH=json.dumps({"token": TOKEN}))
    eng = ctx.start_engine([], settings, pools_dir=pools)
    eng.wait_for(lambda e: e["event"] == "socketio_connected", 30, "socketio_connected")
    baselines([eng], players)
    pay(server, players, 3)
    wait_all_notified(gdb, [eng])

    want = ns.expected_events(gdb)
    check(len(want) == 3 * len(players), "expected 9 awards, got %d" % len(want))
    got = {}
    for _, ev in sio.events():
        check(ev["event_id"] not in got, "event %s arrived twice without an engine restart"
              % ev["event_id"])
        got[ev["event_id"]] = ev
    check(set(got) == set(want), "events received %s, awards %s" % (sorted(got), sorted(want)))
    for eid, w in want.items():
        ns.check_event(got[eid], w)
    check_order([ev for _, ev in sio.events()])
    pending = gdb.value("SELECT count(*) FROM m2p_deliveries WHERE sink = 'socketio'"
                        " AND delivered_at IS NULL")
    unsettled = gdb.value("SELECT count(*) FROM m2p_outbox WHERE delivered_at IS NULL")
    check(pending == "0" and unsettled == "0",
          "deliveries pending %s, outbox rows unsettled %s" % (pending, unsettled))
    eng.stop()
    sio.stop()
    no_secret(ctx, [eng], TOKEN)


@harness.with_paid_server
def test_socketio_outage_and_kills(ctx, server):
    gdb, players, pools = setup(ctx, "notify_outage")
    for p in players:
        server.set(p["wallet"], "10")
    sio = ns.SioServer(ctx, TOKEN)
    settings = pgserver.engine_settings(None, gdb, TESTPOOL_URL=server.url,
                                        SOCKETIO_URL=sio.url, NOTIFY_TIMEOUT=2,
                                        SOCKETIO_AUTH=json.dumps({"token": TOKEN}))
    engines = [ctx.start_engine([], settings, pools_dir=pools)]
    baselines(engines, players)
    pay(server, players, 1)
    wait_all_notified(gdb, engines)

    sio.stop()
    down = time.monotonic()
    start = 20
    for kill in range(2):
        pay(server, players, 2, start=start)
        start += 3
        engines[-1].proc.send_signal(signal.SIGKILL)
        engines[-1].proc.wait(timeout=10)
        engines.append(ctx.start_engine([], settings, pools_dir=pools))
    pay(server, players, 1, start=start)
    awards = int(gdb.value("SELECT count(*) FROM mining_events"))
    check(awards >= len(players) * 6, "only %d awards were made during the outage" % awards)
    check(not sio.ids() - {e for e, in gdb.sql("SELECT id::text FROM mining_events")},
          "the server received events that are no awards")
    while time.monotonic() - down < 30:
        time.sleep(0.5)
    sio.start()
    wait_all_notified(gdb, engines[-1:], timeout=120)

    want = ns.expected_events(gdb)
    arrivals = [ev for _, ev in sio.events()]
    check(set(want) == {ev["event_id"] for ev in arrivals},
          "after the outage, missing: %s" % sorted(set(want) - sio.ids()))
    for ev in arrivals:
        ns.check_event(ev, want[ev["event_id"]])  # a repeat is the same event, same id
    check_order(arrivals)
    engines[-1].stop()
    sio.stop()
    no_secret(ctx, engines, TOKEN)


if __name__ == "__main__":
    harness.main(globals())
