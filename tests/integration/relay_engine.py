"""Issue 9: the real engine's awards reach the players' rooms through the relay example.

A real PostgreSQL (pgserver.py), the pool simulator paying on its manual clock, the engine
with SOCKETIO_URL / SOCKETIO_AUTH pointed at examples/socketio-relay/server.js (the official
`socket.io` server), and players' socket.io-client connections in their rooms:

- every award (a mining_events row) reaches each client of the room player_<id> exactly once,
  with the fields of the issue and the values of its row; no other room gets it; each is
  acked (mining_events.notified turns true only on the ack) and logged once by the relay;
- the engine token appears in no log line of the engine or the relay;
- an engine with a wrong token is refused (connect_error "unauthorized", logged by the
  engine as socketio_connect_refused): nothing is relayed, no award counts as notified.

"No other room" is checked without waiting for silence: once everything is delivered, a
socket.io-client with the token sends each room a last event; a client's events arrive in
order on its connection, so anything meant for another room would have come before it.
"""

import json
from decimal import Decimal

import harness
import pgserver
import relay_helpers
from harness import check
from relay_helpers import Client, Relay

PLAYERS = 3
STEPS = (25, 40, 30)
FIELDS = {"event_id", "player_id", "username", "pool", "advc_amount", "ap_awarded",
          "total_ap", "total_advc_mined", "timestamp", "room"}


def awards(gdb):
    """{event_id: row} of mining_events, with the player's username."""
    rows = gdb.sql("SELECT e.id, e.player_id, p.username, e.pool_name, e.advc_amount::text,"
                   " e.ap_awarded::text, e.notified FROM mining_events e"
                   " JOIN players p ON p.id = e.player_id")
    return {r[0]: {"player_id": int(r[1]), "username": r[2], "pool": r[3],
                   "advc": Decimal(r[4]), "ap": Decimal(r[5]), "notified": r[6] == "t"}
            for r in rows}


def as_decimal(event, field):
    return Decimal(json.dumps(event[field]))


def field_problems(ev, row):
    """What differs between a received event and its mining_events row (empty = fine)."""
    out = []
    if set(ev) != FIELDS:
        out.append("fields %s" % sorted(set(ev) ^ FIELDS))
        return out
    want = {"player_id": row["player_id"], "username": row["username"], "pool": row["pool"],
            "room": "player_%d" % row["player_id"]}
    out += ["%s %r != %r" % (k, ev[k], v) for k, v in want.items() if ev[k] != v]
    if as_decimal(ev, "advc_amount") != row["advc"]:
        out.append("advc_amount %s != %s" % (ev["advc_amount"], row["advc"]))
    if as_decimal(ev, "ap_awarded") != row["ap"]:
        out.append("ap_awarded %s != %s" % (ev["ap_awarded"], row["ap"]))
    try:
        harness.parse_timestamp(ev["timestamp"])
        check(ev["timestamp"].endswith("Z"), "")
    except (harness.TestFailure, ValueError, AttributeError):
        out.append("timestamp %r" % ev["timestamp"])
    return out


def totals_problems(events, totals):
    """A player's events, in the order of their totals, add up: each total_* is the previous
    one plus this award, from 0, ending at the player's stored totals (after the award, taken
    in its transaction)."""
    ordered = sorted(events, key=lambda e: as_decimal(e, "total_advc_mined"))
    advc = ap = Decimal(0)
    for e in ordered:
        advc += as_decimal(e, "advc_amount")
        ap += as_decimal(e, "ap_awarded")
        if (as_decimal(e, "total_advc_mined"), as_decimal(e, "total_ap")) != (advc, ap):
            return "event %s: totals %s / %s, the awards add up to %s / %s" % (
                e["event_id"], e["total_advc_mined"], e["total_ap"], advc, ap)
    if (advc, ap) != (Decimal(totals[0]), Decimal(totals[1])):
        return "the last totals %s / %s differ from the player's %s" % (advc, ap, totals)
    return None


def run_payouts(ctx, gdb, sim, players, eng):
    accounts = pgserver.accounts_of(players)
    pgserver.wait_polls([eng], None, accounts, 2, "the baseline of every account")
    for i, step in enumerate(STEPS):
        since = pgserver.marks([eng])
        sim.advance(step)
        pgserver.wait_polls([eng], since, accounts, 2, "two polls after step %d" % (i + 1))
    rows = awards(gdb)
    check(len({r["player_id"] for r in rows.values()}) == PLAYERS,
          "the simulator should have paid every player: %d awards" % len(rows))
    return rows


def test_every_award_reaches_its_room_once(ctx):
    relay_helpers.require_node()
    pg = pgserver.PgServer()
    try:
        check_awards_reach_rooms(ctx, pg)
    finally:
        relay_helpers.close_all(ctx)
        pg.close()


