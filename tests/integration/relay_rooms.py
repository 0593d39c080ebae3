"""Issue 9: the relay example (examples/socketio-relay/server.js, the official `socket.io`
server) delivers each mining_reward to the room player_<id> and to no other, acks it to the
emitter, and takes mining_reward only from the engine's token.

The emitter here is socket.io-client on long-polling, as the engine speaks it (relay_engine.py
does the same with the real engine); the players are socket.io-client in their rooms.
"No other room" is checked without waiting for silence: after the events, each player gets a
last event of its own; a player's events arrive in order on its connection, so anything meant
for another room would have reached it before its own last one.
"""

import harness
import relay_helpers
from harness import check
from relay_helpers import Client, Relay


def reward(event_id, player_id, ap=550):
    """An event with the fields of the issue."""
    return {"event_id": str(event_id), "player_id": player_id, "username": "player%d" % player_id,
            "pool": "cpu-pool", "advc_amount": 5.5, "ap_awarded": ap, "total_ap": 12345.5,
            "total_advc_mined": 123.45, "timestamp": "2024-01-15T10:30:00.000Z",
            "room": "player_%d" % player_id}


def with_relay(fn):
    def test(ctx):
        relay_helpers.require_node()
        try:
            fn(ctx)
        finally:
            relay_helpers.close_all(ctx)
    test.__name__ = fn.__name__
    return test


def emit_and_ack(engine, events, first_seq=1):
    for i, ev in enumerate(events):
        engine.emit(first_seq + i, ev)
    for i in range(len(events)):
        engine.wait_ack(first_seq + i)


def finish_with_last_events(engine, players, seq):
    """Sends each player a last event of its own and waits until every client has it."""
    last = {}
    for c in players:
        if c.join not in last:
            last[c.join] = reward("last-%d" % c.join, c.join)
    emit_and_ack(engine, list(last.values()), seq)
    for c in players:
        c.wait_reward(last[c.join]["event_id"])
    return last


def no_token_in(relay, token):
    text = "\n".join(relay.snapshot()) + harness.read_text(relay.stderr_path)
    return token not in text


@with_relay
def test_each_reward_reaches_its_room_only(ctx):
    token = relay_helpers.new_token()
    relay = Relay(ctx, token)
    # two tabs of player 1, one of player 2, player 3 gets nothing but its last event
    players = [Client(ctx, relay.url, join=1, name="player-1a"),
               Client(ctx, relay.url, join=1, name="player-1b"),
               Client(ctx, relay.url, join=2), Client(ctx, relay.url, join=3)]
    for c in players:
        c.wait_ready()
    engine = Client(ctx, relay.url, token=token, polling=True).wait_ready()

    events = [reward(100 + i, 1 if i % 3 else 2, ap=10 * i) for i in range(12)]
    emit_and_ack(engine, events)
    last = finish_with_last_events(engine, players, 100)

    for c in players:
        want = [e for e in events if e["player_id"] == c.join] + [last[c.join]]
        got = c.rewards()
        check(got == want, "%s (room player_%d) should get exactly its events, in order, "
              "unchanged: got %s, want %s" % (c.name, c.join, [g.get("event_id") for g in got],
                                             [w["event_id"] for w in want]))
    acks = engine.acks()
    check(sorted(acks) == sorted(list(range(1, 13)) + [100, 101, 102]),
          "every emit should be acked exactly once: %s" % acks)
    relay.wait_relayed(e["event_id"] for e in events)
    relayed = relay.relayed()
    for e in events:
        check(relayed.get(e["event_id"]) == [e["room"]],
              "the relay should log event %s once, to %s: %s"
              % (e["event_id"], e["room"], relayed.get(e["event_id"])))
    check(no_token_in(relay, token), "the relay's log shows the engine token")


@with_relay
def test_wrong_token_is_refused(ctx):
    token = relay_helpers.new_token()
    wrong = relay_helpers.new_token()
    relay = Relay(ctx, token)
    player = Client(ctx, relay.url, join=1).wait_ready()

    impostor = Client(ctx, relay.url, token=wrong, polling=True, name="impostor")
    line = impostor.wait_line(lambda l: "connect_error" in l or "connected" in l,
                              "the wrong token to be answered")
    check(line.get("connect_error") == "unauthorized",
          "a wrong engine token should get connect_error 'unauthorized': %s" % line)
    impostor.emit(1, reward("forged-1", 1))  # buffered by a client that never connects
    relay.wait_line(lambda l: "wrong engine token" in l, "the relay to log the refusal")

    # a connection without a token is a player's: its mining_reward is not relayed
    forger = Client(ctx, relay.url, join=2, name="tokenless").wait_ready()
    forger.emit(1, reward("forged-2", 1))
    relay.wait_line(lambda l: "without the engine token" in l, "the relay to ignore it")

    engine = Client(ctx, relay.url, token=token, polling=True).wait_ready()
    finish_with_last_events(engine, [player], 1)
    got = [r["event_id"] for r in player.rewards()]
    check(got == ["last-1"], "forged events reached player 1: %s" % got)
    check(not impostor.acks() and not forger.acks(), "a forged event was acked")
    relay.wait_relayed(["last-1"])
    check(set(relay.relayed()) == {"last-1"}, "the relay relayed: %s" % relay.relayed())
    check(no_token_in(relay, token) and no_token_in(relay, wrong),
          "the relay's log shows a token")


@with_relay
def test_malformed_reward_is_neither_relayed_nor_acked(ctx):
    token = relay_helpers.new_token()
    relay = Relay(ctx, token)
    player = Client(ctx, relay.url, join=1).wait_ready()
    engine = Client(ctx, relay.url, token=token, polling=True).wait_ready()

    bad = [dict(reward("bad-1", 1), player_id="1"), dict(reward("bad-2", 1), player_id=0),
           dict(reward("bad-3", 1), player_id=1.5), [reward("bad-4", 1)], "text", None]
    for i, b in enumerate(bad):
        engine.emit(i + 1, b)
    # acks come back in emit order on one connection: once the good one's is in, a bad
    # one's would have been too
    emit_and_ack(engine, [reward("good", 1)], 50)
    player.wait_reward("good")
    check(engine.acks() == [50], "malformed events were acked: %s" % engine.acks())
    check([r["event_id"] for r in player.rewards()] == ["good"],
          "malformed events were relayed: %s" % player.rewards())
    rejected = [l for l in relay.snapshot() if "rejected a mining_reward" in l]
    check(len(rejected) == len(bad), "each malformed event should be logged once: %s" % rejected)


harness.main(globals())
