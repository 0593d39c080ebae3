"""Issue 9: the outbox's claim rules, called directly in a real PostgreSQL (the engine's
delivery workers only call these functions; engine/migrations/007_notifications.sql).

- test_one_event_per_player_in_order: a sink is handed only each player's oldest undelivered
  event; the next one after it is delivered; a player whose event failed (retry later) holds
  back only that player.
- test_lease_excludes_then_expires: an event leased to one engine is not handed to another
  until the lease runs out (a killed engine's claims are taken over), and
  m2p_release_deliveries hands an engine's claims back at once.
- test_settled_when_every_sink_is_done: m2p_outbox.delivered_at and mining_events.notified
  wait for every configured sink; a sink that expired an event settles the outbox row but
  notified stays false.
- test_old_events_are_expired_not_claimed: an event older than the maximum age is never handed
  out; m2p_expire_deliveries returns it once (the engine logs it) and never again.
"""

import time

import harness
import pgserver
from harness import check

_pg = None


def pg():
    global _pg
    if _pg is None:
        _pg = pgserver.PgServer()
    return _pg


SINKS = '\'["a", "b"]\''


def database(ctx, name, events):
    """A migrated database with players 1-3 and `events` [(event id, player id)] awarded (each
    with its outbox row) in that order."""
    gdb = pgserver.GameDb.create(pg(), name)
    pgserver.migrate(ctx, gdb)
    gdb.add_players(harness.make_players(3, zpool=False))
    text = ""
    for eid, player in events:
        text += ("INSERT INTO mining_events (id, player_id, pool_name, advc_amount, ap_awarded,"
                 " processed, notified, idempotency_key) VALUES (%d, %d, 'p', 1, 100, true,"
                 " false, 'k%d');\n" % (eid, player, eid))
        text += ("SELECT m2p_emit_reward(%d, %d, 'u', 'p', 1, 100, 100, 1, NULL);\n"
                 % (eid, player))
    gdb.script(text)
    return gdb


def claim(gdb, sink="a", owner="e1", lease=60, limit=100, max_age=86400):
    rows = gdb.sql("SELECT event_id FROM m2p_claim_deliveries('%s', '%s', %s, %d, %s)"
                   % (sink, owner, lease, limit, max_age))
    return sorted(int(r[0]) for r in rows)


def outbox_id(gdb, eid):
    return gdb.value("SELECT id FROM m2p_outbox WHERE mining_event_id = %d" % eid)


def done(gdb, eid, sink="a", sinks=SINKS):
    return gdb.value("SELECT m2p_delivery_done('%s', %s, %s)" % (sink, outbox_id(gdb, eid), sinks))


def failed(gdb, eid, retry, sink="a"):
    gdb.sql("SELECT m2p_delivery_failed('%s', %s, 'HTTP 500', %s)"
            % (sink, outbox_id(gdb, eid), retry))


def test_one_event_per_player_in_order(ctx):
    gdb = database(ctx, "claims_order", [(1, 1), (2, 2), (3, 1), (4, 2), (5, 1), (6, 3)])
    check(claim(gdb) == [1, 2, 6], "the oldest event of each player first")
    check(claim(gdb) == [], "events already claimed, or behind a claimed one, were handed out")
    check(done(gdb, 1) == "t", "delivering event 1")
    check(claim(gdb) == [3], "after player 1's first event, its second (and only that)")
    failed(gdb, 3, 3600)
    check(done(gdb, 2) == "t" and done(gdb, 6) == "t", "delivering events 2 and 6")
    check(claim(gdb) == [4], "player 1's failed event held back player 2 (or was retried early)")
    check(claim(gdb, sink="b") == [1, 2, 6], "sink b is independent of sink a")
    check(done(gdb, 1) == "f", "a second delivery of the same event changed a delivered row")


def test_lease_excludes_then_expires(ctx):
    gdb = database(ctx, "claims_lease", [(1, 1), (2, 2)])
    check(claim(gdb, owner="e1", lease=1.5) == [1, 2], "first claim")
    check(claim(gdb, owner="e2") == [], "another engine got events leased to e1")
    time.sleep(2)
    check(claim(gdb, owner="e2", lease=60) == [1, 2], "e1's lease ran out: e2 takes over")
    gdb.sql("SELECT m2p_release_deliveries('e2')")
    check(claim(gdb, owner="e3") == [1, 2], "released claims are claimable at once")
    attempts = gdb.sql("SELECT attempts FROM m2p_deliveries ORDER BY outbox_id")
    check(attempts == [("3",), ("3",)], "every claim is an attempt: %s" % attempts)


def test_settled_when_every_sink_is_done(ctx):
    gdb = database(ctx, "claims_settle", [(1, 1), (2, 2)])
    claim(gdb, sink="a")
    claim(gdb, sink="b")
    done(gdb, 1, sink="a")
    row = gdb.sql("SELECT o.delivered_at IS NULL, e.notified FROM m2p_outbox o"
                  " JOIN mining_events e ON e.id = o.mining_event_id WHERE e.id = 1")
    check(row == [("t", "f")], "settled before sink b had it: %s" % row)
    done(gdb, 1, sink="b")
    row = gdb.sql("SELECT o.delivered_at IS NULL, e.notified FROM m2p_outbox o"
                  " JOIN mining_events e ON e.id = o.mining_event_id WHERE e.id = 1")
    check(row == [("f", "t")], "not settled after both sinks: %s" % row)
    # Event 2: delivered to a, expired for b -> settled, not notified.
    done(gdb, 2, sink="a")
    gdb.sql("UPDATE m2p_deliveries SET created_at = now() - interval '2 days',"
            " lease_until = NULL WHERE sink = 'b'")
    expired = gdb.sql("SELECT event_id FROM m2p_expire_deliveries('b', 3600, %s)" % SINKS)
    check(expired == [("2",)], "expired: %s" % expired)
    row = gdb.sql("SELECT o.delivered_at IS NULL, e.notified FROM m2p_outbox o"
                  " JOIN mining_events e ON e.id = o.mining_event_id WHERE e.id = 2")
    check(row == [("f", "f")], "an expired sink: settled but not notified expected: %s" % row)


def test_old_events_are_expired_not_claimed(ctx):
    gdb = database(ctx, "claims_expire", [(1, 1), (2, 1)])
    gdb.sql("UPDATE m2p_outbox SET created_at = now() - interval '2 hours'"
            " WHERE mining_event_id = 1")
    check(claim(gdb, max_age=3600) == [], "an event older than max age was handed out (or "
          "the player's next one before it was given up)")
    expired = gdb.sql("SELECT event_id, attempts FROM m2p_expire_deliveries('a', 3600, %s)"
                      % SINKS)
    check(expired == [("1", "0")], "expired: %s" % expired)
    check(gdb.sql("SELECT event_id FROM m2p_expire_deliveries('a', 3600, %s)" % SINKS) == [],
          "an expired event was returned twice (logged twice)")
    check(claim(gdb, max_age=3600) == [2], "the player's next event after the expired one")


if __name__ == "__main__":
    harness.main(globals())