def check_awards_reach_rooms(ctx, pg):
    gdb = pgserver.GameDb.create(pg, "relay")
    pgserver.migrate(ctx, gdb)
    players = harness.make_players(PLAYERS)
    gdb.add_players(players)
    token = relay_helpers.new_token()
    relay = Relay(ctx, token)
    clients = [Client(ctx, relay.url, join=1, name="player-1a"),
               Client(ctx, relay.url, join=1, name="player-1b")]
    clients += [Client(ctx, relay.url, join=i) for i in range(2, PLAYERS + 2)]  # + nobody's
    for c in clients:
        c.wait_ready()

    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "9")
    eng = ctx.start_engine([], pgserver.engine_settings(
        sim, gdb, SOCKETIO_URL=relay.url, SOCKETIO_AUTH=json.dumps({"token": token})))
    eng.wait_for(lambda e: e["event"] == "socketio_connected", 60, "the engine to connect")
    rows = run_payouts(ctx, gdb, sim, players, eng)
    harness.note("%d awards" % len(rows))

    harness.wait_until(lambda: all(r["notified"] for r in awards(gdb).values()), 60,
                       "every award to be acked (mining_events.notified)")
    for c in clients:
        for event_id, row in rows.items():
            if row["player_id"] == c.join:
                c.wait_reward(event_id)
    fake = Client(ctx, relay.url, token=token, polling=True, name="last-events").wait_ready()
    last = {}
    for i, pid in enumerate(sorted({c.join for c in clients})):
        last[pid] = {"event_id": "last-%d" % pid, "player_id": pid}
        fake.emit(i, last[pid])
    for c in clients:
        c.wait_reward(last[c.join]["event_id"])

    totals = gdb.totals()
    for c in clients:
        got = [r for r in c.rewards() if r["event_id"] != last[c.join]["event_id"]]
        ids = [r["event_id"] for r in got]
        want = sorted(i for i, r in rows.items() if r["player_id"] == c.join)
        check(sorted(ids) == want, "%s should get each award of player %d once, and only "
              "those: got %s, want %s" % (c.name, c.join, sorted(ids), want))
        bad = {r["event_id"]: field_problems(r, rows[r["event_id"]]) for r in got}
        bad = {k: v for k, v in bad.items() if v}
        check(not bad, "%s: events differ from their mining_events rows: %s" % (c.name, bad))
        if got:
            problem = totals_problems(got, totals[c.join])
            check(problem is None, "%s: %s" % (c.name, problem))
    relay.wait_relayed(rows)
    relayed = relay.relayed()
    twice = {k: v for k, v in relayed.items() if k in rows and len(v) != 1}
    check(not twice, "the relay relayed these more than once: %s" % twice)

    eng.expect_clean_exit(eng.stop())
    logs = "\n".join(relay.snapshot()) + harness.read_text(relay.stderr_path)
    logs += harness.read_text(eng.stdout_path) + eng.stderr_text()
    check(token not in logs, "the engine token appears in a log line")


def test_wrong_token_is_refused_and_nothing_delivered(ctx):
    relay_helpers.require_node()
    pg = pgserver.PgServer()
    try:
        check_wrong_token(ctx, pg)
    finally:
        relay_helpers.close_all(ctx)
        pg.close()


def check_wrong_token(ctx, pg):
    gdb = pgserver.GameDb.create(pg, "relay_refused")
    pgserver.migrate(ctx, gdb)
    players = harness.make_players(PLAYERS)
    gdb.add_players(players)
    token, wrong = relay_helpers.new_token(), relay_helpers.new_token()
    relay = Relay(ctx, token)
    player = Client(ctx, relay.url, join=1).wait_ready()
    sim = ctx.start_sim("--clock", "manual", "--payout-interval", "10", "--seed", "9")
    eng = ctx.start_engine([], pgserver.engine_settings(
        sim, gdb, SOCKETIO_URL=relay.url, SOCKETIO_AUTH=json.dumps({"token": wrong})))
    refused = eng.wait_for(lambda e: e["event"] == "socketio_connect_refused", 60,
                           "the engine to log the refused connection")
    check(refused.get("message") == "unauthorized",
          "the engine should log the server's message 'unauthorized': %s" % refused["_raw"])
    rows = run_payouts(ctx, gdb, sim, players, eng)
    check(not any(r["notified"] for r in rows.values()),
          "an award was marked notified although the relay refused the engine")
    check(not eng.named("socketio_connected"), "the engine connected with a wrong token")

    fake = Client(ctx, relay.url, token=token, polling=True, name="last-event").wait_ready()
    fake.emit(1, {"event_id": "last-1", "player_id": 1})
    player.wait_reward("last-1")
    check([r["event_id"] for r in player.rewards()] == ["last-1"],
          "player 1 got events from a refused engine: %s" % player.rewards())
    relay.wait_relayed(["last-1"])
    check(set(relay.relayed()) == {"last-1"}, "the relay relayed %s" % sorted(relay.relayed()))

    eng.expect_clean_exit(eng.stop())
    logs = "\n".join(relay.snapshot()) + harness.read_text(relay.stderr_path)
    logs += harness.read_text(eng.stdout_path) + eng.stderr_text()
    check(token not in logs and wrong not in logs, "a token appears in a log line")


harness.main(globals())
