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
- test_sink_of_another_engine_holds_settling: a sink registered by another engine (m2p_sinks)
  holds back settling until it has the event (engines configured differently for a while).
- test_old_events_are_expired_not_claimed: an event older than the maximum age is never handed
  out; m2p_expire_deliveries returns it once (the engine logs it) and never again.
- test_stale_failure_keeps_the_takeover: an engine whose lease ran out reports a failure late;
  the engine that took the event over keeps its claim (no third engine carries it meanwhile).
- test_expiry_and_late_done_do_not_deadlock: a sweep of old events and the delivery_done of one
  of them whose lease ran out (it holds the outbox row) both finish.
- test_old_style_row_keeps_player_order: an outbox row written the pre-migration-7 way (an
  engine of the previous version whose commit was blocked on the migration) still waits
  behind the player's older event and gets the room.
- test_released_award_ids_follow_delivery_order: a held award released while a commit of
  the same player's other pool waits for the player's row: the event delivered first has the
  lower event id.
"""

import threading
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


def failed(gdb, eid, retry, sink="a", owner="e1"):
    gdb.sql("SELECT m2p_delivery_failed('%s', %s, 'HTTP 500', %s, '%s')"
            % (sink, outbox_id(gdb, eid), retry, owner))


def in_background(gdb, text):
    """Runs a SQL script on its own connection; join() the thread, then read out/err."""
    t = threading.Thread(daemon=True)
    t.out, t.err = None, None

    def run():
        try:
            t.out = gdb.script(text)
        except Exception as e:  # noqa: BLE001 - reported by the test
            t.err = str(e)
    t.run = run
    t.start()
    return t


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


def test_stale_failure_keeps_the_takeover(ctx):
    gdb = database(ctx, "claims_stale_failure", [(1, 1)])
    check(claim(gdb, owner="e1", lease=1) == [1], "first claim")
    time.sleep(1.5)
    check(claim(gdb, owner="e2", lease=60) == [1], "e1's lease ran out: e2 takes over")
    failed(gdb, 1, 0, owner="e1")  # e1's attempt fails late
    row = gdb.sql("SELECT lease_owner, last_error FROM m2p_deliveries")
    check(row == [("e2", None)], "e1's late failure changed e2's claim: %s" % row)
    check(claim(gdb, owner="e3") == [], "a third engine got an event e2 is carrying")
    failed(gdb, 1, 3600, owner="e2")
    check(gdb.sql("SELECT lease_owner, last_error FROM m2p_deliveries") == [(None, "HTTP 500")],
          "the holder's failure was not recorded")


def test_expiry_and_late_done_do_not_deadlock(ctx):
    gdb = database(ctx, "claims_expiry_deadlock", [(i, i % 3 + 1) for i in range(1, 201)])
    gdb.sql("SELECT count(*) FROM m2p_claim_deliveries('a', 'e1', 60, 1000, 86400)")
    gdb.sql("UPDATE m2p_deliveries SET created_at = now() - interval '2 days',"
            " lease_until = now() - interval '1 second'")
    last = outbox_id(gdb, 200)
    # e1's delivery_done of the last event: its first step (the outbox row lock) has run
    # when the sweep starts, its second (the delivery row) comes after.
    done_tx = in_background(gdb, "BEGIN;\n"
                            "SELECT 1 FROM m2p_outbox WHERE id = %s FOR UPDATE;\n"
                            "SELECT pg_sleep(1.5);\n"
                            "SELECT m2p_delivery_done('a', %s, %s);\n"
                            "COMMIT;\n" % (last, last, SINKS))
    time.sleep(0.5)
    sweep = in_background(gdb, "SELECT count(*) FROM m2p_expire_deliveries('a', 3600, %s);"
                          % SINKS)
    done_tx.join(60)
    sweep.join(60)
    check(done_tx.err is None, "the late delivery_done failed: %s" % done_tx.err)
    check(sweep.err is None, "the expiry sweep failed: %s" % sweep.err)
    state = gdb.sql("SELECT count(*) FILTER (WHERE expired_at IS NOT NULL),"
                    " count(*) FILTER (WHERE delivered_at IS NOT NULL) FROM m2p_deliveries")
    check(state == [("199", "1")], "expired / delivered: %s" % state)


def test_old_style_row_keeps_player_order(ctx):
    gdb = database(ctx, "claims_old_style", [(1, 1)])
    # What migration 6's m2p_commit_poll inserts (its plan was made before migration 7).
    gdb.script("INSERT INTO mining_events (id, player_id, pool_name, advc_amount, ap_awarded,"
               " processed, notified, idempotency_key) VALUES (2, 1, 'p', 1, 100, true, false,"
               " 'k2');\n"
               "INSERT INTO m2p_outbox (mining_event_id, event, payload) VALUES (2,"
               " 'mining_reward', jsonb_build_object('player_id', 1, 'username', 'u', 'pool',"
               " 'p', 'advc_amount', 1, 'ap_awarded', 100, 'event_id', 2, 'timestamp', now()));")
    check(claim(gdb) == [1], "the old-style event was handed out beside the player's older one")
    done(gdb, 1)
    rows = gdb.sql("SELECT event_id, payload::jsonb->>'room', payload::jsonb->>'event_id'"
                   " FROM m2p_claim_deliveries('a', 'e1', 60, 100, 86400)")
    check(rows == [("2", "player_1", "2")], "the old-style event: %s" % rows)


def test_released_award_ids_follow_delivery_order(ctx):
    gdb = database(ctx, "claims_release_order", [])
    gdb.script("INSERT INTO m2p_wallet_claims (pool_name, wallet, player_id, wallet_as_given)"
               " VALUES ('pa', 'w', 1, 'w'), ('pb', 'w', 1, 'w');\n"
               "INSERT INTO m2p_accounts (player_id, pool_name, wallet, state, version)"
               " VALUES (1, 'pa', 'w', '{}', 1), (1, 'pb', 'w', '{}', 1);\n"
               "INSERT INTO m2p_held_awards (player_id, pool_name, idempotency_key, advc_amount,"
               " ap_awarded, previous_paid, current_paid, reason, rules_generation, hold_reason)"
               " VALUES (1, 'pb', 'held1', 2, 200, 0, 2, 'r', 'g', 'too large');")
    held = gdb.value("SELECT id FROM m2p_held_awards")
    # A commit of the player's third pool holds the player's row for a moment.
    game = in_background(gdb, "BEGIN;\nSELECT 1 FROM players WHERE id = 1 FOR UPDATE;\n"
                         "SELECT pg_sleep(2);\nCOMMIT;\n")
    time.sleep(0.5)
    commit = in_background(gdb, "SELECT m2p_commit_poll(1, 'pa', 'w', 1, '{}', 'h', NULL,"
                           " '[{\"key\": \"c1\", \"advc\": \"1\", \"ap\": \"100\","
                           " \"reason\": \"r\"}]', 'g', NULL);")
    time.sleep(0.5)
    release = in_background(gdb, "SELECT o_outcome FROM m2p_release_held(%s, NULL);" % held)
    for t in (game, commit, release):
        t.join(60)
        check(t.err is None, "a transaction failed: %s" % t.err)
    rows = gdb.sql("SELECT mining_event_id, payload->>'total_ap' FROM m2p_outbox ORDER BY id")
    ids = [int(r[0]) for r in rows]
    check(len(ids) == 2 and ids == sorted(ids),
          "delivered in this order (outbox id order), event ids out of order: %s" % rows)


def test_sink_of_another_engine_holds_settling(ctx):
    """Engine A gained sink b in a rolling restart; engine B still runs with sink a only. B
    delivering an event must not settle it before A's sink b has seen it (it would never)."""
    gdb = database(ctx, "claims_mixed", [(1, 1)])
    gdb.sql("SELECT m2p_register_sinks('[\"a\", \"b\"]')")   # engine A's start
    check(claim(gdb, sink="a", owner="B") == [1], "engine B claims for sink a")
    done(gdb, 1, sink="a", sinks="'[\"a\"]'")                 # B knows only sink a
    row = gdb.sql("SELECT delivered_at IS NULL FROM m2p_outbox WHERE mining_event_id = 1")
    check(row == [("t",)], "settled while engine A's sink b had not seen the event")
    check(claim(gdb, sink="b", owner="A") == [1], "sink b never got the event")
    done(gdb, 1, sink="b")
    row = gdb.sql("SELECT o.delivered_at IS NULL, e.notified FROM m2p_outbox o"
                  " JOIN mining_events e ON e.id = o.mining_event_id WHERE e.id = 1")
    check(row == [("f", "t")], "not settled after both sinks: %s" % row)


if __name__ == "__main__":
    harness.main(globals())
